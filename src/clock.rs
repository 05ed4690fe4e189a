//! The injectable source of "now". Everything that reads the time asks a [`Clock`], so
//! tests move time forward instead of sleeping (a timer due in seven days fires when a
//! test advances the clock by seven days).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Where the engine and the workers read the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that follows the wall clock plus an offset that tests advance by hand.
///
/// Following the wall clock (rather than standing still) keeps ordering by time
/// meaningful within a test; the offset is what makes days pass in an instant.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    offset: Arc<Mutex<Duration>>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward (or back, with a negative duration) for every holder.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().expect("clock lock poisoned");
        *offset += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().expect("clock lock poisoned")
    }
}

/// The shared handle the rest of the code holds.
pub type SharedClock = Arc<dyn Clock>;
