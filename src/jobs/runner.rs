//! Runs the apalis workers of every configured queue, the timer loop and the cron
//! schedules, against whichever backend the store uses. Handlers are thin calls into the
//! engine. Workers and the timer loop wake on [`Wake`] news and poll as a safety net.

use std::{future::Future, time::Duration};

use apalis::{
    layers::retry::{
        HasherRng,
        backoff::{ExponentialBackoffMaker, MakeBackoff},
    },
    prelude::*,
};
use apalis_cron::CronScheduler;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;

use futures::{StreamExt, channel::mpsc::Receiver};
use tokio::sync::watch;

use super::{
    Job, QueueConfig,
    config::CronConfig,
    wake::{CHANNEL, Topic, Wake, WakeStrategy},
};
use crate::{
    engine::service::{Engine, TimerFired},
    store::Db,
};

/// Carries out one job. An `Err` makes apalis retry it with the queue's backoff.
pub async fn handle(job: Job, engine: Data<Engine>) -> Result<(), BoxDynError> {
    // Requests first, one job at a time (engine::foreground): the jobs that only write
    // take their turn here; a render and a mail take theirs around each transaction.
    match &job {
        Job::FireTimer { timer_id } => {
            let _turn = engine.foreground.turn().await;
            if engine.fire_timer(timer_id).await? == TimerFired::NotDue {
                // Ran early (clocks differ between machines): the sweep fires it once due.
                tracing::debug!(timer = %timer_id, "timer job ran before its due time");
            }
        }
        Job::Render {
            case_id,
            slot,
            case_version,
        } => {
            let max = engine.workers.queue_of("render").map(|q| q.max_attempts).unwrap_or(5);
            let rendered = engine.render_job(case_id, slot, *case_version, max).await;
            let result = if rendered.is_ok() { "ok" } else { "error" };
            engine.metrics.inc("gradsign_renders_total", &[("result", result)]);
            rendered?;
        }
        Job::SendEmail { email_id } => {
            let max = engine
                .workers
                .queue_of("send_email")
                .map(|q| q.max_attempts)
                .unwrap_or(5);
            engine.send_email(email_id, max).await?;
        }
        Job::DailyDigest => {
            let _turn = engine.foreground.turn().await;
            let queued = engine.daily_digest().await?;
            tracing::info!(queued, "daily digest queued");
        }
        Job::SweepTimers => {
            let _turn = engine.foreground.turn().await;
            let fired = engine.sweep_timers().await?;
            if fired > 0 {
                tracing::info!(fired, "sweep fired overdue timers");
            }
        }
    }
    Ok(())
}

/// A name unique to this process, so a restarted process never collides with the
/// registration its predecessor left behind (apalis refuses duplicate worker names).
fn worker_name(queue: &str, index: usize) -> String {
    let tag = &uuid::Uuid::now_v7().simple().to_string()[24..];
    format!("{queue}-{}-{tag}-{index}", std::process::id())
}

fn backoff(q: &QueueConfig) -> apalis::layers::retry::backoff::ExponentialBackoff {
    ExponentialBackoffMaker::new(
        q.backoff_first,
        q.backoff_max.max(q.backoff_first),
        0.1,
        HasherRng::default(),
    )
    .expect("backoff bounds are checked when the workers' files load")
    .make_backoff()
}

/// Runs every queue's workers, the timer loop and every cron schedule until `shutdown`
/// resolves. `poll` is how often an idle worker looks without a wake-up (the safety net).
/// Without `timer_loop`, timers fire only by the sweep (tests on a manual clock).
pub async fn run(
    engine: Engine,
    wake: Wake,
    poll: Duration,
    timer_loop: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    if let Db::Postgres(pool, _) = &engine.db {
        tasks.push(tokio::spawn(listen(pool.clone(), wake.clone(), stopped.clone())));
    }
    if timer_loop {
        tasks.push(tokio::spawn(run_timers(
            engine.clone(),
            wake.subscribe(Topic::Timers),
            poll,
            stopped,
        )));
    }
    let mut monitor = Monitor::new().shutdown_timeout(Duration::from_secs(10));
    let queues = engine.workers.queues.clone();
    let books = crate::store::bookkeeping(&engine.db);
    for q in queues {
        monitor = register_queue(monitor, &engine, &books, &wake, q.clone(), poll);
        for c in q.cron.clone() {
            monitor = register_cron(monitor, &engine, &q, c);
        }
    }
    let ran = monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await;
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    ran?;
    Ok(())
}

/// How many due timers one pass of the timer loop takes at most.
const TIMER_BATCH: i64 = 500;

