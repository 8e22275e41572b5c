//! The workflow engine (seed 004) through the engine, with the in-memory
//! store and a manual clock: definitions refused with their reason, the
//! participant rules, every ticket operation, robot states with a robot
//! that finishes or fails, timers, sub-workflows, hooks with and without
//! `wait`, and bad input that changes nothing.

mod common;

use common::{World, block};
use rpa_core::flow::ticket::{Waiting, intervene};
use rpa_core::flow::{Directory, Request, Ticket, Who, Workflow, WorkflowDef};
use rpa_core::job::FinishStatus;
use rpa_core::model::*;
use rpa_core::{Error, TicketQuery};
use serde_json::{Map, Value, json};

fn directory() -> Directory {
    serde_json::from_value(json!({
        "users": [
            {"username": "admin", "dept_id": 1, "is_admin": true},
            {"username": "lilei", "alias": "李磊", "dept_id": 2},
            {"username": "zhangsan", "dept_id": 2},
            {"username": "guiji", "dept_id": 3},
            {"username": "wangwu", "dept_id": 3},
            {"username": "lisi", "dept_id": 3},
            {"username": "jack", "dept_id": 1},
            {"username": "gone", "dept_id": 1, "is_active": false}
        ],
        "depts": [
            {"id": 1, "name": "总部", "leader": "admin"},
            {"id": 2, "name": "技术部", "leader": "zhangsan"},
            {"id": 3, "name": "运维部", "leader": "guiji", "approver": "guiji,wangwu"}
        ],
        "roles": [{"id": 1, "name": "ops", "members": ["guiji", "wangwu", "lisi"]}]
    }))
    .unwrap()
}

fn def(v: Value) -> WorkflowDef {
    serde_json::from_value(v).unwrap()
}

/// start (creator) → review (participant as given) → end; `back` returns to start.
fn two_step(name: &str, participant_type_id: u8, participant: &str, distribute: u8) -> WorkflowDef {
    def(json!({
        "name": name,
        "fields": [
            {"field_key": "days", "field_name": "days", "field_type_id": 10},
            {"field_key": "note", "field_name": "note", "field_type_id": 5},
            {"field_key": "proxy", "field_name": "proxy", "field_type_id": 60}
        ],
        "states": [
            {"name": "new", "type_id": 1, "participant_type_id": 5, "participant": "creator",
             "state_field_str": {"title": 2, "days": 2, "proxy": 3}},
            {"name": "review", "participant_type_id": participant_type_id, "participant": participant,
             "distribute_type_id": distribute, "state_field_str": {"note": 3}},
            {"name": "done", "type_id": 2}
        ],
        "transitions": [
            {"name": "submit", "source_state": "new", "destination_state": "review"},
            {"name": "agree", "source_state": "review", "destination_state": "done"},
            {"name": "back", "source_state": "review", "destination_state": "new", "attribute_type_id": 2,
             "field_require_check": false}
        ]
    }))
}

struct Flow {
    w: World,
    wf: Workflow,
}

impl Flow {
    fn new(d: WorkflowDef) -> Flow {
        let w = World::new();
        block(w.engine.sync_directory(Actor::System, directory())).unwrap();
        let wf = block(w.engine.save_workflow(Actor::System, "admin", d)).unwrap();
        Flow { w, wf }
    }

    fn transition(&self, name: &str) -> i64 {
        self.wf.transitions.iter().find(|t| t.name == name).unwrap().id
    }

    fn state(&self, name: &str) -> i64 {
        self.wf.states.iter().find(|s| s.name == name).unwrap().id
    }

    fn create(&self, user: &str, fields: Value) -> Result<Ticket, Error> {
        let req = Request {
            transition_id: self.transition("submit"),
            suggestion: String::new(),
            fields: fields.as_object().cloned().unwrap_or_default(),
        };
        block(self.w.engine.create_ticket("t", user, self.wf.id, (0, 0), &req))
    }

    fn handle(&self, t: &Ticket, user: &str, transition: &str, fields: Value) -> Result<Ticket, Error> {
        let req = Request {
            transition_id: self.transition(transition),
            suggestion: format!("{user} {transition}"),
            fields: fields.as_object().cloned().unwrap_or_default(),
        };
        block(self.w.engine.move_ticket(t.id, user, "ticket.handle", |t, ctx| {
            t.handle(ctx, Who::Person(user), &req)
        }))
    }

