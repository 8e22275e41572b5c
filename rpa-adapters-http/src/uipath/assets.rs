//! UiPath's assets ([`rpa_core::asset`]), as a translation table:
//!
//! | UiPath | engine |
//! |---|---|
//! | `GET Assets`, `GET Assets/UiPath.Server.Configuration.OData.GetFiltered` | `assets`: those of the caller's folder (every folder without a folder header); secrets blanked |
//! | `GET Assets(<Id>)` | `asset` (secrets blanked) |
//! | `POST Assets` `{Name, ValueScope: Global \| PerRobot, ValueType: Text \| Integer \| Bool \| Credential \| Secret, StringValue, IntValue, BoolValue, CredentialUsername, CredentialPassword, SecretValue, Description, RobotValues: [{RobotId, ...values}]}` | `create_asset` in the folder the headers name (201) |
//! | `PUT`/`PATCH Assets(<Id>)` (fields left out are kept; an empty password keeps the stored one) | `update_asset` (200) |
//! | `DELETE Assets(<Id>)` | `delete_asset` (204) |
//! | `POST Assets/UiPath.Server.Configuration.OData.GetRobotAssetByNameForRobotKey` `{assetName, robotKey}`, `GET Assets/UiPath.Server.Configuration.OData.GetRobotAssetByRobotId(robotId=<Id>,assetName='<name>')` | `robot_asset`: with a run token, the value of the robot running the job, password included, from the job's folder; a person gets assets without secrets and 403 for a Credential or Secret |
//! | `POST Assets/UiPath.Server.Configuration.OData.SetRobotAssetByRobotKey` `{robotKey, robotAsset: {Name, ValueType, ...values}}` | `set_robot_asset` (a run token only) |
//!
//! `robotKey` is the robot's `Key` (a GUID) or its seed-001 `robotId`; it
//! must be the robot the run token names. `CredentialPassword` and
//! `SecretValue` are `null` in every answer to a person, and
//! `AllowDirectApiAccess` is `false`, so UiPath's SDK asks for them only
//! with a robot key.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use rpa_core::Store;
use rpa_core::asset::{self, Asset, AssetSpec, AssetValue, RobotValue, ValueFields};
use rpa_core::error::Error;
use rpa_core::ids::RobotId;
use rpa_core::model::Actor;
use serde_json::{Map, Value, json};

use super::{Answer, Caller, ODataError, field, folder_id, guid, one, options, parse_guid, respond};
use crate::AppState;

const ACTION: &str = "Assets/UiPath.Server.Configuration.OData.";

