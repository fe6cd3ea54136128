//! `make reliability`: the load-and-fault run over the real function binaries, the moto server
//! and the Vexora sandbox. Prints the report (also in target/reliability/) and exits non-zero
//! on any violation.
//!
//! Usage: reliability [--payouts N] [--seed N] [--concurrency N] [--out DIR]

// A command-line tool: the report goes to standard output.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use payout_e2e::reliability::{Plan, run};

fn parse() -> Result<Plan, String> {
    let mut plan = Plan::new(1000, PathBuf::from("target/reliability"));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--payouts" => {
                plan.payouts = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?
            }
            "--seed" => plan.seed = number(value()?)?,
            "--concurrency" => {
                plan.concurrency = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?;
            }
            "--out" => plan.out_dir = PathBuf::from(value()?),
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: reliability [--payouts N] [--seed N] [--concurrency N] [--out DIR]"
                ));
            }
        }
    }
    if plan.payouts == 0 || plan.concurrency == 0 {
        return Err("--payouts and --concurrency must be at least 1".into());
    }
    Ok(plan)
}

#[tokio::main]
async fn main() -> ExitCode {
    let plan = match parse() {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("reliability: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&plan).await {
        Ok(report) => {
            println!("{}", report.summary());
            println!("\nreport: {}", plan.out_dir.join("report.json").display());
            if report.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("reliability: {} violation(s)", report.violations.len());
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("reliability: the run could not be carried out: {message}");
            ExitCode::FAILURE
        }
    }
}