    fn op(
        &self,
        t: &Ticket,
        op: impl Fn(&Ticket, &rpa_core::flow::Ctx<'_>) -> Result<rpa_core::flow::Moved, String>,
    ) -> Result<Ticket, Error> {
        block(self.w.engine.move_ticket(t.id, "someone", "ticket.op", op))
    }

    fn get(&self, t: &Ticket) -> Ticket {
        block(self.w.engine.ticket(t.id)).unwrap()
    }

    fn logs(&self, t: &Ticket) -> Vec<rpa_core::flow::FlowLog> {
        block(self.w.engine.flow_logs(t.id)).unwrap()
    }
}

fn refused(r: Result<Ticket, Error>, words: &str) {
    match r {
        Err(Error::InvalidArgument(m)) => assert!(m.contains(words), "{m:?} should say {words:?}"),
        other => panic!("expected a refusal saying {words:?}, got {other:?}"),
    }
}

#[test]
fn definitions_are_refused_with_the_exact_reason() {
    let w = World::new();
    let save = |d: WorkflowDef| block(w.engine.save_workflow(Actor::System, "admin", d));
    let mut cycle = two_step("cycle", 1, "zhangsan", 2);
    cycle.transitions.retain(|t| t.name != "agree");
    cycle.transitions.push(
        serde_json::from_value(json!({"name": "again", "source_state": "review", "destination_state": "review"}))
            .unwrap(),
    );
    let e = save(cycle).unwrap_err().to_string();
    assert!(e.contains("no path leads from state new to an end state"), "{e}");
    let mut two_starts = two_step("starts", 1, "zhangsan", 2);
    two_starts.states[1].type_id = 1;
    assert!(
        save(two_starts)
            .unwrap_err()
            .to_string()
            .contains("exactly one start state")
    );
    let mut bad_expr = two_step("expr", 1, "zhangsan", 2);
    bad_expr.transitions[1].condition_expression =
        vec![serde_json::from_value(json!({"expression": "{days} >", "target_state": "new"})).unwrap()];
    assert!(save(bad_expr).unwrap_err().to_string().contains("ends too early"));
    let mut unknown_field = two_step("field", 1, "zhangsan", 2);
    unknown_field.transitions[1].condition_expression =
        vec![serde_json::from_value(json!({"expression": "{budget} > 3", "target_state": "new"})).unwrap()];
    assert!(
        save(unknown_field)
            .unwrap_err()
            .to_string()
            .contains("reads field budget")
    );
    let robot_two_ways = two_step("robot", 6, "missing-process", 2);
    assert!(save(robot_two_ways).unwrap_err().to_string().contains("does not exist"));
    let mut stray = two_step("stray", 1, "zhangsan", 2);
    stray.transitions[0].destination_state = "nowhere".into();
    assert!(save(stray).unwrap_err().to_string().contains("state nowhere"));
    let mut base = two_step("base", 1, "zhangsan", 2);
    base.fields[0].field_key = "sn".into();
    assert!(save(base).unwrap_err().to_string().contains("ticket's own field"));
    assert!(block(w.engine.workflows()).unwrap().is_empty(), "nothing saved");
}

#[test]
fn a_replaced_definition_keeps_its_ids_and_tickets_in_flight() {
    let f = Flow::new(two_step("leave", 1, "zhangsan", 2));
    let t = f.create("lilei", json!({"title": "x", "days": 2})).unwrap();
    let mut d = two_step("leave", 1, "zhangsan", 2);
    d.description = "now described".into();
    let again = block(f.w.engine.save_workflow(Actor::System, "admin", d)).unwrap();
    assert_eq!(again.id, f.wf.id);
    assert_eq!(again.version, 2);
    assert_eq!(
        again.states.iter().map(|s| s.id).collect::<Vec<_>>(),
        f.wf.states.iter().map(|s| s.id).collect::<Vec<_>>()
    );
    assert_eq!(again.transitions[1].id, f.transition("agree"));
    f.handle(&t, "zhangsan", "agree", json!({})).unwrap();
    assert!(f.get(&t).is_end);
}

#[test]
fn creating_checks_required_fields_and_their_types_and_writes_nothing_when_refused() {
    let f = Flow::new(two_step("leave", 1, "zhangsan", 2));
    refused(f.create("lilei", json!({"title": "x"})), "days");
    refused(f.create("lilei", json!({"title": "x", "days": "many"})), "integer");
    refused(
        f.create("nobody", json!({"title": "x", "days": 1})),
        "not an active user",
    );
    let q = TicketQuery {
        category: "all".into(),
        ..TicketQuery::default()
    };
    assert_eq!(block(f.w.engine.tickets("lilei", &q, 1, 10)).unwrap().1, 0);
    let t = f
        .create(
            "lilei",
            json!({"title": "leave", "days": "2", "note": "ignored: read-only at start"}),
        )
        .unwrap();
    assert_eq!(
        t.fields.get("days"),
        Some(&json!(2)),
        "a form's text becomes an integer"
    );
    assert_eq!(
        t.fields.get("note"),
        None,
        "a field the start state does not list is ignored"
    );
    assert_eq!(t.title, "leave");
    assert_eq!((t.participant_type_id, t.participant.as_str()), (1, "zhangsan"));
    assert_eq!(t.relation, ["lilei", "zhangsan"]);
    let logs = f.logs(&t);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].entry.transition_name, "submit");
    assert_eq!(logs[0].entry.participant, "lilei");
    let events = block(f.w.engine.events(0, 10_000)).unwrap().events;
    let changed: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind() == "ticket_changed")
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(changed.len(), 1, "one domain event for the one ticket created");
    assert_eq!(changed[0]["action"], "ticket.create");
    assert_eq!(changed[0]["ticket"], t.id);
    assert_eq!(changed[0]["participant"], "zhangsan");
    f.w.audit_ok();
}

#[test]
fn only_current_participants_handle_and_a_reject_goes_back() {
    let f = Flow::new(two_step("leave", 5, "creator_tl", 2));
    let t = f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
    assert_eq!(
        t.participant, "zhangsan",
        "creator_tl: the department's leader when it has no approver"
    );
    refused(f.handle(&t, "jack", "agree", json!({})), "not a current participant");
    refused(f.handle(&t, "zhangsan", "submit", json!({})), "not a way out");
    let back = f.handle(&t, "zhangsan", "back", json!({})).unwrap();
    assert!(back.is_rejected);
    assert_eq!(back.state_id, f.state("new"));
    assert_eq!(back.participant, "lilei");
    let again = f
        .handle(&back, "lilei", "submit", json!({"title": "x", "days": 3}))
        .unwrap();
    assert!(!again.is_rejected);
    let done = f.handle(&again, "zhangsan", "agree", json!({"note": "fine"})).unwrap();
    assert!(done.is_end);
    assert_eq!((done.participant_type_id, done.participant.as_str()), (0, ""));
    assert_eq!(done.fields.get("note"), Some(&json!("fine")));
    refused(f.handle(&done, "zhangsan", "agree", json!({})), "ended");
}

#[test]
fn creator_tl_prefers_the_departments_approvers() {
    let f = Flow::new(two_step("leave", 5, "creator_tl", 1));
    let t = f.create("wangwu", json!({"title": "x", "days": 1})).unwrap();
    assert_eq!((t.participant_type_id, t.participant.as_str()), (2, "guiji,wangwu"));
}

