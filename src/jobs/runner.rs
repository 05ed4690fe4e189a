//! Runs the apalis workers of every configured queue, and the cron schedules, against
//! whichever backend the store uses. Handlers are thin calls into the engine.

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

use super::{Job, QueueConfig, config::CronConfig};
use crate::{
    engine::service::{Engine, TimerFired},
    store::Db,
};

/// Carries out one job. An `Err` makes apalis retry it with the queue's backoff.
pub async fn handle(job: Job, engine: Data<Engine>) -> Result<(), BoxDynError> {
    match &job {
        Job::FireTimer { timer_id } => {
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
            engine.render_job(case_id, slot, *case_version, max).await?;
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
            let queued = engine.daily_digest().await?;
            tracing::info!(queued, "daily digest queued");
        }
        Job::SweepTimers => {
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

/// Runs every queue's workers and every cron schedule until `shutdown` resolves.
pub async fn run(
    engine: Engine,
    poll: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut monitor = Monitor::new().shutdown_timeout(Duration::from_secs(10));
    let queues = engine.workers.queues.clone();
    for q in queues {
        monitor = register_queue(monitor, &engine, q.clone(), poll);
        for c in q.cron.clone() {
            monitor = register_cron(monitor, &engine, &q, c);
        }
    }
    monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await?;
    Ok(())
}

/// The layers go outermost first, as apalis wants them: the concurrency limit outside
/// the retries (a retry does not take another slot), the retries outside the timeout
/// (each attempt gets the whole timeout).
fn register_queue(monitor: Monitor, engine: &Engine, q: QueueConfig, poll: Duration) -> Monitor {
    let engine = engine.clone();
    match engine.db.clone() {
        Db::Sqlite(pool) => monitor.register(move |i| {
            let config = apalis_sqlite::Config::default().queue(&q.queue);
            let backend = SqliteStorage::<Job>::new(&pool)
                .with_config(config)
                .poll_with_interval(poll);
            WorkerBuilder::new(worker_name(&q.queue, i))
                .backend(backend)
                .concurrency(q.concurrency)
                .retry(RetryPolicy::retries(q.max_attempts).with_backoff(backoff(&q)))
                .timeout(q.timeout)
                .data(engine.clone())
                .build(handle)
        }),
        Db::Postgres(pool) => monitor.register(move |i| {
            let config = apalis_postgres::Config::default().queue(&q.queue);
            let backend = PostgresStorage::<Job>::new(&pool)
                .with_config(config)
                .poll_with_interval(poll);
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
