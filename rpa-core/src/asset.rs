//! Assets: named values robots and processes read at run time (UiPath's
//! assets, seed 002): text, integers, booleans, credentials and secrets,
//! each in a folder, with one value for every robot or a value per robot.
//! Pure: what a valid asset is, which value a robot gets, and who may see
//! a secret.
//!
//! The kind is [sealed](crate::record::Kind::sealed): a store that keeps
//! rows at rest encrypts the whole asset. A credential's password and a
//! secret's value are given only to a robot running a job of a process in
//! the asset's folder ([`readable_by_run`]); people see that they exist.
//!
//! A deleted asset keeps its row (records are never removed) with its name
//! freed, so a new asset may take it.

use serde::{Deserialize, Serialize};

use crate::ids::RobotId;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// The folder of a process or asset that names none.
pub const DEFAULT_FOLDER: &str = "Default";

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
    /// A user name and its password (the password is the secret part).
    Credential {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A secret text.
    Secret(String),
}

impl AssetValue {
    /// UiPath's `ValueType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            AssetValue::Text(_) => "Text",
            AssetValue::Integer(_) => "Integer",
            AssetValue::Bool(_) => "Bool",
            AssetValue::Credential { .. } => "Credential",
            AssetValue::Secret(_) => "Secret",
        }
    }

    /// The value as text (UiPath's `Value`): a credential shows its user
    /// name, a secret nothing.
    pub fn as_text(&self) -> String {
        match self {
            AssetValue::Text(s) => s.clone(),
            AssetValue::Integer(n) => n.to_string(),
            AssetValue::Bool(b) => b.to_string(),
            AssetValue::Credential { username, .. } => username.clone(),
            AssetValue::Secret(_) => String::new(),
        }
    }

    /// Whether part of it is secret (a credential's password, a secret).
    pub fn is_secret(&self) -> bool {
        matches!(self, AssetValue::Credential { .. } | AssetValue::Secret(_))
    }

    /// The value with its secret part blanked, as a person may see it.
    pub fn redacted(&self) -> AssetValue {
        match self {
            AssetValue::Credential { username, .. } => AssetValue::Credential {
                username: username.clone(),
                password: String::new(),
            },
            AssetValue::Secret(_) => AssetValue::Secret(String::new()),
            v => v.clone(),
        }
    }
}

/// A robot's own value of a per-robot asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RobotValue {
    /// The robot.
    pub robot: RobotId,
    /// Its value.
    pub value: AssetValue,
}

/// What an asset is made of, as a caller gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetSpec {
    /// Its name, unique in its folder.
    pub name: String,
    /// Its folder; none: [`DEFAULT_FOLDER`].
    pub folder: Option<String>,
    /// Its value (for a per-robot asset: the value of robots without one).
    pub value: AssetValue,
    /// UiPath's `ValueScope`: `PerRobot` (true) or `Global`.
    pub per_robot: bool,
    /// Robots' own values (per-robot assets only).
    pub robot_values: Vec<RobotValue>,
    /// What it is for.
    pub description: String,
}

/// An asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// Serial id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// Its name, unique among the assets of its folder not deleted.
    pub name: String,
    /// Its folder; none: [`DEFAULT_FOLDER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// Its value (for a per-robot asset: the value of robots without one).
    pub value: AssetValue,
    /// One value per robot (UiPath's `PerRobot` scope).
    #[serde(default)]
    pub per_robot: bool,
    /// Robots' own values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub robot_values: Vec<RobotValue>,
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

impl Asset {
    /// Its folder's name.
    pub fn folder(&self) -> &str {
        folder_name(self.folder.as_deref())
    }

    /// The value `robot` gets: its own, or the asset's.
    pub fn value_for(&self, robot: RobotId) -> &AssetValue {
        self.robot_values
            .iter()
            .find(|v| v.robot == robot)
            .map_or(&self.value, |v| &v.value)
    }

