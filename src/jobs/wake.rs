//! Wake-ups: how a worker learns, within milliseconds, that a job or a timer was
//! committed, instead of waiting for its next poll.
//!
//! The database tells: on PostgreSQL a transaction that pushed a job or set a timer is
//! followed, once committed, by `NOTIFY gradsign_wake` (the store's `Notifier`, to every
//! process); on SQLite the connections' update and commit hooks see the insert in this
//! process. Either way the news lands in this process's [`Wake`] hub, which passes it to
//! the workers of the queue it names and to the timer loop. The polls stay, longer, as
//! the safety net for a wake-up that was missed.
//!
//! Why not apalis's own `poll_with_interval`: its interval strategy re-arms its delay
//! without polling it. When the delay fires while a fetch is in flight and the fetch then
//! comes back empty in the same poll, nothing is left to wake the worker but its next
//! heartbeat — 30 s later. That was the 30 s stall. [`WakeStrategy`] polls every source
//! until it is pending, so a waker is always registered.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use apalis::prelude::{PollSnapshot, PollStrategy};
use futures::{StreamExt, channel::mpsc};
use tokio::time::{Interval, MissedTickBehavior, Sleep};

pub use crate::store::WAKE_CHANNEL as CHANNEL;
/// A wake-up may come just before the commit it announces is visible (SQLite's hooks
/// run inside the commit; a fetch may already be in flight): look once more this much later.
const AGAIN: Duration = Duration::from_millis(40);

/// What a wake-up is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Jobs were pushed onto this queue.
    Queue(String),
    /// Jobs were pushed onto some queue (SQLite's hook does not say which).
    AnyQueue,
    /// A timer was set.
    Timers,
}

impl Topic {
    /// The payload of a PostgreSQL notification, read back.
    pub fn parse(payload: &str) -> Topic {
        match payload.strip_prefix("job:") {
            Some(queue) => Topic::Queue(queue.to_string()),
            None if payload == "timer" => Topic::Timers,
            None => Topic::AnyQueue,
        }
    }
}

/// This process's wake-up hub: subscribers get at most one pending wake-up each (more
/// coalesce), so a burst of commits costs one fetch.
#[derive(Clone, Default)]
pub struct Wake {
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
}

/// What a subscriber wants to hear of, and where to tell it.
type Subscriber = (Topic, mpsc::Sender<()>);

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wake").finish_non_exhaustive()
    }
}

impl Wake {
    /// Wake-ups for the workers of `queue` (`Topic::Queue`) or for the timer loop.
    pub fn subscribe(&self, topic: Topic) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel(0);
        self.subscribers.lock().expect("wake hub").push((topic, tx));
        rx
    }

    /// Passes one piece of news to whoever it concerns.
    pub fn send(&self, news: &Topic) {
        let mut subscribers = self.subscribers.lock().expect("wake hub");
        subscribers.retain_mut(|(topic, tx)| {
            let concerned = match (news, &*topic) {
                (Topic::Timers, Topic::Timers) => true,
                (Topic::AnyQueue, Topic::Queue(_)) => true,
                (Topic::Queue(a), Topic::Queue(b)) => a == b,
                _ => false,
            };
            if !concerned {
                return !tx.is_closed();
            }
            // A full channel already holds a wake-up: the news is not lost.
            !matches!(tx.try_send(()), Err(e) if e.is_disconnected())
        });
    }
}

/// The poll strategy of every apalis worker: fetch when woken, once more shortly after
/// (see [`AGAIN`]), and every `idle` regardless.
pub struct WakeStrategy {
    // Behind a mutex only to be `Sync`, as apalis asks; `&mut self` reaches it unlocked.
    inner: Mutex<Sources>,
}

struct Sources {
    wakes: mpsc::Receiver<()>,
    idle: Interval,
    again: Option<Pin<Box<Sleep>>>,
}

impl WakeStrategy {
    pub fn new(wakes: mpsc::Receiver<()>, idle: Duration) -> WakeStrategy {
        let mut interval = tokio::time::interval(idle);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        WakeStrategy {
            inner: Mutex::new(Sources {
                wakes,
                idle: interval,
                again: None,
            }),
        }
    }
}

impl PollStrategy for WakeStrategy {
    /// Polls every source until it is pending, so each has registered the waker before
    /// this returns (apalis ignores what it returns; only the waker counts).
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let s = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut ready = false;
        while let Poll::Ready(Some(())) = s.wakes.poll_next_unpin(cx) {
            ready = true;
            s.again = Some(Box::pin(tokio::time::sleep(AGAIN)));
        }
        while s.idle.poll_tick(cx).is_ready() {
            ready = true;
        }
        if let Some(again) = s.again.as_mut()
            && again.as_mut().poll(cx).is_ready()
        {
            s.again = None;
            ready = true;
        }
        if ready { Poll::Ready(Some(())) } else { Poll::Pending }
    }
}