/// Fires timers on time: sleeps until the next pending timer is due (or a wake-up says
/// a timer was set, or `idle` passes), then fires every due one. Every worker process
/// runs one; two that reach for the same timer are sorted out by `fire_timer`, which
/// re-checks it under lock (the loser finds it fired).
async fn run_timers(engine: Engine, mut wakes: Receiver<()>, idle: Duration, mut stop: watch::Receiver<bool>) {
    let concurrency = engine
        .workers
        .queue_of("fire_timer")
        .map(|q| q.concurrency)
        .unwrap_or(4);
    loop {
        if *stop.borrow() {
            return;
        }
        let stuck = match engine.fire_due_timers(TIMER_BATCH, concurrency).await {
            Ok(pass) => {
                for lag in &pass.lags {
                    engine.metrics.inc("gradsign_timers_fired_total", &[]);
                    let lag = Duration::from_millis((*lag).max(0) as u64);
                    engine.metrics.observe("gradsign_timer_lag_seconds", &[], lag);
                }
                if pass.seen as i64 >= TIMER_BATCH && pass.failed < pass.seen {
                    continue; // more are due
                }
                // Due timers that only fail would make the loop spin: they wait for the poll.
                pass.failed > 0
            }
            Err(e) => {
                tracing::warn!(error = %e, "timer loop: cannot fire due timers");
                true
            }
        };
        let wait = match engine.next_timer_due().await {
            _ if stuck => idle,
            Ok(Some(due)) => (due - engine.now()).to_std().unwrap_or_default().min(idle),
            Ok(None) => idle,
            Err(e) => {
                tracing::warn!(error = %e, "timer loop: cannot read the next due time");
                idle
            }
        };
        // Fell due between the two reads (or its case was busy): look again shortly.
        let wait = wait.max(Duration::from_millis(2));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Some(()) = wakes.next() => {
                // The wake-up may precede the commit it announces by a moment.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ = stop.changed() => {}
        }
    }
}

/// On PostgreSQL, turns the `NOTIFY`s of every process into this process's wake-ups.
/// Reconnects after a lost connection (and wakes everyone, since news may have been lost).
async fn listen(pool: sqlx::PgPool, wake: Wake, mut stop: watch::Receiver<bool>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for wake-ups; polling meanwhile");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for wake-ups; polling meanwhile");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        wake.send(&Topic::AnyQueue);
        wake.send(&Topic::Timers);
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(n) => wake.send(&Topic::parse(n.payload())),
                    Err(e) => {
                        tracing::warn!(error = %e, "wake-up listener lost its connection");
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

/// The apalis configuration of a queue. Workers beat every [`HEARTBEAT`]; one silent
/// for [`MISSED_BEATS`] beats is dead and its jobs — running or only fetched — return to
/// the queue, so work resumes within seconds of a crash.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
pub const MISSED_BEATS: usize = 4;

/// The layers go outermost first, as apalis wants them: the concurrency limit outside
/// the retries (a retry does not take another slot), the retries outside the timeout
/// (each attempt gets the whole timeout).
/// apalis keeps its books on `books` (`store::bookkeeping`).
fn register_queue(
    monitor: Monitor,
    engine: &Engine,
    books: &Db,
    wake: &Wake,
    q: QueueConfig,
    poll: Duration,
) -> Monitor {
    let engine = engine.clone();
    let wake = wake.clone();
    // Fetch no more than can run at once: a fetched job waits in this process, and a
    // crash returns it only when the worker is declared dead.
    let batch = q.concurrency.max(1);
    match books.clone() {
        Db::Sqlite(pool) => monitor.register(move |i| {
            let config = apalis_sqlite::Config::default()
                .queue(&q.queue)
                .batch_size(batch)
                .heartbeat_interval(HEARTBEAT)
                .missed_heartbeats(MISSED_BEATS);
            let strategy = WakeStrategy::new(wake.subscribe(Topic::Queue(q.queue.clone())), poll);
            let backend = PollWith::new(SqliteStorage::<Job>::new(&pool).with_config(config), strategy);
            WorkerBuilder::new(worker_name(&q.queue, i))
                .backend(backend)
                .concurrency(q.concurrency)
                .retry(RetryPolicy::retries(q.max_attempts).with_backoff(backoff(&q)))
                .timeout(q.timeout)
                .data(engine.clone())
                .build(handle)
        }),
        Db::Postgres(pool, _) => monitor.register(move |i| {
            let config = apalis_postgres::Config::default()
                .queue(&q.queue)
                .batch_size(batch)
                .heartbeat_interval(HEARTBEAT)
                .missed_heartbeats(MISSED_BEATS);
            let strategy = WakeStrategy::new(wake.subscribe(Topic::Queue(q.queue.clone())), poll);
            let backend = PollWith::new(PostgresStorage::<Job>::new(&pool).with_config(config), strategy);
            WorkerBuilder::new(worker_name(&q.queue, i))
                .backend(backend)
                .concurrency(q.concurrency)
                .retry(RetryPolicy::retries(q.max_attempts).with_backoff(backoff(&q)))
                .timeout(q.timeout)
                .data(engine.clone())
                .build(handle)
        }),
    }
}

/// A cron tick runs its job in place. Every process fires every tick (schedules live
/// in memory), so periodic jobs must be safe to run twice: the sweep is.
fn register_cron(monitor: Monitor, engine: &Engine, q: &QueueConfig, c: CronConfig) -> Monitor {
    let engine = engine.clone();
    let queue = q.queue.clone();
    monitor.register(move |i| {
        let job = Job::periodic(&c.job).expect("cron jobs are checked when the workers' files load");
        let engine = engine.clone();
        WorkerBuilder::new(worker_name(&format!("{queue}-cron-{}", c.job), i))
            .backend(CronScheduler::new(c.schedule.clone()).with_timezone(c.timezone))
            .build(move |_tick: apalis_cron::Tick<chrono_tz::Tz>| {
                let engine = engine.clone();
                let job = job.clone();
                async move { handle(job, Data::new(engine)).await }
            })
    })
}