    /// The asset with `robot`'s value set to `value`: its own value for a
    /// per-robot asset, the asset's value otherwise.
    pub fn with_robot_value(mut self, robot: RobotId, value: AssetValue) -> Result<Asset, String> {
        if value.type_name() != self.value.type_name() {
            return Err(format!(
                "asset {} holds {} values, not {}",
                self.name,
                self.value.type_name(),
                value.type_name()
            ));
        }
        if !self.per_robot {
            self.value = value;
        } else if let Some(v) = self.robot_values.iter_mut().find(|v| v.robot == robot) {
            v.value = value;
        } else {
            self.robot_values.push(RobotValue { robot, value });
        }
        Ok(self)
    }

    /// The asset as a person may see it: secrets blanked.
    pub fn redacted(&self) -> Asset {
        let mut a = self.clone();
        a.value = a.value.redacted();
        for v in &mut a.robot_values {
            v.value = v.value.redacted();
        }
        a
    }
}

/// A folder's name: `folder`, or [`DEFAULT_FOLDER`].
pub fn folder_name(folder: Option<&str>) -> &str {
    folder.filter(|f| !f.is_empty()).unwrap_or(DEFAULT_FOLDER)
}

/// The unique cell of an asset: its name within its folder.
pub fn unique_name(folder: &str, name: &str) -> String {
    if folder == DEFAULT_FOLDER {
        name.to_owned()
    } else {
        // Names hold no control characters, so the separator is unambiguous.
        format!("{folder}\u{1f}{name}")
    }
}

/// The unique name column of a record named within a folder (assets,
/// buckets): null once it is deleted, so its name is free again.
pub fn name_cell(deleted: bool, folder: &str, name: &str) -> Cell {
    if deleted {
        Cell::Null
    } else {
        unique_name(folder, name).into()
    }
}

impl Mapped for Asset {
    const KIND: &'static Kind = &Kind {
        table: "rpa_assets",
        name: "asset",
        key: Column::int("id"),
        sealed: true,
        cached: false,
        columns: &[Column::text("name").unique("asset name")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![name_cell(self.deleted, self.folder(), &self.name)]
    }
}

impl Record for Asset {}

/// Most characters in an asset's name.
pub const MAX_NAME: usize = 128;
/// Most bytes in a text value.
pub const MAX_TEXT: usize = 1_000_000;
/// Most robots with values of their own.
pub const MAX_ROBOT_VALUES: usize = 10_000;

/// Checks a spec, with the reason when it does not make an asset.
pub fn check(spec: &AssetSpec) -> Result<(), String> {
    let name = spec.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "an asset's name has 1 to {MAX_NAME} characters and no control characters"
        ));
    }
    if spec.folder.as_deref().is_some_and(|f| f.chars().any(char::is_control)) {
        return Err("a folder's name has no control characters".into());
    }
    if !spec.per_robot && !spec.robot_values.is_empty() {
        return Err("only a PerRobot asset has robot values".into());
    }
    if spec.robot_values.len() > MAX_ROBOT_VALUES {
        return Err(format!("an asset has at most {MAX_ROBOT_VALUES} robot values"));
    }
    let mut robots: Vec<RobotId> = spec.robot_values.iter().map(|v| v.robot).collect();
    robots.sort();
    if robots.windows(2).any(|w| w[0] == w[1]) {
        return Err("a robot has one value of an asset".into());
    }
    for v in std::iter::once(&spec.value).chain(spec.robot_values.iter().map(|v| &v.value)) {
        check_value(v)?;
        if v.type_name() != spec.value.type_name() {
            return Err(format!(
                "every value of a {} asset is a {}",
                spec.value.type_name(),
                spec.value.type_name()
            ));
        }
    }
    Ok(())
}

fn check_value(value: &AssetValue) -> Result<(), String> {
    let long = |t: &str| t.len() > MAX_TEXT;
    match value {
        AssetValue::Text(t) | AssetValue::Secret(t) if long(t) => {
            Err(format!("a value holds at most {MAX_TEXT} bytes"))
        }
        AssetValue::Credential { username, password } if long(username) || long(password) => {
            Err(format!("a credential holds at most {MAX_TEXT} bytes"))
        }
        _ => Ok(()),
    }
}

