//! `payouts-admin`: the operator tool over the same core and the same table as the functions.
//!
//! It reads the functions' variables (`PAYOUTS_TABLE`; `refresh` also every Vexora variable)
//! and the AWS SDK's usual ones (profile, region, `AWS_ENDPOINT_URL`). Output is a table, or
//! JSON with `--json`; exports are CSV. Exit codes: 0 done, 1 refused (one line on stderr,
//! nothing changed), 2 bad usage, 3 could not work (configuration, AWS, Vexora unreachable).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod output;

use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use payout_app::apply::{Applied, Applier, Schedule, settle_abandoned};
use payout_app::query::query_and_apply;
use payout_app::store::{OrderStore, Transitioned};
use payout_aws::bootstrap::Runtime;
use payout_aws::config::PAYOUTS_TABLE;
use payout_aws::store::DynamoOrderStore;
use payout_domain::TradeNo;
use payout_domain::order::{Order, OrderStatus, pending_abandoned_after};

/// Operate Vexora payouts: find orders, look at them, ask Vexora again, close the ones in
/// manual review, export the ledger.
#[derive(Debug, Parser)]
#[command(name = "payouts-admin", version, propagate_version = true)]
struct Cli {
    /// Print JSON instead of a table (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List orders, oldest first (reads the whole table).
    List {
        /// Only orders in this state (repeatable).
        #[arg(long, value_enum)]
        status: Vec<Status>,
        /// Only orders flagged for manual review and not yet final.
        #[arg(long)]
        review: bool,
        /// At most this many orders.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one order: its state, Vexora's last answer, its history and anomalies.
    Show {
        /// The order's tradeNo.
        trade_no: String,
    },
    /// Ask Vexora about one order now and apply the answer (the reconciler's query).
    Refresh {
        /// The order's tradeNo.
        trade_no: String,
    },
    /// Close an order in manual review as Vexora confirmed it; recorded with your identity.
    Resolve {
        /// The order's tradeNo.
        trade_no: String,
        /// The state Vexora confirmed.
        #[arg(long = "as", value_enum)]
        to: Final,
        /// What Vexora confirmed (ticket number, statement line), at most 500 characters.
        #[arg(long)]
        evidence: String,
    },
    /// Export the ledger as CSV (tradeNo, platFormTradeNo, amount, status, createdAt, finalAt):
    /// orders created between two Japan dates, inclusive. No personal data.
    Export {
        /// First Japan date (YYYY-MM-DD).
        #[arg(long)]
        from: NaiveDate,
        /// Last Japan date (YYYY-MM-DD), inclusive.
        #[arg(long)]
        to: NaiveDate,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum Status {
    Pending,
    Unconfirmed,
    Processing,
    Succeeded,
    Failed,
}

impl From<Status> for OrderStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => Self::Pending,
            Status::Unconfirmed => Self::Unconfirmed,
            Status::Processing => Self::Processing,
            Status::Succeeded => Self::Succeeded,
            Status::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum Final {
    Succeeded,
    Failed,
}

/// Why a command ended without doing its work.
#[derive(Debug)]
enum Failure {
    /// Refused: nothing changed (exit 1).
    Refused(String),
    /// Could not work (exit 3).
    Broken(String),
}

fn refused(message: impl Into<String>) -> Failure {
    Failure::Refused(message.into())
}

fn broken(message: impl std::fmt::Display) -> Failure {
    Failure::Broken(message.to_string())
}

/// Counts nowhere: metrics are the functions' (an operator's action is in the order's history).
struct NoMetrics;

impl payout_app::metrics::Metrics for NoMetrics {
    fn count(&self, _: &'static str, _: u64) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(reason)) => {
            eprintln!("payouts-admin: refused: {reason}");
            ExitCode::from(1)
        }
        Err(Failure::Broken(reason)) => {
            eprintln!("payouts-admin: error: {reason}");
            ExitCode::from(3)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.json;
    match cli.command {
        Command::List {
            status,
            review,
            limit,
        } => {
            let wanted: Vec<OrderStatus> = status.into_iter().map(OrderStatus::from).collect();
            let mut orders = all_orders(&store().await?).await?;
            orders.retain(|o| {
                (wanted.is_empty() || wanted.contains(&o.status))
                    && (!review || (o.manual_review && !o.status.is_final()))
            });
            orders.sort_by(|a, b| {
                (a.created_at, a.trade_no.as_str()).cmp(&(b.created_at, b.trade_no.as_str()))
            });
            let more = orders.len() > limit;
            orders.truncate(limit);
            output::list(&orders, more, json);
            Ok(())
        }
        Command::Show { trade_no } => {
            let store = store().await?;
            let order = find(&store, &trade_no).await?;
            output::show(&order, json);
            Ok(())
        }
        Command::Refresh { trade_no } => refresh(&trade_no, json).await,
        Command::Resolve {
            trade_no,
            to,
            evidence,
        } => resolve(&trade_no, to, &evidence, json).await,
        Command::Export { from, to } => {
            if to < from {
                return Err(refused("--to is before --from"));
            }
            let (start, end) = (
                japan_midnight(from),
                japan_midnight(to + chrono::Days::new(1)),
            );
            let mut orders = all_orders(&store().await?).await?;
            orders.retain(|o| o.created_at >= start && o.created_at < end);
            orders.sort_by(|a, b| {
                (a.created_at, a.trade_no.as_str()).cmp(&(b.created_at, b.trade_no.as_str()))
            });
            output::export(&orders, json).map_err(broken)
        }
    }
}

/// 00:00 of `date` in Japan.
fn japan_midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(payout_domain::JAPAN_TIME).single())
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

async fn sdk() -> aws_config::SdkConfig {
    payout_aws::sdk::load().await
}

/// The table named by `PAYOUTS_TABLE`.
async fn store() -> Result<DynamoOrderStore, Failure> {
    let table = std::env::var(PAYOUTS_TABLE)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| broken(format!("{PAYOUTS_TABLE} is missing or empty")))?;
    Ok(DynamoOrderStore::new(
        aws_sdk_dynamodb::Client::new(&sdk().await),
        table.trim(),
    ))
}

async fn all_orders(store: &DynamoOrderStore) -> Result<Vec<Order>, Failure> {
    let mut orders = Vec::new();
    store
        .scan(|page| orders.extend(page))
        .await
        .map_err(|e| broken(format!("reading the table failed: {e}")))?;
    Ok(orders)
}

async fn find(store: &impl OrderStore, trade_no: &str) -> Result<Order, Failure> {
    let parsed = TradeNo::parse(trade_no).map_err(|_| {
        refused(format!(
            "{trade_no:?} is not a tradeNo (1-32 of A-Z a-z 0-9 _ -)"
        ))
    })?;
    store
        .get(&parsed)
        .await
        .map_err(|e| broken(format!("reading the order failed: {e}")))?
        .ok_or_else(|| refused(format!("no order {trade_no}")))
}

async fn refresh(trade_no: &str, json: bool) -> Result<(), Failure> {
    let (runtime, vexora) = Runtime::init_with_vexora().await.map_err(broken)?;
    let order = find(&runtime.store, trade_no).await?;
    if order.status.is_final() {
        return Err(refused(format!(
            "{trade_no} is {} (final): nothing to refresh",
            order.status
        )));
    }
    let now = Utc::now();
    let abandoned_after = pending_abandoned_after(vexora.endpoint.timeout);
    if order.status == OrderStatus::Pending && !order.is_abandoned(now, abandoned_after) {
        return Err(refused(format!(
            "{trade_no} is PENDING and its submit may still be running; try again in a minute"
        )));
    }
    let from = order.status;
    let order = settle_abandoned(&runtime.store, order, now, abandoned_after)
        .await
        .map_err(|e| {
            broken(format!(
                "storing the abandoned order as UNCONFIRMED failed: {e}"
            ))
        })?
        .ok_or_else(|| refused(format!("no order {trade_no}")))?;
    let applier = Applier {
        store: &runtime.store,
        metrics: &NoMetrics,
        schedule: Schedule::from(&runtime.config),
    };
    let applied = query_and_apply(&applier, &vexora.client, &runtime.secrets, &order, now)
        .await
        .map_err(|e| broken(format!("the query could not be applied: {e}")))?;
    let (outcome, now_order) = match &applied {
        Applied::Moved(o) => ("moved", Some(o)),
        Applied::Duplicate(o) | Applied::Stale(o) => ("unchanged", Some(o)),
        Applied::Flagged(o, _) => ("anomaly", Some(o)),
        Applied::Unknown => ("unknown", None),
        Applied::NotFound => return Err(refused(format!("no order {trade_no}"))),
    };
    let to = now_order.map_or(order.status, |o| o.status);
    output::refreshed(trade_no, from, to, outcome, json);
    Ok(())
}

async fn resolve(trade_no: &str, to: Final, evidence: &str, json: bool) -> Result<(), Failure> {
    let sdk = sdk().await;
    let store = store().await?;
    let order = find(&store, trade_no).await?;
    let to = match to {
        Final::Succeeded => OrderStatus::Succeeded,
        Final::Failed => OrderStatus::Failed,
    };
    // Refusals that need no identity come first: nothing is asked of AWS for them.
    payout_app::review::resolution(&order, to, "-", evidence, Utc::now())
        .map_err(|r| refused(format!("{trade_no}: {r}")))?;
    let identity = aws_sdk_sts::Client::new(&sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            broken(format!(
                "who is calling could not be established (sts:GetCallerIdentity): {e}"
            ))
        })?;
    let operator = identity.arn.unwrap_or_default();
    let transition = payout_app::review::resolution(&order, to, &operator, evidence, Utc::now())
        .map_err(|r| refused(format!("{trade_no}: {r}")))?;
    match store
        .transition(&order.trade_no, &transition)
        .await
        .map_err(|e| broken(format!("the write failed: {e}")))?
    {
        Transitioned::Applied(done) => {
            output::resolved(&done, &operator, json);
            Ok(())
        }
        Transitioned::Rejected(now) => Err(refused(format!(
            "{trade_no} changed since it was read (now {}); nothing was written; show it again",
            now.status
        ))),
        Transitioned::NotFound => Err(refused(format!("no order {trade_no}"))),
    }
}
