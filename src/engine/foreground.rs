//! Requests first: background jobs start when no request of this process is being
//! answered (issue 17).
//!
//! With two cores and one database, a job that starts while a request is in flight takes
//! the core, the database connection or (on SQLite) the write lock that request is about
//! to need; measured at one client, the workers on made the transitions' p99 six times
//! that of the workers off, although each job is short. So every HTTP request holds a
//! [`Busy`] while it is answered, and a job takes a [`Turn`] for each of its transactions:
//! one job at a time, once no request is held — waiting at most [`Foreground::PATIENCE`]
//! for that, so that under sustained load the jobs still run (slower), never starve.
//! One at a time, because a single client leaves gaps between its requests: were every
//! waiting job let go in a gap, the next request would queue behind all of their writes
//! (measured: p99 eleven times the workers-off p99 on SQLite, worse than no gate at all).
//!
//! It is a courtesy within one process, not a rule between processes: a worker in
//! another process does not wait (scale-out runs its workers where they do not share the
//! cores with requests). Nothing is kept here that another process would need.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

/// How many requests this process is answering, a signal when the count falls to 0, and
/// the one turn its jobs take in order.
#[derive(Debug)]
pub struct Foreground {
    in_flight: AtomicUsize,
    quiet: Notify,
    turns: Semaphore,
}

impl Default for Foreground {
    fn default() -> Self {
        Foreground {
            in_flight: AtomicUsize::new(0),
            quiet: Notify::new(),
            turns: Semaphore::new(1),
        }
    }
}

/// A job's turn at the database: held through one transaction, never across a render or
/// an SMTP exchange.
#[derive(Debug)]
pub struct Turn<'a> {
    _permit: SemaphorePermit<'a>,
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

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits for the jobs' turn, then for no request in flight (at most
    /// [`Foreground::PATIENCE`]).
    pub async fn turn(&self) -> Turn<'_> {
        let permit = self.turns.acquire().await.expect("the turns are never closed");
        self.wait_quiet().await;
        Turn { _permit: permit }
    }

    /// Returns once no request is in flight, or after [`Foreground::PATIENCE`].
    async fn wait_quiet(&self) {
        let deadline = tokio::time::Instant::now() + Self::PATIENCE;
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

    #[tokio::test(start_paused = true)]
    async fn a_job_waits_for_the_last_request_and_no_longer_than_its_patience() {
        let fg = Arc::new(Foreground::default());
        // Nothing in flight: no wait at all.
        let started = tokio::time::Instant::now();
        fg.wait_quiet().await;
        assert_eq!(started.elapsed(), Duration::ZERO);

        // Two requests; the job resumes when the second of them ends, not the first.
        let (a, b) = (fg.busy(), fg.busy());
        let waiting = tokio::spawn({
            let fg = fg.clone();
            async move {
                let started = tokio::time::Instant::now();
                fg.wait_quiet().await;
                started.elapsed()
            }
        });
        tokio::task::yield_now().await;
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one request is still in flight");
        drop(b);
        // Woken by the end of the request, not by its patience running out.
        assert_eq!(waiting.await.unwrap(), Duration::ZERO);
        assert_eq!(fg.in_flight(), 0);

        // A request that never ends holds a job back for PATIENCE, then lets it run.
        let _stuck = fg.busy();
        let started = tokio::time::Instant::now();
        fg.wait_quiet().await;
        assert_eq!(started.elapsed(), Foreground::PATIENCE);
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
