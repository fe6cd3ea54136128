//! A deterministic simulation of the whole payout protocol (in the manner of FoundationDB's
//! simulation and TigerBeetle's VOPR): one seed drives the real handlers (`submit-payout` with
//! its batch routes, `payout-webhook`, `submit-batch-items`, `reconcile-payouts`) and the
//! operator's resolution rule over the in-memory store and a simulated Vexora, choosing every
//! next step and every fault from the seed, and checks the promise after every stored change.
//! The same seed always takes the same steps: `simulate --seed N` replays one with its trace.

pub mod ports;
pub mod sim;
pub mod world;

pub use sim::{Options, Report, run};

/// Runs `f` inside a current-thread Tokio runtime's context (the reconciler's timeouts need a
/// timer; nothing here ever waits on one: every wait is a gate the simulation opens).
pub fn in_runtime<T>(f: impl FnOnce() -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("no Tokio runtime: {e}"));
    let _entered = runtime.enter();
    f()
}

/// What a sweep found: how many seeds passed, the failures (lowest seed first), and how often
/// each kind of event happened over all seeds.
#[derive(Debug, Default)]
pub struct Sweep {
    pub passed: u64,
    pub failed: Vec<Report>,
    pub counts: std::collections::BTreeMap<String, u64>,
}

/// Runs seeds `from..from + count` on `threads` threads.
pub fn sweep(from: u64, count: u64, threads: u64, options: Options) -> Sweep {
    let threads = threads.max(1);
    let results: Vec<Sweep> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || {
                    in_runtime(|| {
                        let mut sweep = Sweep::default();
                        let mut seed = from + k;
                        while seed < from + count {
                            let mut report = run(seed, options);
                            for (what, n) in std::mem::take(&mut report.counts) {
                                *sweep.counts.entry(what).or_default() += n;
                            }
                            if report.violations.is_empty() {
                                sweep.passed += 1;
                            } else {
                                sweep.failed.push(report);
                            }
                            seed += threads;
                        }
                        sweep
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut total = Sweep::default();
    for sweep in results {
        total.passed += sweep.passed;
        total.failed.extend(sweep.failed);
        for (what, n) in sweep.counts {
            *total.counts.entry(what).or_default() += n;
        }
    }
    total.failed.sort_by_key(|r| r.seed);
    total
}