/// The answer of an asset route, or `None` when `rest` names none.
pub(super) async fn route<S: Store>(
    st: &AppState<S>,
    me: &Caller,
    method: &Method,
    rest: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Option<Answer> {
    if rest != "Assets" && !rest.starts_with("Assets(") && !rest.starts_with(ACTION) {
        return None;
    }
    Some(answer(st, me, method, rest, q, body).await)
}

async fn answer<S: Store>(
    st: &AppState<S>,
    me: &Caller,
    method: &Method,
    rest: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Answer {
    let actor = Actor::User(me.id);
    let action = rest.strip_prefix(ACTION);
    match (method.clone(), action) {
        (Method::GET, Some("GetFiltered")) | (Method::GET, None) if rest == "Assets" || action.is_some() => {
            let o = options(q)?;
            let all = st.engine.assets().await?;
            let robots = robot_names(st).await?;
            let out = all
                .iter()
                .filter(|a| me.folder.as_deref().is_none_or(|f| f == a.folder()))
                .map(|a| asset_json(a, &robots))
                .collect();
            respond("Assets", out, &o)
        }
        (Method::POST, None) if rest == "Assets" => {
            let spec = spec_of(&object(body)?, me.folder.as_deref())?;
            let a = st.engine.create_asset(actor, spec).await?;
            let robots = robot_names(st).await?;
            Ok((StatusCode::CREATED, one("Assets", asset_json(&a.redacted(), &robots))).into_response())
        }
        (Method::POST, Some("GetRobotAssetByNameForRobotKey")) => {
            let b = object(body)?;
            let name = text(&b, "assetName").ok_or_else(|| ODataError::bad("assetName is required"))?;
            let key = text(&b, "robotKey").unwrap_or_default();
            robot_asset(st, me, name, RobotRef::Key(key)).await
        }
        (Method::GET, Some(call)) if call.starts_with("GetRobotAssetByRobotId(") => {
            let args = call
                .strip_prefix("GetRobotAssetByRobotId(")
                .and_then(|a| a.strip_suffix(')'))
                .ok_or_else(|| ODataError::bad("GetRobotAssetByRobotId(robotId=<Id>,assetName='<name>')"))?;
            let (mut id, mut name) = (None, None);
            for part in args.split(',') {
                match part.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some((k, v)) if k.eq_ignore_ascii_case("robotId") => id = v.parse::<i64>().ok(),
                    Some((k, v)) if k.eq_ignore_ascii_case("assetName") => {
                        name = Some(v.trim_matches('\'').replace("''", "'"));
                    }
                    _ => {}
                }
            }
            let (Some(id), Some(name)) = (id, name) else {
                return Err(ODataError::bad("GetRobotAssetByRobotId needs robotId and assetName"));
            };
            robot_asset(st, me, &name, RobotRef::Id(RobotId(id))).await
        }
        (Method::POST, Some("SetRobotAssetByRobotKey")) => {
            let b = object(body)?;
            let run = me.run.as_ref().ok_or_else(|| {
                ODataError::new(
                    StatusCode::FORBIDDEN,
                    0,
                    "SetRobotAssetByRobotKey is for a robot running a job (a run token)",
                )
            })?;
            check_robot(st, run.robot, &RobotRef::Key(text(&b, "robotKey").unwrap_or_default())).await?;
            let Some(Value::Object(ra)) = field(&b, "robotAsset") else {
                return Err(ODataError::bad("robotAsset is required"));
            };
            let name = text(ra, "Name").ok_or_else(|| ODataError::bad("robotAsset.Name is required"))?;
            let value = value_of(ra)?;
            let a = st.engine.set_robot_asset(run, name, value).await?;
            Ok(axum::Json(robot_asset_json(&a, &a.value_for(run.robot).redacted())).into_response())
        }
        (m, None) => {
            let id = rest
                .strip_prefix("Assets(")
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| ODataError::not_found(format!("odata/{rest} is not an asset")))?;
            let id: i64 = id
                .parse()
                .map_err(|_| ODataError::bad(format!("Assets({id}): the key must be a number")))?;
            let robots = robot_names(st).await?;
            match m {
                Method::GET => Ok(one("Assets", asset_json(&st.engine.asset(id).await?, &robots))),
                Method::PUT | Method::PATCH => {
                    let old = st.engine.asset(id).await?;
                    let mut b = object(body)?;
                    // PATCH and a partial PUT keep what they leave out.
                    let kept = asset_json(&old, &robots);
                    for k in [
                        "Name",
                        "ValueScope",
                        "ValueType",
                        "Description",
                        "StringValue",
                        "IntValue",
                        "BoolValue",
                        "CredentialUsername",
                        "RobotValues",
                    ] {
                        if field(&b, k).is_none() {
                            b.insert(k.into(), kept[k].clone());
                        }
                    }
                    let spec = spec_of(&b, Some(old.folder()))?;
                    st.engine.update_asset(actor, id, spec).await?;
                    Ok(StatusCode::OK.into_response())
                }
                Method::DELETE => {
                    st.engine.delete_asset(actor, id).await?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(ODataError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    0,
                    format!("{m} is not allowed on Assets({id})"),
                )),
            }
        }
        (m, Some(call)) => Err(ODataError::not_found(format!(
            "No HTTP resource was found that matches the request URI 'odata/Assets/UiPath.Server.Configuration.OData.{call}' ({m})."
        ))),
    }
}

