//! Background work: the job kinds, the operator's queue configuration (`workers/*.toml`)
//! and the apalis workers and cron schedules that run them.
//!
//! Jobs carry ids, never rows; every handler re-reads what it needs and checks that the
//! work still applies (a timer whose case moved on does nothing), because apalis runs a
//! job at least once.

pub mod config;
pub mod runner;
pub mod wake;

use serde::{Deserialize, Serialize};

pub use config::{QueueConfig, WorkersConfig};

/// A unit of background work, encoded as JSON into the apalis job row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Fire one timer if it is due and its case is still in the timer's state.
    FireTimer { timer_id: String },
    /// The safety net: fire every due timer whose job was lost.
    SweepTimers,
    /// Render a case's agreement (or its preview) as it was at `case_version`.
    Render {
        case_id: String,
        slot: String,
        case_version: i64,
    },
    /// Send one queued mail (once).
    SendEmail { email_id: String },
    /// The reviewers' daily digest.
    DailyDigest,
}

impl Job {
    /// Every kind, as `workers/*.toml` names them.
    pub const KINDS: &'static [&'static str] = &["fire_timer", "sweep_timers", "render", "send_email", "daily_digest"];

    pub fn kind(&self) -> &'static str {
        match self {
            Job::FireTimer { .. } => "fire_timer",
            Job::SweepTimers => "sweep_timers",
            Job::Render { .. } => "render",
            Job::SendEmail { .. } => "send_email",
            Job::DailyDigest => "daily_digest",
        }
    }

    /// The job a cron schedule starts, by kind (only kinds without arguments).
    pub fn periodic(kind: &str) -> Option<Job> {
        match kind {
            "sweep_timers" => Some(Job::SweepTimers),
            "daily_digest" => Some(Job::DailyDigest),
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a job always encodes")
    }
}
