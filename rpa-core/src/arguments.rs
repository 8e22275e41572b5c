//! Job arguments against a process's schema (seed 000 §3.2/§3.3), and their
//! rendering as seed 001 Execute arguments.
//!
//! `params` is a JSON object. Keys match an argument's `name` (or its `id`).
//! Values may be typed JSON or strings holding the value, as seed 000's own
//! example sends every value as a string: `int` takes `42` or `"42"`,
//! `boolean` takes `true` or `"true"`, `string` takes a string (numbers and
//! booleans are accepted and kept as written), `other` takes anything.
//! Required arguments must be present and not null; unknown keys are refused,
//! so a misspelt argument is an error rather than silently ignored.

use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value};

use crate::error::Error;
use crate::model::{ArgType, ArgumentSpec, ProcessSpec};
use crate::transport::Argument;

/// [`validate`], shared: every job without arguments points at one empty object.
pub fn validate_shared(spec: &ProcessSpec, params: &Value) -> Result<Arc<Value>, Error> {
    Ok(shared(validate(spec, params)?))
}

/// Free-form data (a queue item's content when its process declares no
/// schema): any JSON object (`null` is `{}`), taken as given.
pub fn free_form(params: &Value) -> Result<Arc<Value>, Error> {
    match params {
        Value::Null => Ok(shared(Value::Object(Map::new()))),
        Value::Object(_) => Ok(shared(params.clone())),
        _ => Err(Error::InvalidArgument("params must be a JSON object".into())),
    }
}

/// `v`, with every empty object the same shared one.
fn shared(v: Value) -> Arc<Value> {
    static EMPTY: LazyLock<Arc<Value>> = LazyLock::new(|| Arc::new(Value::Object(Map::new())));
    match &v {
        Value::Object(m) if m.is_empty() => EMPTY.clone(),
        _ => Arc::new(v),
    }
}

/// Checks `params` against `spec` and returns the normalised arguments
/// (keys are argument names; ints and booleans given as strings become typed).
pub fn validate(spec: &ProcessSpec, params: &Value) -> Result<Value, Error> {
    let empty = Map::new();
    let given: &Map<String, Value> = match params {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => {
            return Err(Error::InvalidArgument("params must be a JSON object".into()));
        }
    };
    let mut out = Map::new();
    for (k, v) in given {
        let Some(arg) = spec.arguments.iter().find(|a| &a.name == k || &a.id == k) else {
            return Err(Error::InvalidArgument(format!("unknown argument '{k}'")));
        };
        if v.is_null() {
            continue;
        }
        out.insert(arg.name.clone(), coerce(arg, v)?);
    }
    if let Some(missing) = spec.arguments.iter().find(|a| a.required && !out.contains_key(&a.name)) {
        return Err(Error::InvalidArgument(format!(
            "required argument '{}' is missing",
            missing.name
        )));
    }
    Ok(Value::Object(out))
}

/// Checks one value against its argument's type (a null is no value).
pub fn check_value(arg: &ArgumentSpec, v: &Value) -> Result<(), Error> {
    if v.is_null() {
        return Ok(());
    }
    coerce(arg, v).map(|_| ())
}

fn coerce(arg: &ArgumentSpec, v: &Value) -> Result<Value, Error> {
    let wrong = || {
        Error::InvalidArgument(format!(
            "argument '{}' must be of type {}",
            arg.name,
            arg.arg_type.as_str()
        ))
    };
    Ok(match arg.arg_type {
        ArgType::Int => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
            Value::String(s) => Value::from(s.trim().parse::<i64>().map_err(|_| wrong())?),
            _ => return Err(wrong()),
        },
        ArgType::Boolean => match v {
            Value::Bool(_) => v.clone(),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(wrong()),
        },
        ArgType::String => match v {
            Value::String(_) => v.clone(),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            _ => return Err(wrong()),
        },
        ArgType::Other => v.clone(),
    })
}

/// Seed 001 Execute `arguments` for normalised job arguments.
pub fn to_execute(spec: &ProcessSpec, args: &Value) -> Vec<Argument> {
    let Value::Object(m) = args else {
        return Vec::new();
    };
    m.iter()
        .map(|(name, v)| {
            let arg_type = spec
                .arguments
                .iter()
                .find(|a| &a.name == name)
                .map_or("other", |a| a.arg_type.as_str());
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Argument {
                name: name.clone(),
                arg_type: arg_type.into(),
                value,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::ProcessType;

    fn spec() -> ProcessSpec {
        let mut s = ProcessSpec::new("p", ProcessType::Unattended);
        for (name, t, required) in [
            ("name", ArgType::String, true),
            ("age", ArgType::Int, false),
            ("vip", ArgType::Boolean, false),
            ("data", ArgType::Other, false),
        ] {
            s.arguments.push(ArgumentSpec {
                name: name.into(),
                id: format!("id_{name}"),
                arg_type: t,
                required,
                secret: false,
            });
        }
        s
    }

    #[test]
    fn seed_000_string_values_are_accepted_and_typed() {
        let v = validate(&spec(), &json!({"name": "xxx", "age": "42", "vip": "true"})).unwrap();
        assert_eq!(v, json!({"name": "xxx", "age": 42, "vip": true}));
    }

    #[test]
    fn ids_work_as_keys_and_null_means_absent() {
        let v = validate(&spec(), &json!({"id_name": "a", "age": null})).unwrap();
        assert_eq!(v, json!({"name": "a"}));
    }

    #[test]
    fn errors_name_the_argument() {
        let e = |p| validate(&spec(), &p).unwrap_err().to_string();
        assert_eq!(e(json!({})), "required argument 'name' is missing");
        assert_eq!(
            e(json!({"name": "a", "age": "x"})),
            "argument 'age' must be of type int"
        );
        assert_eq!(
            e(json!({"name": "a", "age": 1.5})),
            "argument 'age' must be of type int"
        );
        assert_eq!(
            e(json!({"name": "a", "vip": 1})),
            "argument 'vip' must be of type boolean"
        );
        assert_eq!(e(json!({"name": ["a"]})), "argument 'name' must be of type string");
        assert_eq!(e(json!({"name": "a", "nmae": 1})), "unknown argument 'nmae'");
        assert_eq!(e(json!([1])), "params must be a JSON object");
    }

    #[test]
    fn execute_arguments_carry_types_and_string_values() {
        let v = validate(&spec(), &json!({"name": "a", "age": 3, "data": {"k": 1}})).unwrap();
        let args = to_execute(&spec(), &v);
        let age = args.iter().find(|a| a.name == "age").unwrap();
        assert_eq!((age.arg_type.as_str(), age.value.as_str()), ("int", "3"));
        let data = args.iter().find(|a| a.name == "data").unwrap();
        assert_eq!(data.value, r#"{"k":1}"#);
    }
}
