//! The operations centre's content through the engine (in-memory store,
//! manual clock): articles written by those with ManageContent, listed
//! newest first, found by words within a section, changed and removed;
//! the hot applications ranked from runs and subscriptions; an `admin`
//! role of an earlier release gets the permission at start.

mod common;

use common::*;
use rpa_core::content::{Draft, Section};
use rpa_core::engine::NewPackage;
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::store::People as _;
use rpa_core::{Error, Key};
use serde_json::json;

fn draft(section: Section, title: &str, body: &str, tags: &[&str]) -> Draft {
    Draft {
        section,
        title: title.into(),
        body: body.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        link: None,
    }
}

fn admin(w: &World) -> Actor {
    let u = block(w.engine.store().user_by_name("admin")).unwrap().unwrap();
    Actor::User(u.id)
}

#[test]
fn articles_are_written_found_by_words_changed_and_removed() {
    let w = World::new();
    let by = admin(&w);
    let e = &w.engine;
    let ocr = block(e.publish_article(
        by,
        draft(
            Section::Knowledge,
            "Reading invoices",
            "The OCR capability turns a scanned invoice into text.",
            &["ocr"],
        ),
    ))
    .unwrap();
    w.advance(1000);
    let queues = block(e.publish_article(
        by,
        draft(
            Section::Knowledge,
            "Queues and triggers",
            "Items wait for a round.",
            &[],
        ),
    ))
    .unwrap();
    w.advance(1000);
    let news =
        block(e.publish_article(by, draft(Section::News, "Invoice robots are live", "All regions.", &[]))).unwrap();
    assert_eq!(ocr.author, "admin");

    let ids = |v: Vec<rpa_core::content::Article>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(block(e.articles(None, 10)).unwrap()),
        [news.id, queues.id, ocr.id],
        "newest first"
    );
    assert_eq!(
        ids(block(e.articles(Some(Section::Knowledge), 1)).unwrap()),
        [queues.id]
    );
    let mut found = ids(block(e.search_articles("invoice", None, 10)).unwrap());
    found.sort_unstable();
    assert_eq!(found, [ocr.id, news.id], "a word starts words of title and body");
    assert_eq!(
        ids(block(e.search_articles("INVOICE", Some(Section::News), 10)).unwrap()),
        [news.id]
    );
    assert_eq!(
        ids(block(e.search_articles("ocr scanned", None, 10)).unwrap()),
        [ocr.id],
        "tags and body, every word"
    );
    assert!(block(e.search_articles("  ?! ", None, 10)).unwrap().is_empty());

    // Alice may read but not write.
    let alice = Actor::User(w.user.id);
    let refused = block(e.publish_article(alice, draft(Section::News, "Mine", "", &[])));
    assert!(matches!(refused, Err(Error::PermissionDenied(_))), "{refused:?}");
    let bad = block(e.publish_article(by, draft(Section::News, " ", "", &[])));
    assert!(matches!(bad, Err(Error::InvalidArgument(_))), "{bad:?}");

    let changed = block(e.change_article(
        by,
        ocr.id,
        draft(Section::Knowledge, "Reading receipts", "Receipts become text.", &[]),
    ))
    .unwrap();
    assert_eq!((changed.version, changed.created_at), (2, ocr.created_at));
    assert!(block(e.search_articles("ocr", None, 10)).unwrap().is_empty());
    block(e.remove_article(by, news.id)).unwrap();
    assert!(block(e.search_articles("live", None, 10)).unwrap().is_empty());
    assert!(matches!(block(e.article(news.id)), Err(Error::NotFound(..))));
    assert!(matches!(block(e.remove_article(by, news.id)), Err(Error::NotFound(..))));
    let audit = block(e.audit_events(by, 0, 10_000)).unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .filter(|a| a.action.starts_with("article."))
        .map(|a| &*a.action)
        .collect();
    assert_eq!(
        actions,
        [
            "article.publish",
            "article.publish",
            "article.publish",
            "article.change",
            "article.remove"
        ]
    );
    w.audit_ok();
}

#[test]
fn hot_applications_rank_runs_and_subscriptions() {
    let mut w = World::new();
    let by = admin(&w);
    let busy = w.process(|s| s.name = "busy".into());
    let liked = w.process(|s| s.name = "liked".into());
    let _idle = w.process(|s| s.name = "idle".into());
    let bot = w.connect("r1");
    for _ in 0..3 {
        let job = w.start(&busy, json!({}));
        assert_eq!(w.executes(&bot).len(), 1);
        w.finish(&bot, &job, FinishStatus::Success).unwrap();
        w.beat(&bot, None);
    }
    w.tick();
    let e = &w.engine;
    block(e.add_package_version(
        Actor::System,
        liked.key,
        Some("1.0.0"),
        NewPackage {
            file: Key([7; 16]),
            uri: "http://files/7".into(),
            sha256: format!("{:064x}", 7),
            size: 7,
        },
    ))
    .unwrap();
    let listing = block(e.publish(by, liked.key, None, "liked by all", &[])).unwrap();
    block(e.subscribe(by, listing.id, Some("liked copy"), None)).unwrap();
    let all = block(e.processes()).unwrap();
    let hot = block(e.hot_applications(&all, 30, 10)).unwrap();
    let ranked: Vec<(&str, u64, u64, u64)> = hot
        .iter()
        .map(|h| (h.name.as_str(), h.runs, h.subscriptions, h.score))
        .collect();
    assert_eq!(
        ranked,
        [("liked", 0, 1, 100), ("busy", 3, 0, 3)],
        "idle and the copy rank nowhere"
    );
    assert_eq!(hot[0].listing_id, Some(listing.id));
    // A reader who sees none of the processes still sees the listing.
    let hot = block(e.hot_applications(&[], 30, 10)).unwrap();
    assert_eq!(
        hot.iter()
            .map(|h| (h.name.as_str(), h.subscriptions))
            .collect::<Vec<_>>(),
        [("liked", 1)]
    );
}

#[test]
fn an_admin_role_of_an_earlier_release_gets_the_new_permission() {
    let store = rpa_core::MemoryStore::new();
    let w = World::with_store(store.clone(), 1);
    let role = block(w.engine.store().role_by_name("admin")).unwrap().unwrap();
    let mut old = role.clone();
    old.permissions.remove(&Permission::ManageContent);
    old.version += 1;
    block(rpa_core::store::CommitStore::commit(
        &store,
        rpa_core::store::Commit {
            writes: vec![rpa_core::store::Write::Record(rpa_core::record::Row::of(&old).unwrap())],
            ..Default::default()
        },
    ))
    .unwrap();
    let by = admin(&w);
    assert!(block(w.engine.publish_article(by, draft(Section::News, "x", "", &[]))).is_err());
    // The next start.
    let again = World::with_store(store, 2);
    let by = admin(&again);
    block(again.engine.publish_article(by, draft(Section::News, "x", "", &[]))).unwrap();
    again.audit_ok();
}
