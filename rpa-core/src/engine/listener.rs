//! Listener requests (seed 003; the rules are in [`crate::listener`]): a
//! request and the job it starts are one commit, so a request answered
//! "success" always has its job, and a repeat of a source never starts a
//! second one.

use serde_json::Value;

use super::{Engine, Tx};
use crate::audit::{self, Subject};
use crate::error::{Error, Result, StoreError};
use crate::ids::*;
use crate::listener::{self, ListenerRequest, Perform, Queue};
use crate::model::*;
use crate::record::Select;
use crate::store::People as _;
use crate::store::{Records, Store};

impl<S: Store> Engine<S> {
    /// Takes a listener request from `user` (the listener account's user):
    /// starts its job (automation queue) or keeps it with the reason
    /// (fall-out queue). A request whose `(app_id, source_message_id)` came
    /// before gets the first request back, and nothing starts.
    pub async fn listener_request(&self, user: &User, r: Perform) -> Result<ListenerRequest> {
        let source = r.source();
        if let Some(first) = self.store.find::<ListenerRequest>("source", source.as_str()).await? {
            return Ok(first);
        }
        let now = self.now();
        let process = self.granted_process_named(user, &r.process).await?;
        let mut request = r.request.clone();
        if let (Some(p), Some(Value::Object(inputs))) = (&process, request.get_mut("AutomationInputDictionary")) {
            *inputs = listener::mask(&p.spec, inputs);
        }
        let mut req = ListenerRequest {
            id: self.next_id(IdKind::of::<ListenerRequest>()).await?,
            version: 1,
            message_id: self.new_uuid(),
            app_id: r.app_id.clone(),
            source_message_id: r.source_message_id.clone(),
            process_name: r.process.clone(),
            profile: r.profile.clone(),
            user_name: r.user_name.clone(),
            reference: r.reference.clone(),
            user: user.id,
            queue: Queue::Fallout,
            fault: None,
            job: None,
            job_key: None,
            wait: r.wait,
            expiration_ms: r.expiration_ms,
            retries: r.retry.map_or(0, |(n, _)| n),
            cool_off_ms: r.retry.map_or(0, |(_, c)| c),
            request: request.into(),
            created_at: now,
        };
        let actor = Actor::User(user.id);
        let mut tx = Tx::default();
        match (r.decide(process.as_ref(), now, self.today(now)), &process) {
            (Ok(a), Some(p)) => {
                let mut job = self
                    .new_job(p, user, a.arguments, None, now, None, Some(a.deadline))
                    .await?;
                job.retry = a.retry;
                job.window_ms = a.window_ms;
                req.queue = Queue::Automation;
                req.job = Some(job.id);
                req.job_key = Some(job.key);
                tx.job(job.clone()).audit(
                    now,
                    actor,
                    "job.start",
                    Subject::Id("job", job.id.0),
                    audit::id_text("process", p.id.0),
                );
                tx.record(&req)?.audit(
                    now,
                    actor,
                    "listener.request",
                    Subject::Id("listener request", req.id),
                    req.message_id.clone(),
                );
            }
            (decision, _) => {
                let fault = decision.err().unwrap_or_else(|| listener::Fault {
                    code: listener::codes::PROCESS.into(),
                    message: "Incorrect process name in the request.".into(),
                });
                let detail = format!("{} {}", fault.code, fault.message);
                req.fault = Some(fault);
                tx.record(&req)?.audit(
                    now,
                    actor,
                    "listener.fallout",
                    Subject::Id("listener request", req.id),
                    detail,
                );
            }
        }
        match self.commit(tx).await {
            Ok(()) => {}
            Err(Error::Store(StoreError::Duplicate(_))) => {
                // The same source arrived at the same time: the first one stands.
                return self
                    .store
                    .find::<ListenerRequest>("source", source.as_str())
                    .await?
                    .ok_or_else(|| Error::Internal("a listener request vanished".into()));
            }
            Err(e) => return Err(e),
        }
        if let Some(j) = req.job {
            self.place_job(j).await?;
        }
        Ok(req)
    }

    /// The process named `name` that `user` may start, if any.
    async fn granted_process_named(&self, user: &User, name: &str) -> Result<Option<Process>> {
        let Some(p) = self.store.processes().await?.into_iter().find(|p| p.spec.name == name) else {
            return Ok(None);
        };
        let all = self
            .has_permission(Actor::User(user.id), Permission::OperateAllJobs)
            .await?;
        Ok((all || user.granted(&p)).then_some(p))
    }

    /// Listener requests in `queue`, oldest first, after the request `after`.
    pub async fn listener_requests(&self, queue: Queue, after: i64, limit: usize) -> Result<Vec<ListenerRequest>> {
        Ok(self
            .store
            .list(Select::only("queue", queue.as_str(), limit).after(after.into()))
            .await?)
    }

    /// The last event position (see [`crate::events`]): a reader that
    /// starts here sees every event committed from now on.
    pub async fn events_head(&self) -> Result<u64> {
        Ok(self.store.head().await?)
    }

    /// A user by login name.
    pub async fn user_named(&self, name: &str) -> Result<Option<User>> {
        Ok(self.store.user_by_name(name).await?)
    }

    /// A robot by id.
    pub async fn robot_by_id(&self, id: RobotId) -> Result<Option<Robot>> {
        Ok(self.store.robot(id).await?)
    }
}
