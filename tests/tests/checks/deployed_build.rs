//! The layering, as `cargo tree` sees it: each layer crate depends only on the layers below it
//! (domain ← vexora ← app ← aws ← functions), and the testkit is a dev-dependency only, so no
//! test support (fakes, the moto launcher and its `unsafe` block) is compiled into a deployed
//! binary: the compiler, not a feature flag, keeps it out. The build that ships (`sam build`:
//! `cargo lambda build --release --arm64 --bin <function>` at the workspace root, no `-p`)
//! resolves features over the default members only, so the test crates' own features (reqwest's
//! aws-lc-rs TLS) do not reach it either.

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

/// The name of every crate in the deployed build, from one `cargo tree` that must succeed
/// (`cargo tree -i` of a crate not in the build fails, which would hide any other failure).
fn deployed_crates() -> BTreeSet<String> {
    names(&cargo_tree(&["-e", "no-dev", "--prefix", "none"]))
}

/// Fails naming what pulls in the first of `absent` the deployed build holds.
fn assert_absent(crates: &BTreeSet<String>, absent: &[&str]) {
    for name in absent {
        if crates.contains(*name) {
            let reached_by = cargo_tree(&["-e", "no-dev", "-i", name]);
            panic!("{name} reaches the deployed build:\n{reached_by}");
        }
    }
}

/// The crate names of a `cargo tree --prefix none`.
fn names(tree: &str) -> BTreeSet<String> {
    tree.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The crates `package` depends on (normal dependencies only), itself included.
fn dependencies_of(package: &str) -> BTreeSet<String> {
    names(&cargo_tree(&[
        "-e", "normal", "--prefix", "none", "-p", package,
    ]))
}

const FUNCTIONS: [&str; 5] = [
    "submit-payout",
    "payout-webhook",
    "reconcile-payouts",
    "publish-payout-events",
    "submit-batch-items",
];

#[test]
fn the_deployed_build_compiles_no_test_support() {
    let crates = deployed_crates();
    for function in FUNCTIONS {
        assert!(crates.contains(function), "{function} is built: {crates:?}");
    }
    assert_absent(
        &crates,
        &[
            "payout-testkit",
            "payout-e2e",
            "payout-simulation",
            "wiremock",
            "proptest",
        ],
    );
}

#[test]
fn each_layer_depends_only_on_the_layers_below_it() {
    let aws_crates = |deps: &BTreeSet<String>| -> Vec<String> {
        deps.iter()
            .filter(|d| d.starts_with("aws-") || d.starts_with("lambda_"))
            .cloned()
            .collect()
    };
    let layers: [(&str, &[&str], bool); 4] = [
        (
            "payout-domain",
            &[
                "vexora",
                "payout-app",
                "payout-aws",
                "payout-testkit",
                "reqwest",
                "tokio",
            ],
            false,
        ),
        (
            "vexora",
            &["payout-app", "payout-aws", "payout-testkit"],
            false,
        ),
        ("payout-app", &["payout-aws", "payout-testkit"], false),
        ("payout-aws", &["payout-testkit"], true),
    ];
    for (layer, above, may_use_aws) in layers {
        let deps = dependencies_of(layer);
        for crate_above in above {
            assert!(
                !deps.contains(*crate_above),
                "{layer} depends on {crate_above}:\n{deps:?}"
            );
        }
        if !may_use_aws {
            assert_eq!(
                aws_crates(&deps),
                Vec::<String>::new(),
                "{layer} reaches AWS or Lambda"
            );
        }
    }
    for function in FUNCTIONS {
        assert!(
            !dependencies_of(function).contains("payout-testkit"),
            "{function} depends on the testkit outside its tests"
        );
    }
}

#[test]
fn the_testkit_is_a_normal_dependency_of_the_test_crates_only() {
    let mut dependents = names(&cargo_tree(&[
        "-e",
        "normal",
        "--prefix",
        "none",
        "--depth",
        "1",
        "--workspace",
        "-i",
        "payout-testkit",
    ]));
    dependents.remove("payout-testkit");
    assert_eq!(
        dependents,
        BTreeSet::from(["payout-e2e".to_owned(), "payout-simulation".to_owned()]),
        "only the end-to-end tests and the simulation may depend on the testkit outside tests"
    );
}

#[test]
fn the_deployed_build_links_one_tls_stack_with_one_crypto_library() {
    // reqwest over rustls with ring for the SDK and for Vexora (payout_aws::sdk); the SDK's
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
    assert_absent(
        &crates,
        &[
            "aws-lc-rs",
            "aws-lc-sys",
            "openssl",
            "native-tls",
            "hyper-tls",
        ],
    );
}
