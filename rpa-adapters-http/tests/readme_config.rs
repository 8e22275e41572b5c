//! The configuration file the README shows is one the server takes: it
//! parses, and applying it creates what it names.

use std::sync::Arc;

use rpa_adapters_http::config::Config;
use rpa_core::auth::PasswordCost;
use rpa_core::{Engine, EngineConfig, ManualClock, MemoryStore, Timestamp};

#[tokio::test]
async fn the_readme_configuration_applies() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = &readme[readme.find("## Configuration file").expect("the section")..];
    let json = section.split("```json").nth(1).unwrap().split("```").next().unwrap();
    let config = Config::parse(json).unwrap();
    let engine = Engine::new(
        MemoryStore::new(),
        Arc::new(ManualClock::new(Timestamp(1_767_225_600_000))),
        EngineConfig {
            password_cost: PasswordCost::TESTING,
            ..EngineConfig::default()
        },
    );
    config.apply(&engine).await.unwrap();
    let names: Vec<String> = engine
        .processes()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.spec.name.clone())
        .collect();
    assert_eq!(names, ["Invoice entry", "Claims"]);
    assert_eq!(engine.schedules().await.unwrap().len(), 1);
    assert_eq!(engine.pipelines().await.unwrap()[0].plan.def.name, "invoices twice");
    assert_eq!(engine.pools().await.unwrap()[0].spec.max, 4);
    assert_eq!(engine.workflows().await.unwrap().len(), 1);
    let ocr = engine.capability("ocr").await.unwrap().expect("the OCR capability");
    assert_eq!((ocr.spec.daily_quota, ocr.version), (Some(1000), 1));
    // Applying it again changes nothing: the same spec is not registered again.
    config.apply(&engine).await.unwrap();
    assert_eq!(engine.capability("ocr").await.unwrap().unwrap().version, 1);
    use rpa_core::store::People;
    let olga = engine.store().user_by_name("olga").await.unwrap().unwrap();
    let olga = rpa_core::model::Actor::User(olga.id);
    use rpa_core::model::Permission::*;
    assert!(engine.has_permission(olga, OperateAllJobs).await.unwrap());
    assert!(!engine.has_permission(olga, ManageUsers).await.unwrap());
}