/// Whether a robot running a job of a process in `process_folder` may read
/// `asset`'s secrets: the asset is in that folder.
pub fn readable_by_run(asset: &Asset, process_folder: Option<&str>) -> bool {
    asset.folder() == folder_name(process_folder)
}

/// The value UiPath's fields describe: `ValueType` with `StringValue`,
/// `IntValue`, `BoolValue`, `CredentialUsername` + `CredentialPassword` or
/// `SecretValue`.
pub struct ValueFields<'a> {
    /// `ValueType`.
    pub value_type: &'a str,
    /// `StringValue` (or `Value`).
    pub string: Option<&'a str>,
    /// `IntValue`.
    pub int: Option<i64>,
    /// `BoolValue`.
    pub boolean: Option<bool>,
    /// `CredentialUsername`.
    pub username: Option<&'a str>,
    /// `CredentialPassword`.
    pub password: Option<&'a str>,
    /// `SecretValue`.
    pub secret: Option<&'a str>,
}

/// The value `f` describes, with the reason when it describes none.
pub fn value_of(f: &ValueFields<'_>) -> Result<AssetValue, String> {
    match f.value_type {
        "Text" => Ok(AssetValue::Text(f.string.unwrap_or_default().to_owned())),
        "Integer" => f
            .int
            .or_else(|| f.string.and_then(|s| s.trim().parse().ok()))
            .map(AssetValue::Integer)
            .ok_or_else(|| "an Integer asset needs IntValue".into()),
        "Bool" => f
            .boolean
            .or_else(|| f.string.and_then(|s| s.trim().parse().ok()))
            .map(AssetValue::Bool)
            .ok_or_else(|| "a Bool asset needs BoolValue".into()),
        "Credential" => Ok(AssetValue::Credential {
            username: f
                .username
                .ok_or("a Credential asset needs CredentialUsername")?
                .to_owned(),
            password: f.password.unwrap_or_default().to_owned(),
        }),
        "Secret" => Ok(AssetValue::Secret(f.secret.or(f.string).unwrap_or_default().to_owned())),
        other => Err(format!(
            "ValueType {other} is not Text, Integer, Bool, Credential or Secret"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(value_type: &str) -> ValueFields<'_> {
        ValueFields {
            value_type,
            string: None,
            int: None,
            boolean: None,
            username: None,
            password: None,
            secret: None,
        }
    }

    fn spec(value: AssetValue) -> AssetSpec {
        AssetSpec {
            name: "rate".into(),
            folder: None,
            value,
            per_robot: false,
            robot_values: Vec::new(),
            description: String::new(),
        }
    }

    fn asset(s: AssetSpec) -> Asset {
        Asset {
            id: 1,
            version: 1,
            name: s.name,
            folder: s.folder,
            value: s.value,
            per_robot: s.per_robot,
            robot_values: s.robot_values,
            description: s.description,
            deleted: false,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn values_follow_their_type() {
        let text = ValueFields {
            string: Some("x"),
            ..fields("Text")
        };
        assert_eq!(value_of(&text), Ok(AssetValue::Text("x".into())));
        let int = ValueFields {
            int: Some(3),
            ..fields("Integer")
        };
        assert_eq!(value_of(&int), Ok(AssetValue::Integer(3)));
        let int_text = ValueFields {
            string: Some(" 4 "),
            ..fields("Integer")
        };
        assert_eq!(value_of(&int_text), Ok(AssetValue::Integer(4)));
        assert!(
            value_of(&ValueFields {
                string: Some("four"),
                ..fields("Integer")
            })
            .is_err()
        );
        let b = ValueFields {
            boolean: Some(true),
            ..fields("Bool")
        };
        assert_eq!(value_of(&b), Ok(AssetValue::Bool(true)));
        let cred = ValueFields {
            username: Some("svc"),
            password: Some("pw"),
            ..fields("Credential")
        };
        assert_eq!(
            value_of(&cred),
            Ok(AssetValue::Credential {
                username: "svc".into(),
                password: "pw".into()
            })
        );
        assert!(
            value_of(&fields("Credential"))
                .unwrap_err()
                .contains("CredentialUsername")
        );
        let secret = ValueFields {
            secret: Some("s3"),
            ..fields("Secret")
        };
        assert_eq!(value_of(&secret), Ok(AssetValue::Secret("s3".into())));
        assert!(value_of(&fields("Table")).is_err());
        assert_eq!(AssetValue::Integer(5).as_text(), "5");
    }

    #[test]
    fn specs_are_checked() {
        assert!(check(&spec(AssetValue::Integer(1))).is_ok());
        let mut s = spec(AssetValue::Bool(true));
        s.name = " ".into();
        assert!(check(&s).is_err());
        s.name = "a\u{1f}b".into();
        assert!(check(&s).is_err(), "control characters are refused");
        let mut s = spec(AssetValue::Integer(1));
        s.robot_values.push(RobotValue {
            robot: RobotId(1),
            value: AssetValue::Integer(2),
        });
        assert!(check(&s).unwrap_err().contains("PerRobot"));
        s.per_robot = true;
        assert!(check(&s).is_ok());
        s.robot_values.push(RobotValue {
            robot: RobotId(2),
            value: AssetValue::Text("x".into()),
        });
        assert!(check(&s).is_err(), "every value has the asset's type");
        s.robot_values[1].value = AssetValue::Integer(3);
        s.robot_values[1].robot = RobotId(1);
        assert!(check(&s).is_err(), "one value a robot");
    }

    #[test]
    fn a_robot_gets_its_own_value_or_the_assets() {
        let mut s = spec(AssetValue::Text("default".into()));
        s.per_robot = true;
        s.robot_values.push(RobotValue {
            robot: RobotId(7),
            value: AssetValue::Text("seven".into()),
        });
        let a = asset(s);
        assert_eq!(a.value_for(RobotId(7)), &AssetValue::Text("seven".into()));
        assert_eq!(a.value_for(RobotId(8)), &AssetValue::Text("default".into()));
        let a = a
            .with_robot_value(RobotId(8), AssetValue::Text("eight".into()))
            .unwrap();
        assert_eq!(a.value_for(RobotId(8)), &AssetValue::Text("eight".into()));
        assert_eq!(a.value, AssetValue::Text("default".into()), "the default stays");
        assert!(a.with_robot_value(RobotId(8), AssetValue::Integer(1)).is_err());
        let global = asset(spec(AssetValue::Integer(1)))
            .with_robot_value(RobotId(3), AssetValue::Integer(2))
            .unwrap();
        assert_eq!(global.value, AssetValue::Integer(2), "a global asset changes for all");
    }

    #[test]
    fn secrets_stay_in_their_folder_and_out_of_peoples_sight() {
        let cred = AssetValue::Credential {
            username: "svc".into(),
            password: "pw".into(),
        };
        let mut s = spec(cred.clone());
        s.folder = Some("Finance".into());
        s.per_robot = true;
        s.robot_values.push(RobotValue {
            robot: RobotId(1),
            value: cred,
        });
        let a = asset(s);
        assert!(readable_by_run(&a, Some("Finance")));
        assert!(!readable_by_run(&a, None));
        assert!(!readable_by_run(&a, Some("HR")));
        let seen = a.redacted();
        assert_eq!(
            seen.value,
            AssetValue::Credential {
                username: "svc".into(),
                password: String::new()
            }
        );
        assert!(!format!("{seen:?}").contains("pw"));
        assert_eq!(AssetValue::Secret("s".into()).as_text(), "");
        let mut d = spec(AssetValue::Bool(true));
        d.folder = Some(DEFAULT_FOLDER.into());
        assert!(readable_by_run(&asset(d), None), "the default folder by either name");
    }

    #[test]
    fn names_are_unique_within_a_folder() {
        let a = asset(spec(AssetValue::Integer(1)));
        let mut s = spec(AssetValue::Integer(1));
        s.folder = Some("Finance".into());
        let b = asset(s);
        assert_ne!(a.cells(), b.cells());
        let mut s = spec(AssetValue::Integer(1));
        s.folder = Some(DEFAULT_FOLDER.into());
        assert_eq!(a.cells(), asset(s).cells());
    }
}