/// How a call names a robot.
enum RobotRef<'a> {
    /// `robotKey`: its `Key` GUID or its seed-001 `robotId`.
    Key(&'a str),
    /// `robotId`: its number.
    Id(RobotId),
}

/// Refuses a robot reference that is not `robot`.
async fn check_robot<S: Store>(st: &AppState<S>, robot: RobotId, named: &RobotRef<'_>) -> Result<(), ODataError> {
    let r = st
        .engine
        .store()
        .robot(robot)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| ODataError::not_found("the robot no longer exists"))?;
    let same = match named {
        RobotRef::Id(id) => *id == r.id,
        RobotRef::Key(k) => *k == r.code.as_ref() || parse_guid(k) == Some(r.key),
    };
    if same {
        Ok(())
    } else {
        Err(ODataError::new(
            StatusCode::FORBIDDEN,
            0,
            "the robot key is not the robot running this job",
        ))
    }
}

/// `GetRobotAssetByNameForRobotKey` / `GetRobotAssetByRobotId`.
async fn robot_asset<S: Store>(st: &AppState<S>, me: &Caller, name: &str, named: RobotRef<'_>) -> Answer {
    if let Some(run) = &me.run {
        check_robot(st, run.robot, &named).await?;
        let (a, value) = st.engine.robot_asset(run, name).await?;
        return Ok(axum::Json(robot_asset_json(&a, &value)).into_response());
    }
    // A person: the asset of their folder, never a secret.
    let folder = asset::folder_name(me.folder.as_deref());
    let a = st
        .engine
        .assets()
        .await?
        .into_iter()
        .find(|a| a.name == name && a.folder() == folder)
        .ok_or_else(|| ODataError::not_found(format!("Asset {name} does not exist in folder {folder}")))?;
    if a.value.is_secret() {
        return Err(ODataError::new(
            StatusCode::FORBIDDEN,
            0,
            "a Credential or Secret asset is given only to a robot running a job",
        ));
    }
    let value = match named {
        RobotRef::Id(id) => a.value_for(id).clone(),
        RobotRef::Key(k) => match st.engine.store().robot_by_code(k).await.map_err(Error::from)? {
            Some(r) => a.value_for(r.id).clone(),
            None => a.value.clone(),
        },
    };
    Ok(axum::Json(robot_asset_json(&a, &value)).into_response())
}

fn object(body: &[u8]) -> Result<Map<String, Value>, ODataError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ODataError::bad("The request body must be a JSON object")),
    }
}

fn text<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    field(m, k).and_then(Value::as_str)
}

/// The value UiPath's value fields describe, of `ValueType`.
fn value_of(m: &Map<String, Value>) -> Result<AssetValue, ODataError> {
    let value_type = text(m, "ValueType").ok_or_else(|| ODataError::bad("ValueType is required"))?;
    asset::value_of(&ValueFields {
        value_type,
        string: text(m, "StringValue").or_else(|| text(m, "Value")),
        int: field(m, "IntValue").and_then(Value::as_i64),
        boolean: field(m, "BoolValue").and_then(Value::as_bool),
        username: text(m, "CredentialUsername"),
        password: text(m, "CredentialPassword"),
        secret: text(m, "SecretValue"),
    })
    .map_err(ODataError::bad)
}

