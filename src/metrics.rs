//! What `GET /metrics` shows, in the Prometheus text format (version 0.0.4).
//!
//! Counters and histograms of this process live here; the queues' gauges (jobs waiting,
//! running, failed, the oldest waiting) are read from the database when scraped, so
//! they are true whichever process pushed or ran the jobs. Written by hand rather than
//! with `metrics-exporter-prometheus`: a few families with fixed buckets need no
//! registry, recorder or exporter (and no dependencies to build on a clean CI runner).

use std::{collections::BTreeMap, fmt::Write, sync::Mutex, time::Duration};

/// Every family: name, type, help, and the histogram's upper bounds in seconds.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    buckets: &'static [f64],
}

const LATENCY: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Statements (round trips, `BEGIN` and `COMMIT` included) per transition.
const STATEMENTS: &[f64] = &[4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 28.0, 40.0];
const LAG: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0];

const FAMILIES: &[Family] = &[
    Family {
        name: "gradsign_transitions_total",
        kind: "counter",
        help: "Transitions asked for (start and fire), by workflow, transition and outcome (ok, refused, error).",
        buckets: &[],
    },
    Family {
        name: "gradsign_transition_seconds",
        kind: "histogram",
        help: "Time to decide and commit a transition, by workflow, transition and outcome.",
        buckets: LATENCY,
    },
    Family {
        name: "gradsign_transition_statements",
        kind: "histogram",
        help: "Statements sent to the database per transition (BEGIN and COMMIT included), by workflow and transition.",
        buckets: STATEMENTS,
    },
    Family {
        name: "gradsign_timers_fired_total",
        kind: "counter",
        help: "Timers fired by this process's timer loop.",
        buckets: &[],
    },
    Family {
        name: "gradsign_timer_lag_seconds",
        kind: "histogram",
        help: "Delay from a timer's due time to its firing.",
        buckets: LAG,
    },
    Family {
        name: "gradsign_renders_total",
        kind: "counter",
        help: "Render jobs by result (ok, or error: to be retried or failed for good).",
        buckets: &[],
    },
    Family {
        name: "gradsign_mails_total",
        kind: "counter",
        help: "Mail send attempts by result (sent, retry, failed).",
        buckets: &[],
    },
    Family {
        name: "gradsign_mail_resends_total",
        kind: "counter",
        help: "Mails sent again after an earlier SMTP exchange was cut (same Message-ID).",
        buckets: &[],
    },
    Family {
        name: "gradsign_http_requests_total",
        kind: "counter",
        help: "HTTP requests by route and status.",
        buckets: &[],
    },
    Family {
        name: "gradsign_http_request_seconds",
        kind: "histogram",
        help: "HTTP request latency by route.",
        buckets: LATENCY,
    },
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Values {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// This process's counters and histograms.
#[derive(Default)]
pub struct Metrics {
    values: Mutex<Values>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A queue's jobs as the database has them, for the gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueGauges {
    pub queue: String,
    pub waiting: i64,
    pub running: i64,
    pub failed: i64,
    /// Seconds since the oldest waiting job became due (0 when none waits).
    pub oldest_waiting_seconds: f64,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

fn family(name: &str) -> &'static Family {
    FAMILIES
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("metric {name} is not declared"))
}

impl Metrics {
    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        debug_assert_eq!(family(name).kind, "counter");
        let mut v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        *v.counters.entry((name, labels(pairs))).or_default() += 1;
    }

    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], value: Duration) {
        self.observe_value(name, pairs, value.as_secs_f64());
    }

    /// Records a value in a histogram whose buckets are not seconds (a count).
    pub fn observe_value(&self, name: &'static str, pairs: &[(&'static str, &str)], seconds: f64) {
        let buckets = family(name).buckets;
        let mut v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let h = v.histograms.entry((name, labels(pairs))).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; buckets.len()];
        }
        for (i, bound) in buckets.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// A transition asked for: counted and timed.
    pub fn transition(&self, workflow: &str, transition: &str, outcome: &str, took: Duration) {
        let pairs = [("workflow", workflow), ("transition", transition), ("outcome", outcome)];
        self.inc("gradsign_transitions_total", &pairs);
        self.observe("gradsign_transition_seconds", &pairs, took);
    }

    /// The statements a transition sent (its round trips to the database).
    pub fn statements(&self, workflow: &str, transition: &str, statements: u32) {
        let pairs = [("workflow", workflow), ("transition", transition)];
        self.observe_value("gradsign_transition_statements", &pairs, f64::from(statements));
    }

    /// The exposition: this process's families, then the queues' gauges.
    pub fn render(&self, queues: &[QueueGauges]) -> String {
        let v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for f in FAMILIES {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", f.name, f.help, f.name, f.kind);
            for ((_, l), n) in v
                .counters
                .range((f.name, Vec::new())..)
                .take_while(|((name, _), _)| *name == f.name)
            {
                let _ = writeln!(out, "{}{} {n}", f.name, label_text(l, None));
            }
            for ((_, l), h) in v
                .histograms
                .range((f.name, Vec::new())..)
                .take_while(|((name, _), _)| *name == f.name)
            {
                for (bound, n) in f.buckets.iter().zip(&h.counts) {
                    let _ = writeln!(out, "{}_bucket{} {n}", f.name, label_text(l, Some(&bound.to_string())));
                }
                let _ = writeln!(out, "{}_bucket{} {}", f.name, label_text(l, Some("+Inf")), h.count);
                let _ = writeln!(out, "{}_sum{} {}", f.name, label_text(l, None), h.sum);
                let _ = writeln!(out, "{}_count{} {}", f.name, label_text(l, None), h.count);
            }
        }
        let gauges: [Gauge; 4] = [
            (
                "gradsign_jobs_waiting",
                "Jobs due or scheduled, not yet taken, by queue (from the database).",
                |g| g.waiting.to_string(),
            ),
            (
                "gradsign_jobs_running",
                "Jobs taken by a worker, by queue (from the database).",
                |g| g.running.to_string(),
            ),
            (
                "gradsign_jobs_failed",
                "Jobs that failed for good, by queue (from the database).",
                |g| g.failed.to_string(),
            ),
            (
                "gradsign_jobs_oldest_waiting_seconds",
                "Age of the oldest due job not yet taken, by queue (from the database).",
                |g| g.oldest_waiting_seconds.to_string(),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for g in queues {
                let _ = writeln!(out, "{name}{{queue=\"{}\"}} {}", escape(&g.queue), value(g));
            }
        }
        out
    }
}

/// A gauge family: name, help, and its value in one queue's gauges.
type Gauge = (&'static str, &'static str, fn(&QueueGauges) -> String);

fn label_text(l: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.transition("online_signing", "accept", "ok", Duration::from_millis(20));
        m.transition("online_signing", "accept", "ok", Duration::from_millis(300));
        m.inc("gradsign_mails_total", &[("result", "sent")]);
        let text = m.render(&[QueueGauges {
            queue: "mail".into(),
            waiting: 2,
            ..Default::default()
        }]);
        let accept = r#"workflow="online_signing",transition="accept",outcome="ok""#;
        assert!(
            text.contains(&format!("gradsign_transitions_total{{{accept}}} 2")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "gradsign_transition_seconds_bucket{{{accept},le=\"0.025\"}} 1"
        )));
        assert!(text.contains(&format!("gradsign_transition_seconds_bucket{{{accept},le=\"+Inf\"}} 2")));
        assert!(text.contains("gradsign_mails_total{result=\"sent\"} 1"));
        assert!(text.contains("gradsign_jobs_waiting{queue=\"mail\"} 2"));
        assert!(text.contains("# TYPE gradsign_timer_lag_seconds histogram"));
    }
}
