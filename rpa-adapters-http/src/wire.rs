//! Reading JSON request bodies field by field, so every mistake gets a
//! message that names the field, in the API's own envelope.

use serde_json::{Map, Value};

/// A request body that is a JSON object.
pub(crate) struct Fields(pub Map<String, Value>);

/// A message for the caller.
pub(crate) type Bad = String;

impl Fields {
    /// Parses `bytes` as a JSON object (an empty body is an empty object).
    pub fn parse(bytes: &[u8]) -> Result<Fields, Bad> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(Fields(m)),
            Ok(_) => Err("the request body must be a JSON object".into()),
            Err(e) => Err(format!("the request body is not valid JSON: {e}")),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn str(&self, name: &str) -> Result<&str, Bad> {
        match self.get(name) {
            None => Err(format!("{name} is required")),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
            Some(Value::String(_)) => Err(format!("{name} must not be empty")),
            Some(_) => Err(format!("{name} must be a string")),
        }
    }

    /// An optional string (absent, null or empty → `None`).
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, Bad> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim())),
            Some(_) => Err(format!("{name} must be a string")),
        }
    }

    /// An optional integer (a JSON number or a string holding one).
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, Bad> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| format!("{name} must be an integer")),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{name} must be an integer")),
            Some(_) => Err(format!("{name} must be an integer")),
        }
    }

    /// A JSON object given as an object or as a string holding JSON
    /// (seed 000 `params`); absent, null or empty → `{}`.
    pub fn json_object(&self, name: &str) -> Result<Value, Bad> {
        match self.get(name) {
            None => Ok(Value::Object(Map::new())),
            Some(Value::Object(_)) => Ok(self.0[name].clone()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Value::Object(Map::new())),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => Ok(v),
                Ok(Value::Null) => Ok(Value::Object(Map::new())),
                _ => Err(format!("{name} must be a JSON object or a string holding one")),
            },
            Some(_) => Err(format!("{name} must be a JSON object or a string holding one")),
        }
    }

    /// Any JSON value, if present.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// A 32-hex key, or a message naming the field.
pub(crate) fn key(name: &str, s: &str) -> Result<rpa_core::Key, Bad> {
    s.parse().map_err(|_| format!("{name} must be a 32-character id"))
}