#[test]
fn accept_first_lets_one_of_several_handle() {
    let f = Flow::new(two_step("ops", 4, "1", 1));
    let t = f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
    assert_eq!((t.participant_type_id, t.participant.as_str()), (4, "1"));
    let dir = block(f.w.engine.directory()).unwrap();
    assert_eq!(t.participants(&dir), ["guiji", "wangwu", "lisi"]);
    refused(f.handle(&t, "guiji", "agree", json!({})), "accept");
    let duty = |user: &str| {
        let q = TicketQuery {
            category: "duty".into(),
            ..TicketQuery::default()
        };
        block(f.w.engine.tickets(user, &q, 1, 10)).unwrap().1
    };
    assert_eq!(
        (duty("guiji"), duty("wangwu"), duty("jack")),
        (1, 1, 0),
        "the role's members"
    );
    let accepted = f.op(&t, |t, ctx| t.accept(ctx, "guiji")).unwrap();
    assert_eq!((duty("guiji"), duty("wangwu")), (1, 0), "the one who accepted");
    assert_eq!(
        (accepted.participant_type_id, accepted.participant.as_str()),
        (1, "guiji")
    );
    refused(
        f.op(&accepted, |t, ctx| t.accept(ctx, "wangwu")),
        "not a current participant",
    );
    refused(
        f.handle(&accepted, "wangwu", "agree", json!({})),
        "not a current participant",
    );
    refused(f.op(&accepted, |t, ctx| t.accept(ctx, "guiji")), "nothing to accept");
    assert!(f.handle(&accepted, "guiji", "agree", json!({})).unwrap().is_end);
    let kinds: Vec<u8> = f.logs(&t).iter().map(|l| l.entry.intervene_type_id).collect();
    assert_eq!(kinds, [intervene::NORMAL, intervene::ACCEPT, intervene::NORMAL]);
}

#[test]
fn direct_distribution_lets_any_of_them_handle() {
    let f = Flow::new(two_step("ops", 4, "1", 2));
    let t = f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
    assert!(f.handle(&t, "lisi", "agree", json!({})).unwrap().is_end);
}

#[test]
fn random_distribution_picks_one_member() {
    let f = Flow::new(two_step("ops", 4, "1", 3));
    let t = f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
    assert_eq!(t.participant_type_id, 1);
    assert!(
        ["guiji", "wangwu", "lisi"].contains(&t.participant.as_str()),
        "{}",
        t.participant
    );
}

#[test]
fn all_must_handle_moves_once_everyone_has_and_a_reject_wins() {
    let f = Flow::new(two_step("all", 2, "guiji,wangwu", 4));
    let t = f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
    assert_eq!((t.participant_type_id, t.participant.as_str()), (9, "guiji,wangwu"));
    let duty = |user: &str, reverse: bool| {
        let q = TicketQuery {
            category: "duty".into(),
            reverse,
            workflows: vec![f.wf.id],
            ..TicketQuery::default()
        };
        block(f.w.engine.tickets(user, &q, 1, 10)).unwrap().1
    };
    assert_eq!(
        (duty("guiji", true), duty("wangwu", false), duty("lisi", true)),
        (1, 1, 0)
    );
    let one = f.handle(&t, "guiji", "agree", json!({})).unwrap();
    assert_eq!(
        (duty("guiji", true), duty("wangwu", true)),
        (0, 1),
        "only who has not handled yet"
    );
    assert_eq!(one.state_id, f.state("review"), "wangwu has not handled yet");
    assert_eq!(one.participant, "wangwu");
    refused(f.handle(&one, "guiji", "agree", json!({})), "not a current participant");
    let both = f.handle(&one, "wangwu", "agree", json!({})).unwrap();
    assert!(both.is_end);

    let t = f.create("lilei", json!({"title": "y", "days": 1})).unwrap();
    let one = f.handle(&t, "guiji", "back", json!({})).unwrap();
    let both = f.handle(&one, "wangwu", "agree", json!({})).unwrap();
    assert_eq!(both.state_id, f.state("new"), "one reject sends it back");
    assert!(both.is_rejected);
}

#[test]
fn deliver_and_add_node_hand_the_ticket_over() {
    let f = Flow::new(two_step("leave", 1, "zhangsan", 2));
    let t = f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
    refused(
        f.op(&t, |t, ctx| t.deliver(ctx, "zhangsan", "ghost", "")),
        "not an active user",
    );
    refused(
        f.op(&t, |t, ctx| t.deliver(ctx, "zhangsan", "gone", "")),
        "not an active user",
    );
    let added = f
        .op(&t, |t, ctx| t.add_node(ctx, "zhangsan", "jack", "need your input"))
        .unwrap();
    assert!(added.in_add_node);
    assert_eq!(
        (added.participant.as_str(), added.add_node_man.as_str()),
        ("jack", "zhangsan")
    );
    refused(f.handle(&added, "jack", "agree", json!({})), "add_node_end");
    refused(
        f.op(&added, |t, ctx| t.add_node_end(ctx, "zhangsan", "")),
        "not a current participant",
    );
    let back = f.op(&added, |t, ctx| t.add_node_end(ctx, "jack", "done")).unwrap();
    assert!(!back.in_add_node);
    assert_eq!(back.participant, "zhangsan");
    let delivered = f
        .op(&back, |t, ctx| t.deliver(ctx, "zhangsan", "guiji", "yours"))
        .unwrap();
    assert_eq!(delivered.participant, "guiji");
    assert!(delivered.relation.contains(&"jack".to_owned()) && delivered.relation.contains(&"guiji".to_owned()));
    assert!(f.handle(&delivered, "guiji", "agree", json!({})).unwrap().is_end);
    let kinds: Vec<u8> = f.logs(&t).iter().map(|l| l.entry.intervene_type_id).collect();
    assert_eq!(
        kinds,
        [
            intervene::NORMAL,
            intervene::ADD_NODE,
            intervene::ADD_NODE_END,
            intervene::DELIVER,
            intervene::NORMAL
        ]
    );
}

