//! The pipeline and the deploy identity as a reviewer reads them: actions pinned by commit,
//! one build promoted dev -> staging -> prod, prod only from main and only through a reviewed
//! change set; a deploy role only this repository's environments can assume, which is not an
//! administrator; the toolchain pinned.

use std::path::PathBuf;

use serde_norway::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &str) -> Value {
    serde_norway::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

fn steps(job: &Value) -> &Vec<Value> {
    job["steps"].as_sequence().unwrap()
}

fn runs(job: &Value) -> String {
    steps(job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_action_is_pinned_by_its_commit() {
    for workflow in [
        ".github/workflows/deploy.yml",
        ".github/workflows/checks.yml",
    ] {
        let w = yaml(workflow);
        for (name, job) in w["jobs"].as_mapping().unwrap() {
            for step in steps(job) {
                if let Some(uses) = step["uses"].as_str() {
                    let (_, reference) = uses.split_once('@').unwrap();
                    assert!(
                        reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit()),
                        "{workflow} {name:?}: {uses} is not pinned by commit"
                    );
                }
            }
        }
    }
}

#[test]
fn one_build_is_promoted_and_prod_runs_only_a_reviewed_change_set_from_main() {
    let w = yaml(".github/workflows/deploy.yml");
    let jobs = &w["jobs"];
    assert_eq!(w["on"]["push"]["branches"][0], "main");
    assert!(runs(&jobs["package"]).contains("make package"));
    for (job, needs) in [
        ("deploy-dev", "package"),
        ("deploy-staging", "deploy-dev"),
        ("prod-change-set", "deploy-staging"),
        ("deploy-prod", "prod-change-set"),
    ] {
        assert_eq!(jobs[job]["needs"], needs, "{job}");
        let commands = runs(&jobs[job]);
        assert!(!commands.contains("make build"), "{job} must not rebuild");
        if job != "deploy-prod" {
            assert!(
                commands.contains("TEMPLATE=.aws-sam/packaged.yaml"),
                "{job}"
            );
        }
    }
    assert!(runs(&jobs["prod-change-set"]).contains("--no-execute-changeset"));
    assert!(runs(&jobs["deploy-prod"]).contains("execute-change-set"));
    assert_eq!(jobs["deploy-prod"]["environment"], "prod");
    for job in ["package", "prod-change-set", "deploy-prod"] {
        assert_eq!(jobs[job]["if"], "github.ref == 'refs/heads/main'", "{job}");
    }
    let checks = yaml(".github/workflows/checks.yml");
    assert!(checks["on"].get("pull_request").is_some());
    assert!(runs(&checks["jobs"]["test"]).contains("make test"));
}

const DEPLOY_ROLES: [&str; 3] = ["NonProdDeployRole", "ProdPlanRole", "ProdDeployRole"];

fn statements(role: &Value) -> &Vec<Value> {
    role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        other => other
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect(),
    }
}

/// The GitHub environments a role's trust names (`repo:org/repo:environment:<name>`).
fn trusted_environments(role: &Value) -> Vec<String> {
    let trust = &role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(trust["Action"], "sts:AssumeRoleWithWebIdentity");
    let condition = &trust["Condition"]["StringEquals"];
    assert_eq!(
        condition["token.actions.githubusercontent.com:aud"],
        "sts.amazonaws.com"
    );
    condition["token.actions.githubusercontent.com:sub"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|subject| {
            let text = tagged_text(subject);
            let (_, environment) = text
                .split_once("repo:${GitHubOrg}/${GitHubRepo}:environment:")
                .unwrap_or_else(|| panic!("not this repository's environment: {text}"));
            environment.to_owned()
        })
        .collect()
}

/// The text inside a tagged scalar (`!Sub "..."`, `!Ref X`).
fn tagged_text(v: &Value) -> String {
    match v {
        Value::Tagged(t) => t.value.as_str().unwrap_or_default().to_owned(),
        other => other.as_str().unwrap_or_default().to_owned(),
    }
}

#[test]
fn each_deploy_role_is_this_repositorys_environments_own_and_not_an_administrator() {
    let t = yaml("infra/bootstrap.yaml");
    for name in DEPLOY_ROLES {
        let role = &t["Resources"][name];
        assert!(!trusted_environments(role).is_empty(), "{name}");
        for s in statements(role) {
            let actions = actions(s);
            for action in &actions {
                assert!(action != "*" && !action.ends_with(":*"), "{name}: {action}");
            }
            if actions.contains(&"iam:PassRole".to_owned()) {
                assert!(format!("{:?}", s["Resource"]).contains("ExecutionRole"));
            }
        }
    }
    let execution = &t["Resources"]["ExecutionRole"]["Properties"];
    assert_eq!(
        execution["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        "cloudformation.amazonaws.com"
    );
    let toolchain = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
    assert!(
        toolchain.contains("channel = \"1."),
        "the toolchain is pinned to a release"
    );
}

#[test]
fn only_the_reviewed_prod_environment_can_execute_a_change_on_prod() {
    let t = yaml("infra/bootstrap.yaml");
    let mut executors = Vec::new();
    for name in DEPLOY_ROLES {
        let role = &t["Resources"][name];
        let environments = trusted_environments(role);
        for s in statements(role) {
            let resources = format!("{:?}", s["Resource"]);
            let on_prod = resources.contains("${StackNamePrefix}-prod/");
            if on_prod {
                assert!(
                    environments.iter().all(|e| e.starts_with("prod")),
                    "{name}: {environments:?} reach the prod stack"
                );
                if actions(s)
                    .iter()
                    .any(|a| a == "cloudformation:ExecuteChangeSet")
                {
                    executors.push(environments.clone());
                }
            }
            assert!(
                !resources.contains("${StackNamePrefix}-*"),
                "{name}: stacks are named exactly, never by prefix: {resources}"
            );
        }
    }
    assert_eq!(executors, [["prod"]]);
    let w = yaml(".github/workflows/deploy.yml");
    assert_eq!(w["jobs"]["deploy-prod"]["environment"], "prod");
    assert_eq!(w["jobs"]["prod-change-set"]["environment"], "prod-plan");
}

#[test]
fn the_execution_role_creates_only_bounded_roles_and_cannot_touch_the_deploy_identity() {
    let t = yaml("infra/bootstrap.yaml");
    let role = &t["Resources"]["ExecutionRole"];
    let minting = [
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:PutRolePermissionsBoundary",
    ];
    let mut bounded = 0;
    for s in statements(role) {
        let actions = actions(s);
        if actions.iter().any(|a| minting.contains(&a.as_str())) {
            bounded += 1;
            assert_eq!(
                tagged_text(&s["Condition"]["StringEquals"]["iam:PermissionsBoundary"]),
                "FunctionBoundary",
                "{actions:?}"
            );
        }
        assert!(
            !actions
                .iter()
                .any(|a| a == "iam:DeleteRolePermissionsBoundary" || a == "iam:*"),
            "{actions:?}"
        );
        if actions.iter().any(|a| a == "lambda:*") {
            assert!(format!("{:?}", s["Resource"]).contains("function:${StackNamePrefix}-"));
        }
    }
    assert_eq!(bounded, 1);
    let guard = &t["Resources"]["ExecutionRoleGuard"]["Properties"];
    let denied = format!("{:?}", guard["PolicyDocument"]["Statement"][0]);
    assert!(denied.contains("Deny"));
    for protected in DEPLOY_ROLES
        .iter()
        .chain(&["ExecutionRole", "FunctionBoundary"])
    {
        assert!(denied.contains(protected), "{protected}: {denied}");
    }
}

#[test]
fn every_job_that_reaches_aws_uses_an_environment_exactly_one_deploy_role_trusts() {
    let t = yaml("infra/bootstrap.yaml");
    let w = yaml(".github/workflows/deploy.yml");
    let mut reaching = 0;
    for (name, job) in w["jobs"].as_mapping().unwrap() {
        if job["permissions"]["id-token"] != "write" {
            continue;
        }
        reaching += 1;
        let environment = job["environment"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?} assumes a role without an environment"));
        let trusting: Vec<_> = DEPLOY_ROLES
            .iter()
            .filter(|role| {
                trusted_environments(&t["Resources"][**role]).contains(&environment.to_owned())
            })
            .collect();
        assert_eq!(
            trusting.len(),
            1,
            "{name:?}: {environment} trusted by {trusting:?}"
        );
    }
    assert_eq!(reaching, 5);
}

#[test]
fn deploys_use_the_bootstraps_bucket_never_sams_managed_stack() {
    // `resolve_s3` makes the SAM CLI create or read `aws-sam-cli-managed-default`, a stack the
    // deploy role may not touch.
    let samconfig = std::fs::read_to_string(root().join("samconfig.toml")).unwrap();
    assert!(
        !samconfig
            .lines()
            .any(|l| l.trim_start().starts_with("resolve_s3"))
    );
    let w = yaml(".github/workflows/deploy.yml");
    for job in ["deploy-dev", "deploy-staging", "prod-change-set"] {
        assert!(
            runs(&w["jobs"][job]).contains("ARTIFACT_BUCKET=\"$ARTIFACT_BUCKET\""),
            "{job}"
        );
    }
    let printed = std::process::Command::new("make")
        .args(["-n", "--no-print-directory", "deploy", "TEMPLATE=Makefile"])
        .args(["ARTIFACT_BUCKET=artefacts-123"])
        .current_dir(root())
        .output()
        .unwrap();
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(printed.contains("--s3-bucket artefacts-123"), "{printed}");
    assert!(!printed.contains("--resolve-s3"), "{printed}");
    assert!(runs(&w["jobs"]["prod-change-set"]).starts_with("set -o pipefail"));
    // `make deploy` brings its own SAM CLI (the deploy jobs have no .venv of their own).
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    assert!(makefile.lines().any(|l| l.starts_with("deploy: venv ")));
    assert!(makefile.lines().any(|l| l.starts_with("package: venv ")));
}
