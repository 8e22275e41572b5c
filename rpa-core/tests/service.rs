//! Customer service through the engine (in-memory store): the shipped
//! workflow is installed once and never over a workflow of the same name;
//! a report of a problem with a process goes to its handlers, the reporter
//! accepts or sends it back; a process's reports are found by its id.

mod common;

use common::*;
use rpa_core::flow::{Request, Ticket, Who, Workflow};
use rpa_core::service::{FIELD_RESOLUTION, WORKFLOW};
use serde_json::{Map, json};

fn service(w: &World) -> Workflow {
    block(w.engine.workflows())
        .unwrap()
        .into_iter()
        .find(|x| x.name == WORKFLOW)
        .expect("installed")
}

fn state_name(wf: &Workflow, t: &Ticket) -> String {
    wf.state(t.state_id).unwrap().name.clone()
}

fn act(w: &World, t: &Ticket, who: &str, transition: &str, fields: Map<String, serde_json::Value>) -> Ticket {
    let wf = service(w);
    let id = wf
        .transitions
        .iter()
        .find(|x| x.name == transition && x.source_state_id == t.state_id)
        .unwrap_or_else(|| panic!("{transition} from {}", state_name(&wf, t)))
        .id;
    let req = Request {
        transition_id: id,
        suggestion: String::new(),
        fields,
    };
    block(w.engine.move_ticket(t.id, who, "ticket.handle", |t, ctx| {
        t.handle(ctx, Who::Person(who), &req)
    }))
    .unwrap()
}

#[test]
fn a_problem_is_handled_sent_back_and_accepted() {
    let mut w = World::new();
    assert!(block(w.engine.install_templates()).unwrap());
    assert!(!block(w.engine.install_templates()).unwrap(), "once");
    let p = w.process(|_| {});
    let other = w.process(|s| s.name = "claims".into());
    let alice = w.user.clone();
    let t = block(
        w.engine
            .report_problem(&alice, &p, "", "It stops after the login page."),
    )
    .unwrap();
    let wf = service(&w);
    assert_eq!(state_name(&wf, &t), "Handling");
    assert_eq!((t.participant.as_str(), t.creator.as_str()), ("admin", "alice"));
    assert_eq!(t.title, "Problem with invoice");
    assert!(t.sn.starts_with("feedback_"), "{}", t.sn);

    // Alice may not resolve her own report; the handler may.
    let wf2 = service(&w);
    let resolved = wf2.transitions.iter().find(|x| x.name == "Resolved").unwrap().id;
    let refused = block(w.engine.move_ticket(t.id, "alice", "ticket.handle", |t, ctx| {
        t.handle(
            ctx,
            Who::Person("alice"),
            &Request {
                transition_id: resolved,
                suggestion: String::new(),
                fields: Map::new(),
            },
        )
    }));
    assert!(refused.is_err());
    let mut answer = Map::new();
    answer.insert(FIELD_RESOLUTION.into(), json!("Clear the browser cache."));
    let t = act(&w, &t, "admin", "Resolved", answer);
    assert_eq!(
        (state_name(&wf, &t), t.participant.as_str()),
        ("Acceptance".into(), "alice")
    );
    let t = act(&w, &t, "alice", "Not solved", Map::new());
    assert_eq!(state_name(&wf, &t), "Handling", "back to the handlers");
    let mut answer = Map::new();
    answer.insert(FIELD_RESOLUTION.into(), json!("A new package version fixes it."));
    let t = act(&w, &t, "admin", "Resolved", answer);
    let t = act(&w, &t, "alice", "Accept", Map::new());
    assert!(t.is_end);
    assert_eq!(state_name(&wf, &t), "Closed");
    assert_eq!(t.fields[FIELD_RESOLUTION], "A new package version fixes it.");

    let mine: Vec<i64> = block(w.engine.process_problems(&p))
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(mine, [t.id]);
    assert!(block(w.engine.process_problems(&other)).unwrap().is_empty());
    assert!(
        block(w.engine.report_problem(&alice, &p, "", "  ")).is_err(),
        "no problem said"
    );
    w.audit_ok();
}

#[test]
fn a_workflow_of_the_same_name_is_kept() {
    let w = World::new();
    let mut own = rpa_core::service::template();
    own.description = "ours".into();
    block(w.engine.save_workflow(rpa_core::model::Actor::System, "admin", own)).unwrap();
    assert!(!block(w.engine.install_templates()).unwrap());
    assert_eq!(service(&w).description, "ours");
}