#[test]
fn view_permission_close_change_state_fields_and_comments() {
    let f = Flow::new(two_step("leave", 1, "zhangsan", 2));
    let t = f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
    let dir = block(f.w.engine.directory()).unwrap();
    assert!(
        t.may_view(&f.wf, &dir, "lilei") && t.may_view(&f.wf, &dir, "zhangsan") && t.may_view(&f.wf, &dir, "admin")
    );
    assert!(!t.may_view(&f.wf, &dir, "jack"));
    let mut open = f.wf.clone();
    open.view_permission_check = false;
    assert!(t.may_view(&open, &dir, "jack"));
    assert!(block(f.w.engine.comment_ticket(t.id, "jack", "hi")).is_err());
    block(f.w.engine.comment_ticket(t.id, "lilei", "please hurry")).unwrap();
    let mut given = Map::new();
    given.insert("days".into(), json!("4"));
    refused(block(f.w.engine.update_ticket_fields(t.id, "jack", &given)), "neither");
    assert_eq!(
        block(f.w.engine.update_ticket_fields(t.id, "zhangsan", &given))
            .unwrap()
            .fields["days"],
        json!(4)
    );
    given.insert("budget".into(), json!(1));
    refused(block(f.w.engine.update_ticket_fields(t.id, "admin", &given)), "budget");
    let start = f.state("new");
    refused(
        f.op(&t, |t, ctx| t.change_state(ctx, "zhangsan", start)),
        "administrator",
    );
    let moved = f.op(&t, |t, ctx| t.change_state(ctx, "admin", start)).unwrap();
    assert_eq!((moved.state_id, moved.participant.as_str()), (start, "lilei"));
    refused(
        f.op(&moved, |t, ctx| t.close(ctx, "jack", "no")),
        "creator or an administrator",
    );
    let closed = f.op(&moved, |t, ctx| t.close(ctx, "lilei", "changed my mind")).unwrap();
    assert!(closed.is_end);
    let kinds: Vec<u8> = f.logs(&t).iter().map(|l| l.entry.intervene_type_id).collect();
    assert_eq!(
        kinds,
        [
            intervene::NORMAL,
            intervene::COMMENT,
            intervene::CHANGE_STATE,
            intervene::CLOSE
        ]
    );
}

#[test]
fn conditions_route_a_maker_checker_payment() {
    let f = Flow::new(def(json!({
        "name": "payment",
        "fields": [{"field_key": "amount", "field_name": "amount", "field_type_id": 15}],
        "states": [
            {"name": "new", "type_id": 1, "participant_type_id": 5, "participant": "creator", "state_field_str": {"amount": 2}},
            {"name": "approve", "participant_type_id": 1, "participant": "zhangsan"},
            {"name": "check", "participant_type_id": 1, "participant": "guiji"},
            {"name": "done", "type_id": 2}
        ],
        "transitions": [
            {"name": "submit", "source_state": "new", "destination_state": "approve"},
            {"name": "agree", "source_state": "approve", "destination_state": "done",
             "condition_expression": [{"expression": "{amount} > 10000", "target_state": "check"}]},
            {"name": "checked", "source_state": "check", "destination_state": "done"}
        ]
    })));
    let small = f.create("lilei", json!({"amount": "900"})).unwrap();
    assert!(f.handle(&small, "zhangsan", "agree", json!({})).unwrap().is_end);
    let large = f.create("lilei", json!({"amount": 25000.5})).unwrap();
    let checked = f.handle(&large, "zhangsan", "agree", json!({})).unwrap();
    assert_eq!(
        (checked.state_id, checked.participant.as_str()),
        (f.state("check"), "guiji")
    );
}

#[test]
fn a_field_and_remembered_participants() {
    let mut d = two_step("proxy", 7, "proxy", 2);
    d.states[0].remember_last_man_enable = false;
    let f = Flow::new(d);
    let t = f
        .create("lilei", json!({"title": "x", "days": 1, "proxy": "wangwu"}))
        .unwrap();
    assert_eq!(t.participant, "wangwu");
    refused(
        f.create("lilei", json!({"title": "x", "days": 1})),
        "resolves to no one",
    );
}

#[test]
fn a_robot_state_starts_a_job_and_its_end_moves_the_ticket() {
    let mut f = Flow::new(two_step("placeholder", 1, "zhangsan", 2));
    let p = f.w.process(|s| {
        s.name = "grant".into();
        s.retry.max_retries = 0;
        s.arguments = vec![ArgumentSpec {
            name: "days".into(),
            id: "days".into(),
            arg_type: ArgType::Int,
            required: true,
            secret: false,
        }];
    });
    let mut d = two_step("robot", 6, "grant", 2);
    d.transitions.retain(|t| t.name != "back");
    d.states[1].state_field_str.insert("note".into(), 3);
    f.wf = block(f.w.engine.save_workflow(Actor::System, "admin", d)).unwrap();
    let bot = f.w.connect("bot-1");
    let t = f.create("lilei", json!({"title": "x", "days": 4})).unwrap();
    assert_eq!(
        (t.participant_type_id, t.participant.as_str(), t.waiting),
        (6, "grant", Some(Waiting::Robot))
    );
    let key = t.job_key.expect("the robot state's job");
    let job = block(f.w.engine.job(key)).unwrap();
    assert_eq!(job.process, p.id);
    assert_eq!(job.arguments["days"], 4, "the ticket's fields are the job's arguments");
    refused(f.handle(&t, "zhangsan", "agree", json!({})), "engine");

    // The robot fails: the ticket stays, marked; a retry starts a second job.
    f.w.tick();
    assert_eq!(f.w.executes(&bot).len(), 1);
    f.w.beat(&bot, Some(key));
    f.w.finish(&bot, &job, FinishStatus::Failed).unwrap();
    f.w.tick();
    let failed = f.get(&t);
    assert!(!failed.script_run_last_result, "{failed:?}");
    assert_eq!(failed.state_id, t.state_id);
    refused(f.op(&failed, |t, ctx| t.retry_script(ctx, "jack")), "may not see");
    let retried = f.op(&failed, |t, ctx| t.retry_script(ctx, "lilei")).unwrap();
    let second = retried.job_key.unwrap();
    assert_ne!(second, key);
    refused(f.op(&retried, |t, ctx| t.retry_script(ctx, "lilei")), "did not fail");

    // The second succeeds with an output the state may write.
    f.w.tick();
    assert_eq!(f.w.executes(&bot).len(), 1);
    f.w.beat(&bot, Some(second));
    block(f.w.engine.report_finish(
        &bot.code,
        bot.connect,
        second,
        FinishStatus::Success,
        None,
        Some(json!({"note": "granted", "days": 99})),
    ))
    .unwrap();
    f.w.tick();
    let done = f.get(&t);
    assert!(done.is_end, "{done:?}");
    assert_eq!(done.fields["note"], "granted");
    assert_eq!(
        done.fields["days"], 4,
        "a field the state does not mark writable keeps its value"
    );
    let robot_logs: Vec<_> = f
        .logs(&t)
        .into_iter()
        .filter(|l| l.entry.participant_type_id == 6)
        .collect();
    assert_eq!(robot_logs.len(), 2, "the failure and the success");
    assert_eq!(robot_logs[1].entry.participant, "grant");
    assert_eq!(robot_logs[1].entry.transition_name, "agree");
    f.w.audit_ok();
}

