//! `make simulate`: many seeds, seeds per second, and for a failure the command that replays
//! it. `--seed N` replays one seed and prints its trace.

#![allow(clippy::print_stdout)]

use std::time::Instant;

use payout_simulation::{Options, Sweep, in_runtime, run, sweep};

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps = arg(&args, "--steps").map_or(Options::default().steps, |s| s as usize);
    if let Some(seed) = arg(&args, "--seed") {
        let report = in_runtime(|| run(seed, Options { steps, trace: true }));
        for line in &report.trace {
            println!("{line}");
        }
        if report.violations.is_empty() {
            println!("seed {seed}: no violation ({} steps)", report.steps);
            return;
        }
        println!("seed {seed}: {} violation(s)", report.violations.len());
        std::process::exit(1);
    }
    let seeds = arg(&args, "--seeds").unwrap_or(100_000);
    let from = arg(&args, "--from").unwrap_or(0);
    let threads = arg(&args, "--threads")
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u64));
    let started = Instant::now();
    let Sweep {
        passed,
        failed,
        counts,
    } = sweep(
        from,
        seeds,
        threads,
        Options {
            steps,
            trace: false,
        },
    );
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "simulated {seeds} seeds ({from}..{}) in {seconds:.1} s: {:.0} seeds/s on {threads} threads",
        from + seeds,
        seeds as f64 / seconds.max(1e-9)
    );
    if args.iter().any(|a| a == "--coverage") {
        println!("what the seeds explored (events over all runs):");
        for (what, n) in &counts {
            println!("{n:>10}  {what}");
        }
    }
    // Failures by kind (the first violation of each seed, names and numbers blanked), with the
    // lowest seed of each.
    let mut kinds: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for report in &failed {
        let first = report.violations.first().cloned().unwrap_or_default();
        let kind: String = first
            .split(' ')
            .map(|w| {
                if w.chars().any(|c| c.is_ascii_digit()) {
                    "#"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let entry = kinds.entry(kind).or_insert((0, report.seed));
        entry.0 += 1;
    }
    for (kind, (count, seed)) in &kinds {
        println!("{count:>7} × {kind} (first: seed {seed})");
    }
    for report in failed.iter().take(3) {
        println!("seed {}: {}", report.seed, report.violations.join("; "));
        println!("  replay: make simulate SEED={}", report.seed);
    }
    println!("{passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
