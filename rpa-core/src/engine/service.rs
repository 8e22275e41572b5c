//! Customer service (the rules are in [`crate::service`]): installing the
//! shipped workflow, a person's report of a problem with a process, a
//! process's reports.

use super::Engine;
use crate::error::{Entity, Error, Result};
use crate::flow::{Request, Ticket, Workflow};
use crate::model::{Actor, Process, User};
use crate::record::{Cell, Mapped};
use crate::service::{self, FIELD_PROCESS_ID, SN_PREFIX, WORKFLOW};
use crate::store::Store;

impl<S: Store> Engine<S> {
    /// Installs the shipped workflows that no workflow of the same name
    /// replaces; whether it installed one.
    pub async fn install_templates(&self) -> Result<bool> {
        if self.workflows().await?.iter().any(|w| w.name == WORKFLOW) {
            return Ok(false);
        }
        match self.save_workflow(Actor::System, "system", service::template()).await {
            Ok(_) => Ok(true),
            // Another node installed it first.
            Err(Error::Store(crate::error::StoreError::Conflict)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The customer-service workflow (installed now if it is missing).
    async fn service_workflow(&self) -> Result<Workflow> {
        self.install_templates().await?;
        self.workflows()
            .await?
            .into_iter()
            .find(|w| w.name == WORKFLOW)
            .ok_or_else(|| Error::NotFound(Entity::Record(Workflow::KIND.name), WORKFLOW.into()))
    }

    /// `user`'s report of a problem with process `p`: a ticket of the
    /// customer-service workflow, submitted to its handlers. The caller
    /// checks that `user` may see `p`.
    pub async fn report_problem(&self, user: &User, p: &Process, title: &str, problem: &str) -> Result<Ticket> {
        let fields = service::report(p, title, problem).map_err(Error::InvalidArgument)?;
        let w = self.service_workflow().await?;
        let start = w.start().id;
        let submit = w
            .transitions
            .iter()
            .find(|t| t.source_state_id == start)
            .ok_or_else(|| Error::InvalidArgument(format!("workflow {WORKFLOW} has no way out of its start")))?;
        let req = Request {
            transition_id: submit.id,
            suggestion: String::new(),
            fields,
        };
        self.create_ticket(SN_PREFIX, &user.name, w.id, (0, 0), &req).await
    }

    /// The customer-service tickets of process `p`, newest first.
    pub async fn process_problems(&self, p: &Process) -> Result<Vec<Ticket>> {
        let w = self.service_workflow().await?;
        let key = p.key.to_string();
        let mut out = Vec::new();
        self.scan(Some(("workflow", Cell::Int(w.id))), |t| {
            if t.fields.get(FIELD_PROCESS_ID).and_then(|v| v.as_str()) == Some(key.as_str()) {
                out.push(t);
            }
        })
        .await?;
        out.reverse();
        Ok(out)
    }
}