#[test]
fn a_timer_transition_fires_after_its_seconds() {
    let mut d = two_step("timer", 1, "zhangsan", 2);
    d.transitions.push(
        serde_json::from_value(json!({
            "name": "expire", "source_state": "review", "destination_state": "done",
            "transition_type_id": 2, "timer": 3600
        }))
        .unwrap(),
    );
    let f = Flow::new(d);
    let t = f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
    assert_eq!(t.waiting, Some(Waiting::Timer));
    refused(f.handle(&t, "zhangsan", "expire", json!({})), "timer");
    f.w.advance(3_599_000);
    f.w.tick();
    assert!(!f.get(&t).is_end);
    f.w.advance(1_000);
    assert_eq!(f.w.tick().tickets_moved, 1);
    let done = f.get(&t);
    assert!(done.is_end);
    assert_eq!(f.logs(&t).last().unwrap().entry.participant, "loonrobot");
    f.w.advance(3_600_000);
    assert_eq!(f.w.tick().tickets_moved, 0, "fired once");
}

#[test]
fn a_parent_moves_on_when_all_its_children_end() {
    let w = World::new();
    block(w.engine.sync_directory(Actor::System, directory())).unwrap();
    let child = block(
        w.engine
            .save_workflow(Actor::System, "admin", two_step("app", 1, "zhangsan", 2)),
    )
    .unwrap();
    let parent_def = def(json!({
        "name": "project",
        "states": [
            {"name": "new", "type_id": 1, "participant_type_id": 5, "participant": "creator"},
            {"name": "developing", "participant_type_id": 1, "participant": "loonrobot", "sub_workflow": "app"},
            {"name": "done", "type_id": 2}
        ],
        "transitions": [
            {"name": "submit", "source_state": "new", "destination_state": "developing"},
            {"name": "all apps done", "source_state": "developing", "destination_state": "done"}
        ]
    }));
    let parent_wf = block(w.engine.save_workflow(Actor::System, "admin", parent_def)).unwrap();
    let submit = |wf: &Workflow| Request {
        transition_id: wf.transitions[0].id,
        suggestion: String::new(),
        fields: json!({"title": "a", "days": 1}).as_object().cloned().unwrap(),
    };
    let parent = block(
        w.engine
            .create_ticket("p", "lilei", parent_wf.id, (0, 0), &submit(&parent_wf)),
    )
    .unwrap();
    assert_eq!(parent.waiting, Some(Waiting::Children));
    let developing = parent_wf.states[1].id;
    let wrong = block(w.engine.create_ticket(
        "c",
        "lilei",
        child.id,
        (parent.id, parent_wf.states[0].id),
        &submit(&child),
    ));
    assert!(wrong.unwrap_err().to_string().contains("not in state"));
    let kids: Vec<Ticket> = (0..2)
        .map(|_| {
            block(
                w.engine
                    .create_ticket("c", "lilei", child.id, (parent.id, developing), &submit(&child)),
            )
            .unwrap()
        })
        .collect();
    let agree = child.transitions[1].id;
    let handle = |t: &Ticket| {
        let req = Request {
            transition_id: agree,
            ..Request::default()
        };
        block(w.engine.move_ticket(t.id, "zhangsan", "ticket.handle", |t, ctx| {
            t.handle(ctx, Who::Person("zhangsan"), &req)
        }))
        .unwrap()
    };
    handle(&kids[0]);
    assert!(
        !block(w.engine.ticket(parent.id)).unwrap().is_end,
        "one child is still open"
    );
    handle(&kids[1]);
    assert!(
        block(w.engine.ticket(parent.id)).unwrap().is_end,
        "the last child's end moves the parent"
    );
}

#[test]
fn a_hook_with_wait_moves_on_when_posted_and_without_waits_for_its_callback() {
    for wait in [true, false] {
        let d = two_step(
            "hook",
            10,
            &json!({"hook_url": "http://127.0.0.1:9/hook", "hook_token": "tok", "wait": wait}).to_string(),
            2,
        );
        let mut d = d;
        d.transitions.retain(|t| t.name != "back");
        let f = Flow::new(d);
        let t = f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
        assert_eq!((t.participant_type_id, t.participant.as_str()), (10, "***"));
        let due = block(f.w.engine.hooks_due()).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.hook_token, "tok");
        refused(
            f.op(&t, |t, ctx| t.hook_answered(ctx, true, "", &Map::new())),
            "not posted yet",
        );
        // Failed posts: marked, tried again after 2, 4, 8, 16 s, then only when retried.
        let mut failed = t.clone();
        for n in 1..=rpa_core::flow::ticket::HOOK_TRIES {
            failed = block(f.w.engine.hook_posted(t.id, false, "connection refused")).unwrap();
            assert!(!failed.script_run_last_result);
            assert!(block(f.w.engine.hooks_due()).unwrap().is_empty(), "not due at once");
            f.w.advance(1000 << n);
            let due = block(f.w.engine.hooks_due()).unwrap().len();
            assert_eq!(
                due,
                usize::from(n < rpa_core::flow::ticket::HOOK_TRIES),
                "after failure {n}"
            );
        }
        let retried = f.op(&failed, |t, ctx| t.retry_script(ctx, "lilei")).unwrap();
        assert_eq!(block(f.w.engine.hooks_due()).unwrap().len(), 1);
        let posted = f.op(&retried, |t, ctx| t.hook_posted(ctx, true, "")).unwrap();
        assert_eq!(posted.is_end, wait, "wait: true moves on once posted");
        if !wait {
            assert!(block(f.w.engine.hooks_due()).unwrap().is_empty(), "posted once");
            let mut values = Map::new();
            values.insert("note".into(), json!("from the hook"));
            let answered = f
                .op(&posted, |t, ctx| t.hook_answered(ctx, true, "ok", &values))
                .unwrap();
            assert!(answered.is_end);
            assert_eq!(answered.fields["note"], "from the hook");
            refused(
                f.op(&answered, |t, ctx| t.hook_answered(ctx, true, "", &Map::new())),
                "not waiting on a hook",
            );
        }
    }
}