/// An asset body as a spec, in `folder` (none or `Default`: the default folder).
fn spec_of(b: &Map<String, Value>, folder: Option<&str>) -> Result<AssetSpec, ODataError> {
    let name = text(b, "Name").ok_or_else(|| ODataError::bad("Name is required"))?;
    let per_robot = match text(b, "ValueScope") {
        None | Some("Global") => false,
        Some("PerRobot") => true,
        Some(other) => {
            return Err(ODataError::bad(format!("ValueScope {other} is not Global or PerRobot")));
        }
    };
    let value = value_of(b)?;
    let mut robot_values = Vec::new();
    if let Some(list) = field(b, "RobotValues").filter(|v| !v.is_null()) {
        let list = list
            .as_array()
            .ok_or_else(|| ODataError::bad("RobotValues must be a list"))?;
        for rv in list {
            let m = rv
                .as_object()
                .ok_or_else(|| ODataError::bad("each of RobotValues is an object"))?;
            let robot = field(m, "RobotId")
                .and_then(Value::as_i64)
                .ok_or_else(|| ODataError::bad("each of RobotValues needs RobotId"))?;
            let mut m = m.clone();
            if field(&m, "ValueType").is_none() {
                m.insert("ValueType".into(), value.type_name().into());
            }
            robot_values.push(RobotValue {
                robot: RobotId(robot),
                value: value_of(&m)?,
            });
        }
    }
    Ok(AssetSpec {
        name: name.to_owned(),
        folder: folder.filter(|f| *f != asset::DEFAULT_FOLDER).map(str::to_owned),
        value,
        per_robot,
        robot_values,
        description: text(b, "Description").unwrap_or_default().to_owned(),
    })
}

/// Robots' names by id, for `RobotValues`.
async fn robot_names<S: Store>(st: &AppState<S>) -> Result<HashMap<RobotId, String>, ODataError> {
    let robots = st.engine.store().robots().await.map_err(Error::from)?;
    Ok(robots.into_iter().map(|r| (r.id, r.code.to_string())).collect())
}

/// UiPath's value fields of `v` (`CredentialPassword` and `SecretValue`
/// as they are in `v`: callers pass a redacted value to people).
fn value_fields(v: &AssetValue, m: &mut Map<String, Value>) {
    let (s, i, b, user, password, secret) = match v {
        AssetValue::Text(t) => (Some(t.clone()), None, None, None, None, None),
        AssetValue::Integer(n) => (None, Some(*n), None, None, None, None),
        AssetValue::Bool(x) => (None, None, Some(*x), None, None, None),
        AssetValue::Credential { username, password } => (
            None,
            None,
            None,
            Some(username.clone()),
            Some(password.clone()).filter(|p| !p.is_empty()),
            None,
        ),
        AssetValue::Secret(s) => (None, None, None, None, None, Some(s.clone()).filter(|s| !s.is_empty())),
    };
    m.insert("ValueType".into(), v.type_name().into());
    m.insert("Value".into(), v.as_text().into());
    m.insert("StringValue".into(), s.into());
    m.insert("IntValue".into(), i.into());
    m.insert("BoolValue".into(), b.into());
    m.insert("CredentialUsername".into(), user.into());
    m.insert("CredentialPassword".into(), password.into());
    m.insert("SecretValue".into(), secret.into());
}

/// An asset as a person sees it (`a` already redacted by the engine).
fn asset_json(a: &Asset, robots: &HashMap<RobotId, String>) -> Value {
    let mut m = Map::new();
    m.insert("Id".into(), a.id.into());
    m.insert("Key".into(), guid(asset_key(a.id)).into());
    m.insert("Name".into(), a.name.clone().into());
    m.insert("Description".into(), a.description.clone().into());
    m.insert(
        "ValueScope".into(),
        if a.per_robot { "PerRobot" } else { "Global" }.into(),
    );
    value_fields(&a.value.redacted(), &mut m);
    m.insert("HasDefaultValue".into(), true.into());
    m.insert("CanBeDeleted".into(), true.into());
    m.insert("AllowDirectApiAccess".into(), false.into());
    m.insert("ExternalName".into(), Value::Null);
    m.insert("CredentialStoreId".into(), Value::Null);
    m.insert("KeyValueList".into(), json!([]));
    m.insert("Tags".into(), json!([]));
    m.insert("OrganizationUnitId".into(), folder_id(a.folder()).into());
    m.insert("FolderName".into(), a.folder().into());
    let robot_values: Vec<Value> = a
        .robot_values
        .iter()
        .map(|rv| {
            let mut r = Map::new();
            r.insert("RobotId".into(), rv.robot.0.into());
            r.insert(
                "RobotName".into(),
                robots.get(&rv.robot).cloned().unwrap_or_default().into(),
            );
            value_fields(&rv.value.redacted(), &mut r);
            Value::Object(r)
        })
        .collect();
    m.insert("RobotValues".into(), robot_values.into());
    Value::Object(m)
}

