//! The AWS actions each function's code calls, by the port method that calls them. The SAM
//! template's policies are checked against these (tests/tests/checks/template.rs), so a new
//! store call without a permission, or a permission no code uses, fails the tests.

/// The DynamoDB action behind each `OrderStore` method of the real adapter.
pub mod store {
    pub const CREATE: &str = "dynamodb:PutItem";
    pub const GET: &str = "dynamodb:GetItem";
    pub const TRANSITION: &str = "dynamodb:UpdateItem";
    pub const DELETE_PENDING: &str = "dynamodb:DeleteItem";
    pub const ANNOTATE: &str = "dynamodb:UpdateItem";
    pub const CLAIM_CHECK: &str = "dynamodb:UpdateItem";
    pub const CLAIM_REFRESH: &str = "dynamodb:UpdateItem";
    /// On the unresolved index, not the table.
    pub const DUE_FOR_CHECK: &str = "dynamodb:Query";
    /// `BatchStore` ([`payout_app::batch`]).
    pub const CREATE_QUEUED: &str = "dynamodb:PutItem";
    pub const CLAIM_QUEUED: &str = "dynamodb:UpdateItem";
    pub const REQUEUE: &str = "dynamodb:UpdateItem";
    pub const ADOPT_QUEUED: &str = "dynamodb:UpdateItem";
    pub const WITHDRAW_QUEUED: &str = "dynamodb:DeleteItem";
    pub const PUT_BATCH: &str = "dynamodb:PutItem";
    pub const GET_BATCH: &str = "dynamodb:GetItem";
    pub const GET_MANY: &str = "dynamodb:BatchGetItem";
}

/// What the batch queue adapter calls ([`crate::queue::SqsBatchQueue`]).
pub const BATCH_QUEUE_SEND: [&str; 1] = ["sqs:SendMessage"];

/// What the secret cache calls ([`crate::secrets::SecretsManagerStore`]).
pub const SECRET_READ: [&str; 1] = ["secretsmanager:GetSecretValue"];

/// What the event sink calls ([`crate::events::EventBridgeSink`]), on the payouts bus.
pub const EVENTS_PUT: [&str; 1] = ["events:PutEvents"];

/// What Lambda's event source mapping calls as the publisher to read the table's stream, and
/// to hand a record it gave up on to the on-failure queue.
pub const STREAM_READ: [&str; 4] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];
pub const FAILURE_QUEUE: [&str; 1] = ["sqs:SendMessage"];

/// What Lambda's SQS event source mapping calls, as the worker's role, to feed it batch items.
pub const BATCH_QUEUE_POLL: [&str; 3] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

/// Every action performed with a function's role: its code's calls and its event source
/// mapping's (the worker's polling, the publisher's stream reads and on-failure queue).
pub fn performed(needs: &Needs) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = [
        needs.table,
        needs.index,
        needs.secret,
        needs.bus,
        needs.stream,
        needs.failure_queue,
        needs.batch_queue,
    ]
    .concat();
    all.sort_unstable();
    all.dedup();
    all
}

/// Actions of one function, by resource.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub binary: &'static str,
    pub table: &'static [&'static str],
    pub index: &'static [&'static str],
    pub secret: &'static [&'static str],
    pub bus: &'static [&'static str],
    pub stream: &'static [&'static str],
    /// The on-failure queue of the function's event source mapping.
    pub failure_queue: &'static [&'static str],
    /// The batch queue: sending, or (the worker) the polling its event source mapping does.
    pub batch_queue: &'static [&'static str],
}

const NOTHING: &[&str] = &[];

/// `submit-payout`: create, get, transition, delete_pending, annotate; refresh uses claim_refresh
/// and the query (transition, annotate); batches store queued items and their record, read
/// many, and queue the items.
pub const SUBMIT_PAYOUT: Needs = Needs {
    binary: "submit-payout",
    table: &[
        store::CREATE,
        store::GET,
        store::TRANSITION,
        store::DELETE_PENDING,
        store::GET_MANY,
    ],
    index: &[],
    secret: &SECRET_READ,
    bus: NOTHING,
    stream: NOTHING,
    failure_queue: NOTHING,
    batch_queue: &BATCH_QUEUE_SEND,
};

/// `payout-webhook`: transition, get, annotate.
pub const PAYOUT_WEBHOOK: Needs = Needs {
    binary: "payout-webhook",
    table: &[store::GET, store::TRANSITION],
    index: &[],
    secret: &SECRET_READ,
    bus: NOTHING,
    stream: NOTHING,
    failure_queue: NOTHING,
    batch_queue: NOTHING,
};

/// `reconcile-payouts`: due_for_check, get, claim_check and the query; a queued batch item
/// whose message was lost goes on the queue again; one no accepted batch lists is withdrawn.
pub const RECONCILE_PAYOUTS: Needs = Needs {
    binary: "reconcile-payouts",
    table: &[store::GET, store::CLAIM_CHECK, store::WITHDRAW_QUEUED],
    index: &[store::DUE_FOR_CHECK],
    secret: &SECRET_READ,
    bus: NOTHING,
    stream: NOTHING,
    failure_queue: NOTHING,
    batch_queue: &BATCH_QUEUE_SEND,
};

/// `submit-batch-items`: claim_queued, requeue, and the applier (get, transition, annotate); its
/// event source mapping polls the batch queue as it.
pub const SUBMIT_BATCH_ITEMS: Needs = Needs {
    binary: "submit-batch-items",
    table: &[store::GET, store::CLAIM_QUEUED, store::REQUEUE],
    index: &[],
    secret: &SECRET_READ,
    bus: NOTHING,
    stream: NOTHING,
    failure_queue: NOTHING,
    batch_queue: &BATCH_QUEUE_POLL,
};

/// `publish-payout-events`: the sink; its records come from the stream, not the table.
pub const PUBLISH_PAYOUT_EVENTS: Needs = Needs {
    binary: "publish-payout-events",
    table: NOTHING,
    index: NOTHING,
    secret: NOTHING,
    bus: &EVENTS_PUT,
    stream: &STREAM_READ,
    failure_queue: &FAILURE_QUEUE,
    batch_queue: NOTHING,
};

pub const ALL: [Needs; 5] = [
    SUBMIT_PAYOUT,
    PAYOUT_WEBHOOK,
    RECONCILE_PAYOUTS,
    PUBLISH_PAYOUT_EVENTS,
    SUBMIT_BATCH_ITEMS,
];