mod simulation {
    //! Random operations by random users on a workflow with every kind of
    //! human participant: a ticket is never left in a state nobody can
    //! handle, nobody moves it who was not a participant, and its flow log
    //! replays to the state it is in.

    use super::*;
    use proptest::prelude::*;

    const USERS: [&str; 8] = ["admin", "lilei", "zhangsan", "guiji", "wangwu", "lisi", "jack", "gone"];

    fn workflow() -> WorkflowDef {
        def(json!({
            "name": "sim",
            "fields": [{"field_key": "n", "field_name": "n", "field_type_id": 10}],
            "states": [
                {"name": "new", "type_id": 1, "participant_type_id": 5, "participant": "creator", "state_field_str": {"n": 2}},
                {"name": "tl", "participant_type_id": 5, "participant": "creator_tl", "distribute_type_id": 1},
                {"name": "ops", "participant_type_id": 4, "participant": "1", "distribute_type_id": 1},
                {"name": "pick", "participant_type_id": 3, "participant": "3", "distribute_type_id": 3},
                {"name": "dept", "participant_type_id": 3, "participant": "2", "distribute_type_id": 2},
                {"name": "end", "type_id": 2}
            ],
            "transitions": [
                {"name": "submit", "source_state": "new", "destination_state": "tl"},
                {"name": "tl ok", "source_state": "tl", "destination_state": "ops"},
                {"name": "tl no", "source_state": "tl", "destination_state": "new", "attribute_type_id": 2, "field_require_check": false},
                {"name": "ops ok", "source_state": "ops", "destination_state": "pick"},
                {"name": "ops no", "source_state": "ops", "destination_state": "tl", "attribute_type_id": 2},
                {"name": "pick ok", "source_state": "pick", "destination_state": "dept"},
                {"name": "dept ok", "source_state": "dept", "destination_state": "end"},
                {"name": "dept no", "source_state": "dept", "destination_state": "new", "attribute_type_id": 2}
            ]
        }))
    }

    fn run(ops: &[(u8, u8, u8)]) {
        let f = Flow::new(workflow());
        let dir = directory();
        let mut t = f.create("lilei", json!({"n": 1})).unwrap();
        let mut tickets = vec![t.clone()];
        for &(op, who, arg) in ops {
            if f.get(&t).is_end {
                t = f
                    .create(["lilei", "wangwu", "jack"][arg as usize % 3], json!({"n": 1}))
                    .unwrap();
                tickets.push(t.clone());
            }
            let before = f.get(&t);
            let people = before.participants(&dir);
            // Mostly someone who may act, sometimes anyone.
            let user = match people.len() {
                n if n > 0 && who < 6 => people[who as usize % n].as_str(),
                _ => USERS[who as usize % USERS.len()],
            };
            let other = USERS[arg as usize % USERS.len()];
            let names: Vec<i64> = f.wf.out_of(before.state_id).map(|t| t.id).collect();
            let outcome = match op % 8 {
                0..=2 if !names.is_empty() => {
                    let transition = names[arg as usize % names.len()];
                    let req = Request {
                        transition_id: transition,
                        suggestion: String::new(),
                        fields: json!({"n": arg}).as_object().cloned().unwrap(),
                    };
                    let r = block(f.w.engine.move_ticket(t.id, user, "ticket.handle", |t, ctx| {
                        t.handle(ctx, Who::Person(user), &req)
                    }));
                    if r.is_ok() {
                        assert!(
                            people.iter().any(|p| p == user),
                            "{user} moved it without being a participant"
                        );
                    }
                    r
                }
                3 => f.op(&before, |t, ctx| t.accept(ctx, user)),
                4 => f.op(&before, |t, ctx| t.deliver(ctx, user, other, "")),
                5 => f.op(&before, |t, ctx| t.add_node(ctx, user, other, "")),
                6 => f.op(&before, |t, ctx| t.add_node_end(ctx, user, "")),
                7 if arg == 0 => f.op(&before, |t, ctx| t.close(ctx, user, "")),
                _ => block(f.w.engine.comment_ticket(t.id, user, "a comment")).map(|()| f.get(&t)),
            };
            match outcome {
                Ok(after) => t = after,
                Err(Error::InvalidArgument(_)) => assert_eq!(f.get(&t), before, "a refusal changes nothing"),
                Err(e) => panic!("{e}"),
            }
            let now = f.get(&t);
            if !now.is_end {
                assert!(!now.participants(&dir).is_empty(), "nobody can handle {now:?}");
                assert!(now.participants(&dir).iter().all(|p| dir.active(p)));
            }
        }
        // Each flow log replays to its ticket's state.
        for t in &tickets {
            let mut state = f.wf.start().id;
            for l in f.logs(t) {
                if l.entry.intervene_type_id == intervene::CLOSE {
                    state = l.entry.state_id;
                    continue;
                }
                assert_eq!(l.entry.state_id, state, "{l:?}");
                if l.entry.intervene_type_id == intervene::NORMAL && l.entry.transition_id != 0 {
                    state = f.wf.transition(l.entry.transition_id).unwrap().destination_state_id;
                }
            }
            assert_eq!(state, f.get(t).state_id);
        }
        f.w.audit_ok();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn random_operations_keep_every_ticket_handleable_and_replayable(
            ops in proptest::collection::vec((0u8..8, 0u8..8, 0u8..8), 0..60)
        ) {
            run(&ops);
        }
    }
}

