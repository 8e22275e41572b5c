//! Customer service (seed 001 §6.4.2): a person reports a problem with a
//! process; the support people handle it; the person who reported it
//! accepts the answer or sends it back. It is a workflow of the workflow
//! engine ([`crate::flow`]) shipped with the platform ([`template`]),
//! installed at start unless one of that name exists (a configuration's
//! own `customer-service` workflow replaces it), so its tickets are seen
//! and handled through the seed 004 API like any other; a process's page
//! in the console opens one. Pure: the template and what a report is.

use serde_json::{Map, Value, json};

use crate::flow::WorkflowDef;
use crate::model::Process;

/// The template's name.
pub const WORKFLOW: &str = "customer-service";
/// The serial number prefix of its tickets.
pub const SN_PREFIX: &str = "feedback";
/// The field that names the process (its name).
pub const FIELD_PROCESS: &str = "process";
/// The field that holds the process's id: a process's tickets are found by it.
pub const FIELD_PROCESS_ID: &str = "process_id";
/// The field the reporter describes the problem in.
pub const FIELD_PROBLEM: &str = "problem";
/// The field holding who handles (usernames, comma separated; default `admin`).
pub const FIELD_HANDLERS: &str = "handlers";
/// The field the handler answers in.
pub const FIELD_RESOLUTION: &str = "resolution";
/// Longest problem description, in bytes.
pub const MAX_PROBLEM: usize = 20_000;

/// The shipped workflow: reported → handling (the `handlers` field's
/// people) → acceptance (the reporter) → closed, or back to handling.
pub fn template() -> WorkflowDef {
    let def = json!({
        "name": WORKFLOW,
        "description": "customer service: a problem with a process, reported, handled and accepted (seed 001 §6.4.2)",
        "display_form_str": ["title", FIELD_PROCESS, FIELD_PROBLEM, FIELD_RESOLUTION],
        "fields": [
            {"field_key": FIELD_PROCESS, "field_name": "Process", "field_type_id": 5, "order_id": 10},
            {"field_key": FIELD_PROCESS_ID, "field_name": "Process id", "field_type_id": 5, "order_id": 20},
            {"field_key": FIELD_PROBLEM, "field_name": "Problem", "field_type_id": 55, "order_id": 30},
            {"field_key": FIELD_HANDLERS, "field_name": "Handled by", "field_type_id": 60, "order_id": 40,
             "default_value": "admin",
             "description": "usernames, comma separated: who handles the reports"},
            {"field_key": FIELD_RESOLUTION, "field_name": "Resolution", "field_type_id": 55, "order_id": 50}
        ],
        "states": [
            {"name": "Reported", "type_id": 1, "order_id": 1, "participant_type_id": 5, "participant": "creator",
             "state_field_str": {"title": 2, FIELD_PROCESS: 2, FIELD_PROCESS_ID: 2, FIELD_PROBLEM: 2}},
            {"name": "Handling", "order_id": 2, "participant_type_id": 7, "participant": FIELD_HANDLERS,
             "state_field_str": {FIELD_PROBLEM: 1, FIELD_RESOLUTION: 2}},
            {"name": "Acceptance", "order_id": 3, "participant_type_id": 5, "participant": "creator",
             "state_field_str": {FIELD_PROBLEM: 1, FIELD_RESOLUTION: 1}},
            {"name": "Closed", "type_id": 2, "order_id": 4}
        ],
        "transitions": [
            {"name": "Submit", "source_state": "Reported", "destination_state": "Handling"},
            {"name": "Resolved", "source_state": "Handling", "destination_state": "Acceptance"},
            {"name": "Accept", "source_state": "Acceptance", "destination_state": "Closed"},
            {"name": "Not solved", "source_state": "Acceptance", "destination_state": "Handling",
             "attribute_type_id": 2, "field_require_check": false}
        ]
    });
    serde_json::from_value(def).expect("the customer-service template is a workflow definition")
}

/// A report's fields: its title, the process and the problem, checked.
pub fn report(process: &Process, title: &str, problem: &str) -> Result<Map<String, Value>, String> {
    let problem = problem.trim();
    if problem.is_empty() {
        return Err("problem: say what went wrong".into());
    }
    if problem.len() > MAX_PROBLEM {
        return Err(format!("problem has at most {MAX_PROBLEM} bytes"));
    }
    let title = match title.trim() {
        "" => format!("Problem with {}", process.spec.name),
        t if t.chars().count() > 200 => return Err("title has at most 200 characters".into()),
        t => t.to_owned(),
    };
    let mut fields = Map::new();
    fields.insert("title".into(), json!(title));
    fields.insert(FIELD_PROCESS.into(), json!(process.spec.name));
    fields.insert(FIELD_PROCESS_ID.into(), json!(process.key.to_string()));
    fields.insert(FIELD_PROBLEM.into(), json!(problem));
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProcessSpec, ProcessType};

    #[test]
    fn the_template_parses_and_a_report_names_its_process() {
        let def = template();
        assert_eq!(
            (def.name.as_str(), def.states.len(), def.transitions.len()),
            (WORKFLOW, 4, 4)
        );
        let p = crate::model::Process {
            id: crate::ids::ProcessId(3),
            key: crate::ids::Key([3; 16]),
            version: 1,
            spec: std::sync::Arc::new(ProcessSpec::new("Invoice entry", ProcessType::Unattended)),
            running: 0,
            day: 0,
            day_successes: 0,
            pending_items: 0,
            created_at: crate::time::Timestamp(0),
        };
        let f = report(&p, " ", "it stops at step 2").unwrap();
        assert_eq!(f["title"], "Problem with Invoice entry");
        assert_eq!(f[FIELD_PROCESS_ID], p.key.to_string());
        assert!(report(&p, "", "  ").is_err());
        assert!(report(&p, &"t".repeat(201), "x").is_err());
    }
}
