//! `make test`'s share of the simulation: a few thousand seeds of the whole protocol over the
//! real handlers (`make simulate` runs 100,000), and the proof that a seed replays exactly.

use payout_simulation::{Options, in_runtime, run, sweep};

#[test]
fn thousands_of_seeded_runs_keep_the_promise() {
    let seeds = std::env::var("SIMULATION_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let result = sweep(1_000_000, seeds, 2, Options::default());
    let (passed, failed) = (result.passed, result.failed);
    if let Some(first) = failed.first() {
        panic!(
            "{} of {seeds} seeds broke the promise; first: seed {}: {}\n  replay: make simulate SEED={}",
            failed.len(),
            first.seed,
            first.violations.join("; "),
            first.seed
        );
    }
    assert_eq!(passed, seeds);
}

#[test]
fn a_seed_replays_step_for_step() {
    let options = Options {
        trace: true,
        ..Options::default()
    };
    let (a, b) = in_runtime(|| (run(42, options), run(42, options)));
    assert_eq!(a.trace, b.trace);
    assert!(a.trace.len() > 50, "a run takes steps: {}", a.trace.len());
}