#[test]
fn a_robot_pauses_for_a_person_and_resumes_on_any_robot_with_the_decision() {
    use rpa_core::engine::{Progress, StepReport};
    let mut f = Flow::new(def(json!({
        "name": "payment check",
        "fields": [{"field_key": "amount", "field_name": "amount", "field_type_id": 15},
                   {"field_key": "note", "field_name": "note", "field_type_id": 5}],
        "states": [
            {"name": "paused", "type_id": 1, "participant_type_id": 5, "participant": "creator"},
            {"name": "decide", "participant_type_id": 4, "participant": "1", "distribute_type_id": 2,
             "state_field_str": {"amount": 1, "note": 3}},
            {"name": "done", "type_id": 2}
        ],
        "transitions": [
            {"name": "ask", "source_state": "paused", "destination_state": "decide"},
            {"name": "approve", "source_state": "decide", "destination_state": "done"},
            {"name": "refuse", "source_state": "decide", "destination_state": "done", "attribute_type_id": 2}
        ]
    })));
    let p = f.w.process(|s| {
        s.name = "pay".into();
        s.pause_workflow = Some("payment check".into());
        s.expiration_ms = Some(60_000);
    });
    let other = f.w.process(|s| s.name = "other".into());
    let one = f.w.connect("bot-1");
    let job = f.w.start(&p, json!({}));
    f.w.tick();
    assert_eq!(f.w.executes(&one).len(), 1);
    f.w.beat(&one, Some(job.key));
    let pause = |at: u32, pause: bool| {
        block(f.w.engine.report_checkpoint(
            &one.code,
            one.connect,
            job.key,
            Progress {
                checkpoint: Some(json!({"amount": 25000, "row": 17})),
                step: Some(StepReport {
                    step: at,
                    name: Some("check the amount".into()),
                    task: None,
                    pause,
                }),
            },
        ))
    };
    pause(1, false).unwrap();
    let suspended = pause(2, true).unwrap();
    assert_eq!(suspended.state, JobState::Suspended);
    assert_eq!(
        suspended.deadline, None,
        "a person's wait does not count against the deadline"
    );
    assert!(suspended.step_records.last().unwrap().pause, "jobStatus stopTag 1");
    assert_eq!(f.w.robot(&one).job, None, "the robot is free while the person decides");
    let free = f.w.start(&other, json!({}));
    f.w.tick();
    assert_eq!(f.w.executes(&one)[0].run_instance_id, free.key, "and takes other work");
    f.w.beat(&one, Some(free.key));
    f.w.finish(&one, &free, FinishStatus::Success).unwrap();

    // The ticket: the run's data as fields, for the role to decide.
    let q = TicketQuery {
        category: "duty".into(),
        ..TicketQuery::default()
    };
    let (duty, _) = block(f.w.engine.tickets("wangwu", &q, 1, 10)).unwrap();
    assert_eq!(duty.len(), 1);
    let ticket = duty[0].clone();
    assert_eq!(ticket.pauses_job, Some(job.key));
    assert_eq!(ticket.fields["amount"], 25000);
    assert_eq!(ticket.title, "pay: check the amount");
    f.wf = block(f.w.engine.workflow(ticket.workflow_id)).unwrap().as_ref().clone();
    f.w.advance(120_000);
    f.w.tick();
    assert_eq!(f.w.job(&job).state, JobState::Suspended, "no expiry while waiting");

    // The decision resumes it, on another robot, with the decision in its arguments.
    let two = f.w.connect("bot-2");
    f.handle(&ticket, "wangwu", "approve", json!({"note": "ok up to 30k"}))
        .unwrap();
    let resumed = f.w.job(&job);
    assert!(
        matches!(resumed.state, JobState::Pending | JobState::Running),
        "{:?}",
        resumed.state
    );
    f.w.tick();
    let execute =
        f.w.executes(&two)
            .into_iter()
            .find(|e| e.run_instance_id == job.key)
            .expect("resumed on bot-2");
    let arg = |name: &str| {
        execute
            .arguments
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.clone())
    };
    assert_eq!(arg("decision").as_deref(), Some("approve"));
    assert_eq!(arg("approved").as_deref(), Some("true"));
    assert_eq!(arg("note").as_deref(), Some("ok up to 30k"));
    f.w.beat(&two, Some(job.key));
    let done = f.w.finish(&two, &job, FinishStatus::Success).unwrap();
    assert_eq!(done.state, JobState::Successful);
    f.w.audit_ok();
}

#[test]
fn a_pause_without_a_pause_workflow_is_refused_and_the_run_goes_on() {
    use rpa_core::engine::{Progress, StepReport};
    let mut f = Flow::new(two_step("leave", 1, "zhangsan", 2));
    let p = f.w.process(|s| s.name = "plain".into());
    let bot = f.w.connect("bot-1");
    let job = f.w.start(&p, json!({}));
    f.w.tick();
    f.w.beat(&bot, Some(job.key));
    let e = block(f.w.engine.report_checkpoint(
        &bot.code,
        bot.connect,
        job.key,
        Progress {
            checkpoint: None,
            step: Some(StepReport {
                step: 1,
                name: None,
                task: None,
                pause: true,
            }),
        },
    ))
    .unwrap_err();
    assert!(e.to_string().contains("names no workflow"), "{e}");
    assert_eq!(f.w.job(&job).state, JobState::Running);
}

