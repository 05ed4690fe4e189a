//! Requests first: background jobs start when no request of this process is being
//! answered (issue 17), and under sustained load they share the database with requests.
//!
//! With two cores and one database, a job that starts while a request is in flight takes
//! the core, the database connection or (on SQLite) the write lock that request is about
//! to need; measured at one client, the workers on made the transitions' p99 six times
//! that of the workers off, although each job is short. So every HTTP request holds a
//! [`Busy`] while it is answered, and a job takes a [`Turn`] for each of its transactions:
//! one job at a time, once no request is held.
//!
//! One at a time, because a single client leaves gaps between its requests: were every
//! waiting job let go in a gap, the next request would queue behind all of their writes
//! (measured: p99 eleven times the workers-off p99 on SQLite, worse than no gate at all).
//!
//! Under sustained load no request-free moment comes. A job then waits, after the last
//! turn ended, as long as that turn was held (never more than [`Foreground::PATIENCE`]):
//! the queues keep moving while requests still wait behind one job at most. (A fixed
//! patience alone let one job through per 250 ms.) Jobs pay for it under sustained load:
//! a job's transaction waits behind every request queued before it, so at 16 clients the
//! jobs of a process move at a fraction of their pace without turns (ARCHITECTURE.md).
//!
//! The timer loop (`jobs::runner::run_timers`) fires due timers without a turn: they are
//! due now, and nothing waits behind them but their own cases.
//!
//! It is a courtesy within one process, not a rule between processes: a worker in
//! another process does not wait (scale-out runs its workers where they do not share the
//! cores with requests). Nothing is kept here that another process would need.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// How many requests this process is answering, a signal when the count falls to 0, the
/// one turn its jobs take in order, and when the last turn ended and how long it was held.
#[derive(Debug)]
pub struct Foreground {
    in_flight: AtomicUsize,
    quiet: Notify,
    turns: Semaphore,
    last_turn: Mutex<LastTurn>,
}

#[derive(Debug, Clone, Copy)]
struct LastTurn {
    ended: Instant,
    held: Duration,
}

impl Default for Foreground {
    fn default() -> Self {
        Foreground {
            in_flight: AtomicUsize::new(0),
            quiet: Notify::new(),
            turns: Semaphore::new(1),
            last_turn: Mutex::new(LastTurn {
                ended: Instant::now(),
                held: Duration::ZERO,
            }),
        }
    }
}

/// A job's turn at the database: held through one transaction (the sweep and the digest:
/// through their one short batch), never across a render or an SMTP exchange.
#[derive(Debug)]
pub struct Turn<'a> {
    _permit: SemaphorePermit<'a>,
    foreground: &'a Foreground,
    started: Instant,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let ended = Instant::now();
        *self.foreground.last_turn.lock().unwrap_or_else(PoisonError::into_inner) = LastTurn {
            ended,
            held: ended - self.started,
        };
    }
}

/// Held while one request is answered.
#[derive(Debug)]
pub struct Busy(Arc<Foreground>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

impl Foreground {
    /// The longest a job waits for a quiet moment before it runs anyway.
    pub const PATIENCE: Duration = Duration::from_millis(250);

    /// Marks a request in flight until the returned guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits for the jobs' turn, then for no request in flight — or, under sustained load,
    /// until as long after the last turn ended as that turn was held (at most
    /// [`Foreground::PATIENCE`]).
    pub async fn turn(&self) -> Turn<'_> {
        let permit = self.turns.acquire().await.expect("the turns are never closed");
        let last = *self.last_turn.lock().unwrap_or_else(PoisonError::into_inner);
        self.wait_quiet(last.ended + last.held.min(Self::PATIENCE)).await;
        Turn {
            _permit: permit,
            foreground: self,
            started: Instant::now(),
        }
    }

    /// Returns once no request is in flight, or at `deadline`.
    async fn wait_quiet(&self, deadline: Instant) {
        loop {
            let quiet = self.quiet.notified();
            tokio::pin!(quiet);
            // Registered before the count is read, so a request ending in between wakes us.
            quiet.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, quiet).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes a turn and holds it for `held`.
    async fn hold_a_turn(fg: &Foreground, held: Duration) {
        let turn = fg.turn().await;
        tokio::time::sleep(held).await;
        drop(turn);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_waits_for_the_last_request_to_end() {
        let fg = Arc::new(Foreground::default());
        hold_a_turn(&fg, Duration::from_millis(100)).await;

        // Two requests; the job goes when the second of them ends, not the first, and
        // before the 100 ms the last turn would allow it.
        let (a, b) = (fg.busy(), fg.busy());
        let waiting = tokio::spawn({
            let fg = fg.clone();
            async move {
                let started = Instant::now();
                let _turn = fg.turn().await;
                started.elapsed()
            }
        });
        tokio::task::yield_now().await;
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one request is still in flight");
        tokio::time::advance(Duration::from_millis(10)).await;
        drop(b);
        assert_eq!(waiting.await.unwrap(), Duration::from_millis(10));
        assert_eq!(fg.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn under_sustained_load_a_job_waits_as_long_as_the_last_turn_was_held() {
        let fg = Arc::new(Foreground::default());
        // Nothing in flight and nothing held before: no wait at all.
        let started = Instant::now();
        hold_a_turn(&fg, Duration::from_millis(30)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(30));

        // A request that never ends: the next job goes 30 ms after the last turn ended
        // (it held 30 ms), not after the whole patience.
        let _stuck = fg.busy();
        let ended = Instant::now();
        hold_a_turn(&fg, Foreground::PATIENCE * 4).await;
        assert_eq!(ended.elapsed(), Duration::from_millis(30) + Foreground::PATIENCE * 4);

        // A turn held longer than the patience makes the next job wait only the patience.
        let ended = Instant::now();
        let _turn = fg.turn().await;
        assert_eq!(ended.elapsed(), Foreground::PATIENCE);
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_take_their_turns_one_at_a_time() {
        let fg = Arc::new(Foreground::default());
        let first = fg.turn().await;
        let second = tokio::spawn({
            let fg = fg.clone();
            async move {
                let _turn = fg.turn().await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "the first job still holds the turn");
        drop(first);
        second.await.unwrap();
    }
}
