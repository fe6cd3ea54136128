//! The build that ships (`sam build`: `cargo lambda build --release --arm64 --bin <function>` at
//! the workspace root, no `-p`) resolves features over the default members only, so no test
//! support (`payout-core/test-util`: fakes, the moto launcher and its `unsafe` block) is
//! compiled into a deployed binary.

use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo tree` as `sam build` resolves it: from the workspace root, no `-p`, the Lambda target,
/// normal (not dev) dependencies, with features.
fn deployed_tree(invert: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace())
        .args(["tree", "-e", "features,no-dev", "-i", invert])
        .args(["--target", "aarch64-unknown-linux-gnu"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_deployed_build_compiles_no_test_support() {
    let tree = deployed_tree("payout-core");

    for function in ["submit-payout", "payout-webhook", "reconcile-payouts"] {
        assert!(tree.contains(function), "{function} is built: {tree}");
    }
    assert!(
        !tree.contains("test-util"),
        "payout-core/test-util reaches the deployed build:\n{tree}"
    );
    assert!(
        !tree.contains("payout-e2e"),
        "the test crate takes part in the deployed build's resolution:\n{tree}"
    );
}
