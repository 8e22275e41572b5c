//! Assets: named values robots and processes read at run time (UiPath's
//! assets, seed 002): text, integers and booleans, global to the server.
//! Pure: what a valid asset is.
//!
//! A deleted asset keeps its row (records are never removed) with its name
//! freed, so a new asset may take it.

use serde::{Deserialize, Serialize};

use crate::record::{Cell, Column, Kind, Record};
use crate::time::Timestamp;

/// What an asset holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value")]
pub enum AssetValue {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// True or false.
    Bool(bool),
}

impl AssetValue {
    /// UiPath's `ValueType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            AssetValue::Text(_) => "Text",
            AssetValue::Integer(_) => "Integer",
            AssetValue::Bool(_) => "Bool",
        }
    }

    /// The value as text (UiPath's `Value`).
    pub fn as_text(&self) -> String {
        match self {
            AssetValue::Text(s) => s.clone(),
            AssetValue::Integer(n) => n.to_string(),
            AssetValue::Bool(b) => b.to_string(),
        }
    }
}

/// An asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// Serial id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// Its name, unique among assets not deleted.
    pub name: String,
    /// Its value.
    pub value: AssetValue,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Deleted (its name is free again).
    #[serde(default)]
    pub deleted: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Record for Asset {
    const KIND: &'static Kind = &Kind {
        table: "rpa_assets",
        name: "asset",
        key: Column::int("id"),
        columns: &[Column::text("name").unique("asset name")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![if self.deleted {
            Cell::Null
        } else {
            self.name.as_str().into()
        }]
    }
}

/// Most characters in an asset's name.
pub const MAX_NAME: usize = 128;
/// Most characters in a text value.
pub const MAX_TEXT: usize = 1_000_000;

/// Checks a name and value, with the reason when they do not make an asset.
pub fn check(name: &str, value: &AssetValue) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(format!("an asset's name has 1 to {MAX_NAME} characters"));
    }
    if let AssetValue::Text(t) = value
        && t.len() > MAX_TEXT
    {
        return Err(format!("a text asset holds at most {MAX_TEXT} bytes"));
    }
    Ok(())
}

/// The value UiPath's fields describe: `ValueType` with `StringValue`,
/// `IntValue` or `BoolValue`. Credential assets are refused: their
/// passwords would need sealing at rest, which assets do not have yet.
pub fn value_of(
    value_type: &str,
    string: Option<&str>,
    int: Option<i64>,
    boolean: Option<bool>,
) -> Result<AssetValue, String> {
    match value_type {
        "Text" => Ok(AssetValue::Text(string.unwrap_or_default().to_owned())),
        "Integer" => int
            .or_else(|| string.and_then(|s| s.trim().parse().ok()))
            .map(AssetValue::Integer)
            .ok_or_else(|| "an Integer asset needs IntValue".into()),
        "Bool" => boolean
            .or_else(|| string.and_then(|s| s.trim().parse().ok()))
            .map(AssetValue::Bool)
            .ok_or_else(|| "a Bool asset needs BoolValue".into()),
        "Credential" => Err("Credential assets are not supported yet".into()),
        other => Err(format!("ValueType {other} is not Text, Integer or Bool")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_their_type() {
        assert_eq!(
            value_of("Text", Some("x"), None, None),
            Ok(AssetValue::Text("x".into()))
        );
        assert_eq!(value_of("Integer", None, Some(3), None), Ok(AssetValue::Integer(3)));
        assert_eq!(value_of("Integer", Some(" 4 "), None, None), Ok(AssetValue::Integer(4)));
        assert!(value_of("Integer", Some("four"), None, None).is_err());
        assert_eq!(value_of("Bool", None, None, Some(true)), Ok(AssetValue::Bool(true)));
        assert!(
            value_of("Credential", None, None, None)
                .unwrap_err()
                .contains("Credential")
        );
        assert!(value_of("Secret", None, None, None).is_err());
        assert!(check("", &AssetValue::Bool(true)).is_err());
        assert!(check("rate", &AssetValue::Integer(1)).is_ok());
        assert_eq!(AssetValue::Integer(5).as_text(), "5");
    }
}
