//! The AWS actions each function's code calls, by the port method that calls them. The SAM
//! template's policies are checked against these (tests/tests/checks/template.rs), so a new
//! store call without a permission, or a permission no code uses, fails the tests.

/// The DynamoDB action behind each `OrderStore` method of the real adapter.
pub mod store {
    pub const CREATE: &str = "dynamodb:PutItem";
    pub const GET: &str = "dynamodb:GetItem";
    pub const TRANSITION: &str = "dynamodb:UpdateItem";
    pub const DELETE_PENDING: &str = "dynamodb:DeleteItem";
    pub const KEEP: &str = "dynamodb:UpdateItem";
    pub const CLAIM_CHECK: &str = "dynamodb:UpdateItem";
    pub const CLAIM_REFRESH: &str = "dynamodb:UpdateItem";
    /// On the unresolved index, not the table.
    pub const DUE_FOR_CHECK: &str = "dynamodb:Query";
}

/// What the secret cache calls ([`crate::secrets::SecretsManagerStore`]).
pub const SECRET_READ: [&str; 1] = ["secretsmanager:GetSecretValue"];

/// Actions of one function, by resource.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub binary: &'static str,
    pub table: &'static [&'static str],
    pub index: &'static [&'static str],
    pub secret: &'static [&'static str],
}

/// `submit-payout`: create, get, transition, delete_pending, keep; refresh uses claim_refresh
/// and the resolver (transition, keep).
pub const SUBMIT_PAYOUT: Needs = Needs {
    binary: "submit-payout",
    table: &[
        store::CREATE,
        store::GET,
        store::TRANSITION,
        store::DELETE_PENDING,
    ],
    index: &[],
    secret: &SECRET_READ,
};

/// `payout-webhook`: transition, get, keep.
pub const PAYOUT_WEBHOOK: Needs = Needs {
    binary: "payout-webhook",
    table: &[store::GET, store::TRANSITION],
    index: &[],
    secret: &SECRET_READ,
};

/// `reconcile-payouts`: due_for_check, get, claim_check and the resolver.
pub const RECONCILE_PAYOUTS: Needs = Needs {
    binary: "reconcile-payouts",
    table: &[store::GET, store::CLAIM_CHECK],
    index: &[store::DUE_FOR_CHECK],
    secret: &SECRET_READ,
};

pub const ALL: [Needs; 3] = [SUBMIT_PAYOUT, PAYOUT_WEBHOOK, RECONCILE_PAYOUTS];
