//! `workers/*.toml`: one file per queue, edited by operators like the workflows. Each
//! says which job kinds the queue runs, how many at once, how often to retry and with
//! what backoff, the timeout, and the cron schedules that start periodic jobs.
//! Mistakes stop startup with the file and line.

use std::{path::Path, str::FromStr, time::Duration};

use serde::Deserialize;
use toml::Spanned;

use super::Job;
use crate::definition::{DefinitionError, Problem, duration};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    queue: Spanned<String>,
    jobs: Vec<Spanned<String>>,
    #[serde(default = "one")]
    concurrency: usize,
    #[serde(default = "five")]
    max_attempts: usize,
    backoff: Option<Spanned<RawBackoff>>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    cron: Vec<Spanned<RawCron>>,
}

fn one() -> usize {
    1
}
fn five() -> usize {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackoff {
    first: String,
    max: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCron {
    job: Spanned<String>,
    schedule: Spanned<String>,
    #[serde(default = "shanghai")]
    timezone: Spanned<String>,
}

fn shanghai() -> Spanned<String> {
    Spanned::new(0..0, "Asia/Shanghai".to_string())
}

/// One queue, checked.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub queue: String,
    pub jobs: Vec<String>,
    pub concurrency: usize,
    pub max_attempts: usize,
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    pub timeout: Duration,
    pub cron: Vec<CronConfig>,
}

#[derive(Debug, Clone)]
pub struct CronConfig {
    pub job: String,
    pub schedule: cron::Schedule,
    pub timezone: chrono_tz::Tz,
}

/// All queues, and which queue runs each job kind.
#[derive(Debug, Clone, Default)]
pub struct WorkersConfig {
    pub queues: Vec<QueueConfig>,
}

impl WorkersConfig {
    pub fn load_dir(dir: &Path) -> Result<WorkersConfig, DefinitionError> {
        let files = crate::definition::Registry::toml_files_in(dir)
            .map_err(|e| one_problem(dir, 0, format!("cannot list the folder: {e}")))?;
        let mut queues = Vec::new();
        let mut problems = Vec::new();
        for file in files {
            let source =
                std::fs::read_to_string(&file).map_err(|e| one_problem(&file, 0, format!("cannot read: {e}")))?;
            match parse(&file.display().to_string(), &source) {
                Ok(q) => queues.push(q),
                Err(mut p) => problems.append(&mut p),
            }
        }
        let config = WorkersConfig { queues };
        for kind in Job::KINDS {
            if config.queue_of(kind).is_none() {
                problems.push(Problem {
                    file: dir.display().to_string(),
                    line: 0,
                    message: format!("no queue runs job kind `{kind}`; add it to the `jobs` of a queue"),
                });
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(DefinitionError { problems })
        }
    }

    /// The queue that runs a job kind.
    pub fn queue_of(&self, kind: &str) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| q.jobs.iter().any(|j| j == kind))
    }
}

fn one_problem(file: &Path, line: usize, message: String) -> DefinitionError {
    DefinitionError {
        problems: vec![Problem {
            file: file.display().to_string(),
            line,
            message,
        }],
    }
}

