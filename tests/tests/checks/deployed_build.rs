//! The build that ships (`sam build`: `cargo lambda build --release --arm64 --bin <function>` at
//! the workspace root, no `-p`) resolves features over the default members only, so no test
//! support (`payout-core/test-util`: fakes, the moto launcher and its `unsafe` block) is
//! compiled into a deployed binary.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo tree` with `args` as `sam build` resolves it: from the workspace root, no `-p`, the
/// Lambda target. A `cargo tree` that fails fails the check (an empty tree proves nothing).
fn cargo_tree(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace())
        .arg("tree")
        .args(args)
        .args(["--target", "aarch64-unknown-linux-gnu"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo tree {} failed ({}):\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// What reaches `invert` in the deployed build: normal (not dev) dependencies, with features.
fn deployed_tree(invert: &str) -> String {
    cargo_tree(&["-e", "features,no-dev", "-i", invert])
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

/// The name of every crate in the deployed build, from one `cargo tree` that must succeed
/// (`cargo tree -i` of a crate not in the build fails, which would hide any other failure).
fn deployed_crates() -> BTreeSet<String> {
    cargo_tree(&["-e", "no-dev", "--prefix", "none"])
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_deployed_build_links_one_tls_stack_with_one_crypto_library() {
    // reqwest over rustls with ring for the SDK and for Vexora (payout_core::aws); the SDK's
    // default HTTPS client (hyper with HTTP/2, aws-lc-rs), OpenSSL or native TLS would each add
    // to every zip.
    let crates = deployed_crates();
    for function in ["submit-payout", "payout-webhook", "reconcile-payouts"] {
        assert!(crates.contains(function), "{function} is built: {crates:?}");
    }
    let ring = cargo_tree(&["-e", "no-dev", "-i", "ring"]);
    assert!(
        ring.contains("rustls"),
        "rustls with ring is the TLS stack:\n{ring}"
    );
    for absent in [
        "aws-lc-rs",
        "aws-lc-sys",
        "openssl",
        "native-tls",
        "hyper-tls",
    ] {
        if crates.contains(absent) {
            let reached_by = cargo_tree(&["-e", "no-dev", "-i", absent]);
            panic!("{absent} reaches the deployed build:\n{reached_by}");
        }
    }
}
