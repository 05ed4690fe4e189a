//! Rendering benchmark (a plain `harness = false` binary): cold start, warm PDF, warm PDF + PNGs,
//! one- and two-thread throughput on one shared `Renderer`, and memory over 1,000 renders.
//!
//! Run: `cargo bench --bench render` (release profile). Every render gets a different agreement
//! number and student name, as in production, so typst's memoization is not a pure cache hit.
//!
//! `RENDER_LOOP=N` renders only N warm PDFs, for a profiler (`perf record` on the bench binary).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gradsign::render::{AgreementDoc, Renderer, agreement_number, sample_data, verification_code};

fn doc(seq: u64) -> AgreementDoc {
    let number = agreement_number(2025, "10212", seq);
    let mut data = sample_data();
    data["student"]["name"] = serde_json::json!(["李晓雯", "张伟", "王芳", "刘洋", "陈静"][seq as usize % 5]);
    data["student"]["student_number"] = serde_json::json!(format!("2021{seq:06}"));
    AgreementDoc {
        verification_code: verification_code(b"bench secret", &number),
        verify_url: format!("https://gradsign.example.cn/verify/{number}"),
        number,
        preview: seq.is_multiple_of(2),
        data,
        evidence: None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Renders `n` agreements starting at `first` and prints mean / min / max in milliseconds.
fn timed(renderer: &Renderer, label: &str, first: u64, n: u64, pngs: bool) {
    let mut times = Vec::new();
    for seq in first..first + n {
        let start = Instant::now();
        renderer.render(&doc(seq), pngs).expect("render");
        times.push(start.elapsed());
    }
    let mean = times.iter().sum::<Duration>() / n as u32;
    let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    println!(
        "{label:<28} n={n:<5} mean {:>8.2} ms  min {:>8.2} ms  max {:>8.2} ms",
        ms(mean),
        ms(*min),
        ms(*max)
    );
}

fn throughput(renderer: &Arc<Renderer>, threads: u64, per_thread: u64, pngs: bool) {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let renderer = Arc::clone(renderer);
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    renderer
                        .render(&doc(100_000 + t * per_thread + i), pngs)
                        .expect("render");
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let total = threads * per_thread;
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let what = if pngs { "pdf+png" } else { "pdf" };
    println!(
        "throughput {what:<8} {threads} threads  {total} agreements in {:.2} s = {rate:.1} agreements/s",
        start.elapsed().as_secs_f64()
    );
}

fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (kb("VmHWM:"), kb("VmRSS:"))
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/agreement");
    let start = Instant::now();
    let renderer = Arc::new(Renderer::load(&dir).expect("load"));
    let loaded = start.elapsed();
    let first = renderer.render(&doc(1), false).expect("first render");
    let cold = start.elapsed();
    println!(
        "cold: Renderer::load {:.1} ms, + first render = {:.1} ms (pdf {} bytes)",
        ms(loaded),
        ms(cold),
        first.pdf.len()
    );
    let with_png = renderer.render(&doc(2), true).expect("render");
    println!(
        "sizes: pdf {} bytes, page pngs {:?} bytes",
        with_png.pdf.len(),
        with_png.pages.iter().map(Vec::len).collect::<Vec<_>>()
    );

    if let Some(n) = std::env::var("RENDER_LOOP").ok().and_then(|n| n.parse().ok()) {
        timed(&renderer, "warm pdf only", 10, n, false);
        return;
    }
    timed(&renderer, "warm pdf only", 10, 200, false);
    timed(&renderer, "warm pdf + 2 png pages", 1_000, 30, true);
    for threads in [1, 2] {
        throughput(&renderer, threads, 400 / threads, false);
        throughput(&renderer, threads, 40 / threads, true);
    }

    let (hwm0, rss0) = memory();
    let start = Instant::now();
    for seq in 10_000..11_000 {
        renderer.render(&doc(seq), false).expect("render");
    }
    let (hwm1, rss1) = memory();
    println!(
        "memory over 1000 pdf renders ({:.1} s): VmHWM {} -> {} MB, VmRSS {} -> {} MB",
        start.elapsed().as_secs_f64(),
        hwm0 / 1024,
        hwm1 / 1024,
        rss0 / 1024,
        rss1 / 1024
    );
}