/// Parses one queue file; `file` names it in problems.
pub fn parse(file: &str, source: &str) -> Result<QueueConfig, Vec<Problem>> {
    let line = |span: std::ops::Range<usize>| source[..span.start.min(source.len())].matches('\n').count() + 1;
    let mut problems = Vec::new();
    let mut problem = |span: std::ops::Range<usize>, message: String| {
        problems.push(Problem {
            file: file.to_string(),
            line: line(span),
            message,
        })
    };
    let raw: RawQueue = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            let at = e.span().map(line).unwrap_or(0);
            return Err(vec![Problem {
                file: file.to_string(),
                line: at,
                message: e.message().trim().to_string(),
            }]);
        }
    };
    let name_ok = !raw.queue.get_ref().is_empty()
        && raw
            .queue
            .get_ref()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit());
    if !name_ok {
        problem(
            raw.queue.span(),
            format!(
                "queue name `{}` must be lower-case letters, digits and `_`",
                raw.queue.get_ref()
            ),
        );
    }
    for job in &raw.jobs {
        if !Job::KINDS.contains(&job.get_ref().as_str()) {
            problem(
                job.span(),
                format!(
                    "unknown job kind `{}`; known kinds: {}",
                    job.get_ref(),
                    Job::KINDS.join(", ")
                ),
            );
        }
    }
    if raw.concurrency == 0 || raw.max_attempts == 0 {
        problem(
            raw.queue.span(),
            "concurrency and max_attempts must be at least 1".into(),
        );
    }
    let dur = |text: &str,
               span: std::ops::Range<usize>,
               what: &str,
               problem: &mut dyn FnMut(std::ops::Range<usize>, String)| {
        duration::parse(text).and_then(|d| d.to_std().ok()).unwrap_or_else(|| {
            problem(
                span,
                format!("{what} `{text}` is not a duration such as \"30s\" or \"5m\""),
            );
            Duration::ZERO
        })
    };
    let (backoff_first, backoff_max) = match &raw.backoff {
        Some(b) => (
            dur(&b.get_ref().first, b.span(), "backoff.first", &mut problem),
            dur(&b.get_ref().max, b.span(), "backoff.max", &mut problem),
        ),
        None => (Duration::from_secs(1), Duration::from_secs(300)),
    };
    let timeout = match &raw.timeout {
        Some(t) => dur(t.get_ref(), t.span(), "timeout", &mut problem),
        None => Duration::from_secs(60),
    };
    let mut crons = Vec::new();
    for c in &raw.cron {
        let c = c.get_ref();
        if Job::periodic(c.job.get_ref()).is_none() {
            problem(
                c.job.span(),
                format!(
                    "cron job `{}` is not a periodic job kind (periodic: sweep_timers, daily_digest)",
                    c.job.get_ref()
                ),
            );
        } else if !raw.jobs.iter().any(|j| j.get_ref() == c.job.get_ref()) {
            problem(
                c.job.span(),
                format!("cron job `{}` is not among this queue's `jobs`", c.job.get_ref()),
            );
        }
        let schedule = cron::Schedule::from_str(c.schedule.get_ref());
        if let Err(e) = &schedule {
            problem(
                c.schedule.span(),
                format!(
                    "cron schedule `{}` is invalid ({e}); it needs seconds first: \"0 0 8 * * *\" is 08:00 daily",
                    c.schedule.get_ref()
                ),
            );
        }
        let timezone = chrono_tz::Tz::from_str(c.timezone.get_ref());
        if timezone.is_err() {
            let span = if c.timezone.span().is_empty() {
                c.job.span()
            } else {
                c.timezone.span()
            };
            problem(
                span,
                format!(
                    "unknown time zone `{}`; use an IANA name such as Asia/Shanghai",
                    c.timezone.get_ref()
                ),
            );
        }
        if let (Ok(schedule), Ok(timezone)) = (schedule, timezone) {
            crons.push(CronConfig {
                job: c.job.get_ref().clone(),
                schedule,
                timezone,
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(QueueConfig {
        queue: raw.queue.into_inner(),
        jobs: raw.jobs.into_iter().map(|j| j.into_inner()).collect(),
        concurrency: raw.concurrency,
        max_attempts: raw.max_attempts,
        backoff_first,
        backoff_max,
        timeout,
        cron: crons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_cron_expression_is_reported_with_its_line() {
        let source = "queue = \"timers\"\njobs = [\"sweep_timers\"]\n\n[[cron]]\njob = \"sweep_timers\"\nschedule = \"every minute\"\n";
        let problems = parse("workers/timers.toml", source).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 6);
        assert!(
            problems[0].to_string().starts_with("workers/timers.toml:6:"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn an_unknown_job_kind_is_reported_with_its_line() {
        let problems = parse("w.toml", "queue = \"q\"\njobs = [\"fire_timer\", \"make_coffee\"]\n").unwrap_err();
        assert_eq!(problems[0].line, 2);
        assert!(problems[0].message.contains("make_coffee"));
    }

    #[test]
    fn five_field_cron_is_refused_and_six_fields_in_shanghai_are_accepted() {
        assert!(
            parse(
                "w.toml",
                "queue = \"q\"\njobs = [\"sweep_timers\"]\n[[cron]]\njob = \"sweep_timers\"\nschedule = \"* * * * *\"\n"
            )
            .is_err()
        );
        let q = parse(
            "w.toml",
            "queue = \"q\"\njobs = [\"sweep_timers\"]\n[[cron]]\njob = \"sweep_timers\"\nschedule = \"0 0 8 * * *\"\n",
        )
        .unwrap();
        assert_eq!(q.cron[0].timezone, chrono_tz::Asia::Shanghai);
    }
}