/// UiPath's `RobotAsset`: the value one robot gets.
fn robot_asset_json(a: &Asset, value: &AssetValue) -> Value {
    let mut m = Map::new();
    m.insert(
        "@odata.context".into(),
        "/odata/$metadata#UiPath.Server.Configuration.OData.RobotAssetDto".into(),
    );
    m.insert("Id".into(), a.id.into());
    m.insert("Name".into(), a.name.clone().into());
    value_fields(value, &mut m);
    m.insert("ExternalName".into(), Value::Null);
    m.insert("CredentialStoreId".into(), Value::Null);
    m.insert("KeyValueList".into(), json!([]));
    m.insert("ConnectionData".into(), Value::Null);
    Value::Object(m)
}

/// A stable key for an asset id.
fn asset_key(id: i64) -> rpa_core::Key {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"rpaasset");
    k[8..].copy_from_slice(&id.to_be_bytes());
    rpa_core::Key::from_random(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persons_view_never_holds_a_secret() {
        let a = Asset {
            id: 3,
            version: 1,
            name: "erp".into(),
            folder: Some("Finance".into()),
            value: AssetValue::Credential {
                username: "svc".into(),
                password: "hunter2".into(),
            },
            per_robot: true,
            robot_values: vec![RobotValue {
                robot: RobotId(1),
                value: AssetValue::Credential {
                    username: "r1".into(),
                    password: "robot-pw".into(),
                },
            }],
            description: String::new(),
            deleted: false,
            created_at: rpa_core::Timestamp(0),
            updated_at: rpa_core::Timestamp(0),
        };
        let v = asset_json(&a, &HashMap::new());
        let text = v.to_string();
        assert!(!text.contains("hunter2") && !text.contains("robot-pw"), "{text}");
        assert_eq!(v["CredentialUsername"], "svc");
        assert_eq!(v["CredentialPassword"], Value::Null);
        assert_eq!(v["ValueScope"], "PerRobot");
        assert_eq!(v["RobotValues"][0]["CredentialUsername"], "r1");
        let robot = robot_asset_json(&a, a.value_for(RobotId(1)));
        assert_eq!(robot["CredentialPassword"], "robot-pw");
    }

    #[test]
    fn bodies_make_specs() {
        let b = json!({"Name": "rate", "ValueScope": "PerRobot", "ValueType": "Integer", "IntValue": 1,
            "RobotValues": [{"RobotId": 4, "IntValue": 2}]});
        let s = spec_of(b.as_object().unwrap(), Some("Default")).unwrap();
        assert_eq!(s.folder, None);
        assert!(s.per_robot);
        assert_eq!(s.robot_values[0].value, AssetValue::Integer(2));
        let b = json!({"name": "x", "valueScope": "Machine", "valueType": "Text"});
        assert!(spec_of(b.as_object().unwrap(), None).is_err());
        let b = json!({"Name": "db", "ValueType": "Credential", "CredentialUsername": "u", "CredentialPassword": "p"});
        let s = spec_of(b.as_object().unwrap(), Some("HR")).unwrap();
        assert_eq!(s.folder.as_deref(), Some("HR"));
        assert_eq!(
            s.value,
            AssetValue::Credential {
                username: "u".into(),
                password: "p".into()
            }
        );
    }
}
