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

/// Runs seeds `from..from + count` on `threads` threads; returns how many passed and the
/// reports of those that failed (lowest seed first).
pub fn sweep(from: u64, count: u64, threads: u64, options: Options) -> (u64, Vec<Report>) {
    let threads = threads.max(1);
    let results: Vec<(u64, Vec<Report>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || {
                    in_runtime(|| {
                        let mut passed = 0;
                        let mut failed = Vec::new();
                        let mut seed = from + k;
                        while seed < from + count {
                            let report = run(seed, options);
                            if report.violations.is_empty() {
                                passed += 1;
                            } else {
                                failed.push(report);
                            }
                            seed += threads;
                        }
                        (passed, failed)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| (0, Vec::new())))
            .collect()
    });
    let passed = results.iter().map(|(p, _)| p).sum();
    let mut failed: Vec<Report> = results.into_iter().flat_map(|(_, f)| f).collect();
    failed.sort_by_key(|r| r.seed);
    (passed, failed)
}