#[test]
fn limit_expression_says_who_may_create_and_how_often() {
    let mut d = two_step("leave", 1, "zhangsan", 2);
    d.limit_expression = json!({"period": 24, "count": 2, "level": 1, "allow_depts": "2,3"});
    let f = Flow::new(d);
    refused(f.create("jack", json!({"title": "x", "days": 1})), "department may not");
    f.create("lilei", json!({"title": "x", "days": 1})).unwrap();
    f.create("lilei", json!({"title": "y", "days": 1})).unwrap();
    refused(f.create("lilei", json!({"title": "z", "days": 1})), "at most 2 tickets");
    f.create("wangwu", json!({"title": "x", "days": 1})).unwrap();
    f.w.advance(24 * 3_600_000 + 1);
    f.create("lilei", json!({"title": "next day", "days": 1})).unwrap();

    let w = World::new();
    let mut bad = two_step("bad", 1, "zhangsan", 2);
    bad.limit_expression = json!({"period": 24});
    let e = block(w.engine.save_workflow(Actor::System, "admin", bad)).unwrap_err();
    assert!(e.to_string().contains("period and count go together"), "{e}");
    let mut everyone = two_step("everyone", 1, "zhangsan", 2);
    everyone.limit_expression = json!({"period": 1, "count": 1, "level": 2, "allow_roles": "1"});
    block(w.engine.sync_directory(Actor::System, directory())).unwrap();
    let wf = block(w.engine.save_workflow(Actor::System, "admin", everyone)).unwrap();
    let req = Request {
        transition_id: wf.transitions[0].id,
        suggestion: String::new(),
        fields: json!({"title": "x", "days": 1}).as_object().cloned().unwrap(),
    };
    assert!(
        block(w.engine.create_ticket("t", "lilei", wf.id, (0, 0), &req))
            .unwrap_err()
            .to_string()
            .contains("roles may not")
    );
    block(w.engine.create_ticket("t", "guiji", wf.id, (0, 0), &req)).unwrap();
    let e = block(w.engine.create_ticket("t", "wangwu", wf.id, (0, 0), &req)).unwrap_err();
    assert!(
        e.to_string()
            .contains("at most 1 tickets of this workflow may be created in 1 hours"),
        "{e}"
    );
}

#[test]
fn a_child_ticket_can_be_handled_by_a_field_of_its_parent() {
    let w = World::new();
    block(w.engine.sync_directory(Actor::System, directory())).unwrap();
    let child = block(
        w.engine
            .save_workflow(Actor::System, "admin", two_step("app", 8, "owner", 2)),
    )
    .unwrap();
    let parent_wf = block(w.engine.save_workflow(
        Actor::System,
        "admin",
        def(json!({
            "name": "project",
            "fields": [{"field_key": "owner", "field_name": "owner", "field_type_id": 60}],
            "states": [
                {"name": "new", "type_id": 1, "participant_type_id": 5, "participant": "creator", "state_field_str": {"owner": 2}},
                {"name": "developing", "participant_type_id": 1, "participant": "loonrobot", "sub_workflow": "app"},
                {"name": "done", "type_id": 2}
            ],
            "transitions": [
                {"name": "submit", "source_state": "new", "destination_state": "developing"},
                {"name": "all apps done", "source_state": "developing", "destination_state": "done"}
            ]
        })),
    ))
    .unwrap();
    let req = |wf: &Workflow, fields: Value| Request {
        transition_id: wf.transitions[0].id,
        suggestion: String::new(),
        fields: fields.as_object().cloned().unwrap(),
    };
    let parent = block(w.engine.create_ticket(
        "p",
        "lilei",
        parent_wf.id,
        (0, 0),
        &req(&parent_wf, json!({"owner": "guiji"})),
    ))
    .unwrap();
    let kid = block(w.engine.create_ticket(
        "c",
        "lilei",
        child.id,
        (parent.id, parent_wf.states[1].id),
        &req(&child, json!({"title": "a", "days": 1})),
    ))
    .unwrap();
    assert_eq!(
        (kid.participant_type_id, kid.participant.as_str()),
        (1, "guiji"),
        "the parent's owner field"
    );
    assert_eq!(
        (kid.parent_ticket_id, kid.parent_ticket_state_id),
        (parent.id, parent_wf.states[1].id)
    );
}

#[test]
fn ticket_lists_page_newest_first_with_and_without_other_filters() {
    let f = Flow::new(two_step("leave", 1, "zhangsan", 2));
    let made: Vec<i64> = (0..25)
        .map(|i| {
            f.create("lilei", json!({"title": format!("t{i}"), "days": 1}))
                .unwrap()
                .id
        })
        .collect();
    f.create("wangwu", json!({"title": "other", "days": 1})).unwrap();
    let list = |q: TicketQuery, page: usize| {
        let (page, total) = block(f.w.engine.tickets("lilei", &q, page, 10)).unwrap();
        (page.into_iter().map(|t| t.id).collect::<Vec<_>>(), total)
    };
    let owner = TicketQuery {
        category: "owner".into(),
        reverse: true,
        ..TicketQuery::default()
    };
    let newest: Vec<i64> = made.iter().rev().copied().collect();
    assert_eq!(list(owner.clone(), 1), (newest[..10].to_vec(), 25));
    assert_eq!(list(owner.clone(), 3), (newest[20..].to_vec(), 25));
    assert_eq!(list(owner.clone(), 4), (vec![], 25));
    // The same list through the filtered path (a title filter that every ticket matches).
    let filtered = TicketQuery {
        title: "t".into(),
        ..owner.clone()
    };
    assert_eq!(list(filtered, 2), (newest[10..20].to_vec(), 25));
    let oldest = TicketQuery {
        reverse: false,
        ..owner
    };
    assert_eq!(list(oldest, 1).0, made[..10].to_vec());
    let duty = TicketQuery {
        category: "duty".into(),
        reverse: true,
        ..TicketQuery::default()
    };
    let (_, zhangsan) = block(f.w.engine.tickets("zhangsan", &duty, 1, 10)).unwrap();
    assert_eq!(zhangsan, 26);
}
