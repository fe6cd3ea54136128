//! Every environment's effective stack parameters, computed with the pinned SAM CLI's own option
//! handling (`scripts/check_deploy_parameters.py`), for `sam deploy --config-env X` and for the
//! documented `make deploy ENV=X EXTRA_PARAMETERS=...`: the environment's file, extras on top,
//! never dev's defaults in prod.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn each_environment_deploys_with_its_own_parameters_and_the_extras_on_top() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (it installs the pinned SAM CLI)",
        python.display()
    );
    let output = Command::new(python)
        .current_dir(&root)
        .arg("scripts/check_deploy_parameters.py")
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("prod: {'Environment': 'prod'"), "{text}");
}
