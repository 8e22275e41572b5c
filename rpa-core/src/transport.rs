//! Commands to robots (seed 001 A.1.2) and how hosts are told there are some.
//!
//! Commands are written to a per-robot outbox in the same commit as the
//! transition that caused them. The WebSocket hub pushes them when woken; an
//! HTTP robot gets them in its heartbeat answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{Key, RobotId};

/// Seed 001 Argument (A.3.4): the domain's copy, stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argument {
    /// Parameter name.
    pub name: String,
    /// Parameter type (`boolean`, `string`, `int`, `other`).
    #[serde(rename = "type")]
    pub arg_type: String,
    /// Value as a string.
    pub value: String,
}

/// What a robot is told to run: the content of seed 001 Execute (table
/// A.7) plus the fail-over extensions. This is the domain's command as the
/// outbox stores it; [`crate::seed001::execute`] writes the wire body, so a
/// change of protocol never rewrites stored data. (Rows stored with the
/// wire's camelCase names are still read.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execute {
    /// The job's key.
    #[serde(alias = "runInstanceId")]
    pub run_instance_id: Key,
    /// Where to download the package.
    #[serde(alias = "packageDownloadUri")]
    pub package_download_uri: String,
    /// Where to upload files.
    #[serde(default, alias = "fileUploadUri", skip_serializing_if = "Option::is_none")]
    pub file_upload_uri: Option<String>,
    /// Arguments.
    pub arguments: Vec<Argument>,
    /// Record the screen.
    #[serde(alias = "videoRecordRequired")]
    pub video_record_required: bool,
    /// Whether the recording is sent back (1) or not (0).
    #[serde(alias = "videoRecordMode")]
    pub video_record_mode: i32,
    /// Who started the job (user id).
    #[serde(alias = "userId")]
    pub user_id: String,
    /// Who started the job (user name).
    #[serde(alias = "userName")]
    pub user_name: String,
    /// Extension: the last checkpoint of an earlier attempt, to resume from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Value>,
    /// Extension: attempt number, from 1.
    pub attempt: u32,
    /// Extension: the attempt's bearer token for the UiPath-compatible
    /// API (a robot's assets and queues), valid while the attempt runs;
    /// added as the command is handed to the robot, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
}

/// A command for a robot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Start a run.
    Execute(Box<Execute>),
    /// Stop the current run (seed 001 Stop has no body; the key is for the host).
    Stop {
        /// The run to stop.
        run_instance_id: Key,
    },
    /// The robot's bound license.
    SendLicense {
        /// License content.
        license_content: String,
    },
    /// An error the robot should act on.
    Error {
        /// Seed 001 error code.
        error_code: i32,
        /// Details.
        message: String,
    },
}

impl Command {
    /// Seed 001 action word.
    pub fn action(&self) -> &'static str {
        match self {
            Command::Execute(_) => "Execute",
            Command::Stop { .. } => "Stop",
            Command::SendLicense { .. } => "SendLicense",
            Command::Error { .. } => "Error",
        }
    }
}

/// How commands reach robots once the commit that made them stands.
///
/// A robot whose connection is here and takes pushes ([`is_here`]) is
/// handed its commands directly ([`push`]); they never enter the outbox. A
/// command is then delivered at most once, as a take from the outbox would
/// deliver it. If the connection is gone by then, its commands go with it:
/// the robot must register again, which empties its outbox anyway, and a
/// job whose `Execute` it never received is failed over by the heartbeat
/// check. Every other robot's commands wait in the outbox and the robot is
/// woken ([`wake`]) to take them.
///
/// [`is_here`]: RobotTransport::is_here
/// [`push`]: RobotTransport::push
/// [`wake`]: RobotTransport::wake
pub trait RobotTransport: Send + Sync + 'static {
    /// Robot `robot` has commands waiting; fetch them with `Engine::take_commands`.
    fn wake(&self, robot: RobotId);

    /// Whether robot `robot` holds a connection here that takes pushed
    /// commands. Asked before the commit.
    fn is_here(&self, _robot: RobotId) -> bool {
        false
    }

    /// Hands `commands` (committed, in order) to robot `robot`'s connection.
    /// Once it has written them, it tells the engine ([`Engine::handed`](crate::Engine::handed)):
    /// a heartbeat that arrived before an Execute was written says nothing of its job.
    fn push(&self, _robot: RobotId, _commands: Vec<Command>) {}
}

/// A transport for robots that only poll (HTTP heartbeats): nothing to wake.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollOnly;

impl RobotTransport for PollOnly {
    fn wake(&self, _robot: RobotId) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_commands_keep_their_domain_shape_and_old_rows_still_read() {
        let e = Execute {
            run_instance_id: Key([3; 16]),
            package_download_uri: "http://p".into(),
            file_upload_uri: None,
            arguments: vec![],
            video_record_required: true,
            video_record_mode: 1,
            user_id: "7".into(),
            user_name: "alice".into(),
            checkpoint: Some(serde_json::json!({"page": 2})),
            attempt: 2,
            access_token: None,
        };
        let cmd = Command::Execute(Box::new(e));
        let stored = serde_json::to_value(&cmd).unwrap();
        assert!(stored["Execute"].get("run_instance_id").is_some(), "{stored}");
        assert_eq!(serde_json::from_value::<Command>(stored).unwrap(), cmd);
        // A row an earlier version stored with the wire's names.
        let old = serde_json::json!({"Execute": {
            "runInstanceId": Key([3; 16]), "packageDownloadUri": "http://p", "arguments": [],
            "videoRecordRequired": true, "videoRecordMode": 1, "userId": "7", "userName": "alice",
            "checkpoint": {"page": 2}, "attempt": 2
        }});
        assert_eq!(serde_json::from_value::<Command>(old).unwrap(), cmd);
    }
}
