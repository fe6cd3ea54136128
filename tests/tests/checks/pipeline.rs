//! The pipeline and the deploy identity as a reviewer reads them: actions pinned by commit; one
//! build promoted dev -> staging -> prod, prod only from main and only through a reviewed change
//! set that deploy-prod waits for and can be re-run over; settings as environment variables;
//! each environment deploying alone; per stage (infra/bootstrap.yaml, once per account or per
//! stage) a deploy role only that stage's GitHub environment can assume, which is not an
//! administrator, an execution role and a permissions boundary that reach nothing of another
//! stage, and an artefact bucket whose pinned versions nobody deletes; old function versions
//! pruned after every deploy; the toolchain pinned.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::{Mapping, Value};

use super::iam::glob;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

fn yaml(path: &str) -> Value {
    serde_norway::from_str(&text(path)).unwrap()
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

/// The index and `run` text of the first step of `job` whose `run` contains `needle`.
fn step_running<'a>(job: &'a Value, needle: &str) -> Option<(usize, &'a str)> {
    steps(job).iter().enumerate().find_map(|(i, s)| {
        s["run"]
            .as_str()
            .filter(|r| r.contains(needle))
            .map(|r| (i, r))
    })
}

const STAGES: [&str; 3] = ["dev", "staging", "prod"];
const DEPLOY_JOBS: [(&str, &str); 3] = [
    ("deploy-dev", "dev"),
    ("deploy-staging", "staging"),
    ("deploy-prod", "prod"),
];

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
    // The build: once, without AWS and without an environment, kept as a tar (file modes: each
    // function's `bootstrap` stays executable).
    let build = &jobs["build"];
    assert_eq!(build["needs"], "test");
    assert!(build["environment"].is_null());
    assert!(build["permissions"]["id-token"].is_null());
    assert!(runs(build).contains("make build validate"));
    assert!(runs(build).contains("tar -C .aws-sam -cf build.tar build"));
    let upload = steps(build)
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .unwrap();
    assert_eq!(upload["with"]["name"], "build");
    assert_eq!(upload["with"]["path"], "build.tar");
    for (job, needs) in [
        ("deploy-dev", "build"),
        ("deploy-staging", "deploy-dev"),
        ("prod-change-set", "deploy-staging"),
        ("deploy-prod", "prod-change-set"),
    ] {
        assert_eq!(jobs[job]["needs"], needs, "{job}");
        let commands = runs(&jobs[job]);
        assert!(!commands.contains("make build"), "{job} must not rebuild");
        if job == "deploy-prod" {
            assert!(!commands.contains("make package") && !commands.contains("make deploy"));
            continue;
        }
        // The build downloaded and unpacked, packaged into this stage's bucket (versions
        // pinned), then planned or deployed from the packaged template.
        let download = steps(&jobs[job])
            .iter()
            .position(|s| {
                s["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("actions/download-artifact@"))
                    && s["with"]["name"] == "build"
            })
            .unwrap_or_else(|| panic!("{job} downloads the build"));
        let (unpack, _) = step_running(&jobs[job], "tar -C .aws-sam -xf build.tar").unwrap();
        let (package, _) = step_running(&jobs[job], "make package").unwrap();
        let (deploy, deploy_run) = step_running(&jobs[job], "make deploy").unwrap();
        assert!(
            download < unpack && unpack < package && package < deploy,
            "{job}"
        );
        assert!(
            deploy_run.contains("TEMPLATE=.aws-sam/packaged.yaml"),
            "{job}"
        );
    }
    assert!(runs(&jobs["prod-change-set"]).contains("--no-execute-changeset"));
    assert!(runs(&jobs["deploy-prod"]).contains("execute-change-set"));
    assert_eq!(jobs["deploy-prod"]["environment"], "prod");
    assert!(
        steps(&jobs["prod-change-set"]).iter().any(|s| {
            s["with"]["name"] == "prod-packaged" && s["with"]["path"] == ".aws-sam/packaged.yaml"
        }),
        "the packaged template prod was planned from is kept"
    );
    for job in ["build", "prod-change-set", "deploy-prod"] {
        assert_eq!(jobs[job]["if"], "github.ref == 'refs/heads/main'", "{job}");
    }
    let checks = yaml(".github/workflows/checks.yml");
    assert!(checks["on"].get("pull_request").is_some());
    assert!(runs(&checks["jobs"]["test"]).contains("make test"));
}

#[test]
fn settings_are_environment_variables_never_secrets() {
    // A variable shows in logs and settings; a secret is masked, so a changed override could
    // switch a prod guard off unseen. None of the settings is secret.
    let source = text(".github/workflows/deploy.yml");
    assert!(!source.contains("secrets."), "deploy.yml reads a secret");
    let allowed = [
        "AWS_DEPLOY_ROLE_ARN",
        "ARTIFACT_BUCKET",
        "CFN_EXECUTION_ROLE_ARN",
        "SAM_PARAMETER_OVERRIDES",
    ];
    let mut used = Vec::new();
    for (i, found) in source.match_indices("${{ vars.") {
        let name: String = source[i + found.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(allowed.contains(&name.as_str()), "vars.{name}");
        used.push(name);
    }
    for name in allowed {
        assert!(used.iter().any(|u| u == name), "{name} is never used");
    }
    // Values reach the shell through `env:`, never as `${{ }}` in the script's text.
    let w = yaml(".github/workflows/deploy.yml");
    for (name, job) in w["jobs"].as_mapping().unwrap() {
        assert!(
            !runs(job).contains("${{"),
            "{name:?} expands an expression in run:"
        );
    }
    let lower = source.to_lowercase();
    for documented in [
        "required reviewers",
        "\"prevent self-review\"",
        "deployment branches limited to main",
    ] {
        assert!(lower.contains(documented), "the header says {documented}");
    }
}

#[test]
fn each_environment_deploys_alone_so_a_pending_prod_approval_stalls_only_prod() {
    let w = yaml(".github/workflows/deploy.yml");
    assert!(
        w.get("concurrency").is_none(),
        "a workflow-level group makes every run wait for a pending prod approval"
    );
    let mut grouped = 0;
    for (name, job) in w["jobs"].as_mapping().unwrap() {
        let Some(environment) = job["environment"].as_str() else {
            assert!(job.get("concurrency").is_none(), "{name:?}");
            continue;
        };
        // prod-plan plans against what the previous prod deploy left: prod's group.
        let stage = environment.trim_end_matches("-plan");
        assert!(STAGES.contains(&stage), "{name:?}: {environment}");
        assert_eq!(
            job["concurrency"]["group"],
            format!("deploy-{stage}"),
            "{name:?}"
        );
        assert_eq!(job["concurrency"]["cancel-in-progress"], false, "{name:?}");
        grouped += 1;
    }
    assert_eq!(grouped, 4);
}

#[test]
fn every_deploy_prunes_old_function_versions_after_it_succeeds() {
    let w = yaml(".github/workflows/deploy.yml");
    for (job, stage) in DEPLOY_JOBS {
        let job = &w["jobs"][job];
        let deploy = if stage == "prod" {
            "execute-change-set".to_owned()
        } else {
            format!("make deploy ENV={stage} ")
        };
        let (deployed, _) = step_running(job, &deploy).unwrap_or_else(|| panic!("{stage}"));
        let (pruned, run) = step_running(job, "make prune-versions").unwrap();
        assert_eq!(run.trim(), format!("make prune-versions ENV={stage}"));
        assert!(pruned > deployed, "{stage}: prune after the deploy");
        // Only after a successful deploy (no `if: always()`), and it needs the repository's
        // Makefile and a Python for the venv.
        assert!(steps(job)[pruned].get("if").is_none(), "{stage}");
        for action in ["actions/checkout@", "actions/setup-python@"] {
            assert!(
                steps(job)[..pruned]
                    .iter()
                    .any(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action))),
                "{stage}: {action}"
            );
        }
    }
    assert!(!runs(&w["jobs"]["prod-change-set"]).contains("prune-versions"));
}

#[test]
fn the_makefile_prunes_the_stack_of_the_environment() {
    for stage in STAGES {
        let printed = Command::new("make")
            .args(["-n", "--no-print-directory", "prune-versions"])
            .arg(format!("ENV={stage}"))
            .current_dir(root())
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&printed.stdout);
        assert!(
            printed.contains(&format!("scripts/prune_versions.py vexora-payouts-{stage}")),
            "make prune-versions ENV={stage}: {printed}"
        );
    }
}

/// The Python that runs scripts/prune_versions.py (`make venv`'s), else the system's: the
/// decision and the deletion loop need no AWS library.
fn python() -> PathBuf {
    let venv = root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn run_python(script: &str) {
    let output = Command::new(python())
        .args(["-c", script])
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("ok"),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn pruning_keeps_what_an_alias_points_at_and_the_newest_versions() {
    run_python(
        r#"
import sys
sys.path.insert(0, "scripts")
from prune_versions import to_prune

ten = ["$LATEST"] + [str(v) for v in range(1, 11)]
# The newest 5 stay for rollback; the rest go, oldest first; $LATEST never.
assert to_prune(ten, [], 5) == ["1", "2", "3", "4", "5"], to_prune(ten, [], 5)
# An alias's version stays however old.
live = {"Name": "live", "FunctionVersion": "2"}
assert to_prune(ten, [live], 5) == ["1", "3", "4", "5"]
# A version an alias routes a weight to (a canary in flight) stays.
canary = {"Name": "live", "FunctionVersion": "10", "RoutingConfig": {"AdditionalVersionWeights": {"3": 0.1}}}
assert to_prune(ten, [canary], 5) == ["1", "2", "4", "5"]
assert to_prune(ten, [live, canary], 5) == ["1", "4", "5"]
# No routing config, or an empty one.
assert to_prune(ten, [{"FunctionVersion": "1", "RoutingConfig": None}], 5) == ["2", "3", "4", "5"]
assert to_prune(ten, [{"FunctionVersion": "1", "RoutingConfig": {}}], 5) == ["2", "3", "4", "5"]
# Numeric order, not text order: 10 is newer than 9.
assert to_prune(["$LATEST", "9", "10", "11"], [], 2) == ["9"]
# Fewer versions than kept: nothing.
assert to_prune(["$LATEST", "1", "2"], [], 5) == []
# keep 0: every version nothing points at, and still never $LATEST.
assert to_prune(["$LATEST", "1", "2"], [{"FunctionVersion": "$LATEST"}], 0) == ["1", "2"]
assert to_prune(["$LATEST"], [{"FunctionVersion": "$LATEST"}], 0) == []
try:
    to_prune(ten, [], -1)
    raise SystemExit("negative keep accepted")
except ValueError:
    pass
print("ok")
"#,
    );
}

#[test]
fn pruning_reads_every_page_and_deletes_only_numbered_versions_by_qualifier() {
    run_python(
        r#"
import sys
sys.path.insert(0, "scripts")
from prune_versions import prune


class Paginator:
    def __init__(self, pages, calls):
        self.pages, self.calls = pages, calls

    def paginate(self, **arguments):
        self.calls.append(arguments)
        return iter(self.pages(arguments))


class CloudFormation:
    def __init__(self):
        self.calls = []

    def get_paginator(self, operation):
        assert operation == "list_stack_resources", operation
        resource = lambda name, kind="AWS::Lambda::Function", status="UPDATE_COMPLETE": {
            "PhysicalResourceId": name, "ResourceType": kind, "ResourceStatus": status}
        return Paginator(lambda a: [
            {"StackResourceSummaries": [resource("s-Submit-1"), resource("s-Table-1", "AWS::DynamoDB::Table")]},
            {"StackResourceSummaries": [resource("s-Gone-1", status="DELETE_COMPLETE"), resource("CodeDeployHook_s-pre")]},
        ], self.calls)


class Conflict(Exception):
    response = {"Error": {"Code": "ResourceConflictException"}}


class Lambda:
    versions = {
        "s-Submit-1": [["$LATEST", "1", "2", "3", "4"], ["5", "6", "7", "8", "9"]],
        "CodeDeployHook_s-pre": [["$LATEST", "1"]],
    }
    aliases = {"s-Submit-1": [[], [{"Name": "live", "FunctionVersion": "9",
                                    "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.1}}}]],
               "CodeDeployHook_s-pre": [[]]}

    def __init__(self):
        self.deleted, self.listed = [], []

    def get_paginator(self, operation):
        if operation == "list_versions_by_function":
            return Paginator(lambda a: [{"Versions": [{"Version": v} for v in page]}
                                        for page in self.versions[a["FunctionName"]]], self.listed)
        assert operation == "list_aliases", operation
        return Paginator(lambda a: [{"Aliases": page} for page in self.aliases[a["FunctionName"]]], self.listed)

    def delete_function(self, **arguments):
        assert set(arguments) == {"FunctionName", "Qualifier"}, arguments
        assert arguments["Qualifier"].isdigit(), arguments
        if arguments["Qualifier"] == "3":
            raise Conflict()
        self.deleted.append((arguments["FunctionName"], arguments["Qualifier"]))


cfn, lam, lines = CloudFormation(), Lambda(), []
deleted = prune(cfn, lam, "s", keep=5, out=lines.append)
assert cfn.calls == [{"StackName": "s"}], cfn.calls
# Versions 5..9 newest, 2 routed by the alias, 3 taken by an alias meanwhile: 1 and 4 go.
assert lam.deleted == [("s-Submit-1", "1"), ("s-Submit-1", "4")], lam.deleted
assert deleted == {"s-Submit-1": ["1", "4"]}, deleted
assert {a["FunctionName"] for a in lam.listed} == {"s-Submit-1", "CodeDeployHook_s-pre"}, lam.listed
assert lines == ["s-Submit-1: deleted version 1",
                 "s-Submit-1: kept version 3 (an alias points at it now)",
                 "s-Submit-1: deleted version 4",
                 "s: 2 version(s) deleted"], lines

cfn, lam, lines = CloudFormation(), Lambda(), []
assert prune(cfn, lam, "s", keep=5, dry_run=True, out=lines.append) == {}
assert lam.deleted == [], lam.deleted
assert lines[:3] == ["s-Submit-1: would delete version 1", "s-Submit-1: would delete version 3",
                     "s-Submit-1: would delete version 4"], lines

cfn, lam, lines = CloudFormation(), Lambda(), []
prune(cfn, lam, "s", keep=0, out=lines.append)
assert ("CodeDeployHook_s-pre", "1") in lam.deleted and ("s-Submit-1", "9") not in lam.deleted, lam.deleted
print("ok")
"#,
    );
}

#[test]
fn pruning_a_stack_with_the_aws_sdk_deletes_old_versions_and_keeps_the_function() {
    // The script's own entry point, with boto3's real paginators and answers (moto in process,
    // no network): a stack's function with 9 versions, `live` on 8 routing a weight to 2.
    let output = Command::new(root().join(".venv/bin/python"))
        .args(["-c", r#"
import io, json, os, sys, zipfile
sys.path.insert(0, "scripts")
import boto3
from moto import mock_aws
from prune_versions import main

def code():
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return 1\n")
    return zipped.getvalue()

with mock_aws():
    iam, s3, cfn, lam = (boto3.client(s) for s in ("iam", "s3", "cloudformation", "lambda"))
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    s3.create_bucket(Bucket="artefacts", CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    s3.put_object(Bucket="artefacts", Key="code.zip", Body=code())
    function = {"Type": "AWS::Lambda::Function", "Properties": {
        "Runtime": "python3.12", "Handler": "index.handler", "Role": role,
        "Code": {"S3Bucket": "artefacts", "S3Key": "code.zip"}}}
    cfn.create_stack(StackName="vexora-payouts-dev",
                     TemplateBody=json.dumps({"Resources": {"Fn": function, "Queue": {"Type": "AWS::SQS::Queue"}}}))
    [name] = [r["PhysicalResourceId"] for r in cfn.list_stack_resources(StackName="vexora-payouts-dev")["StackResourceSummaries"]
              if r["ResourceType"] == "AWS::Lambda::Function"]
    for i in range(9):
        lam.update_function_configuration(FunctionName=name, Description=str(i))
        lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="8",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    main(["vexora-payouts-dev", "--dry-run"])
    assert len(lam.list_versions_by_function(FunctionName=name)["Versions"]) == 10
    main(["vexora-payouts-dev"])
    left = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
    assert left == ["$LATEST", "2", "5", "6", "7", "8", "9"], left
    print("ok")
"#])
        .current_dir(root())
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "ap-northeast-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let name = stdout.lines().next().unwrap().split(':').next().unwrap();
    assert!(name.starts_with("vexora-payouts-dev-Fn-"), "{stdout}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>()[..8],
        [
            format!("{name}: would delete version 1"),
            format!("{name}: would delete version 3"),
            format!("{name}: would delete version 4"),
            "vexora-payouts-dev: dry run, nothing deleted".to_owned(),
            format!("{name}: deleted version 1"),
            format!("{name}: deleted version 3"),
            format!("{name}: deleted version 4"),
            "vexora-payouts-dev: 3 version(s) deleted".to_owned(),
        ],
    );
}

/// Runs deploy-prod's execute step with `aws` and `sleep` replaced: `change_set` and `stack`
/// are the successive ExecutionStatus and StackStatus answers (the last one repeats).
/// Answers the exit code, the output and the `aws` calls.
fn run_deploy_prod(
    scenario: &str,
    change_set_arn: &str,
    change_set: &[&str],
    stack: &[&str],
) -> (i32, String, Vec<String>) {
    let w = yaml(".github/workflows/deploy.yml");
    let (_, script) = step_running(&w["jobs"]["deploy-prod"], "execute-change-set").unwrap();
    let dir = std::env::temp_dir().join(format!(
        "payouts-deploy-prod-{}-{scenario}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let write = |path: &Path, content: &str, executable: bool| {
        std::fs::write(path, content).unwrap();
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    };
    write(
        &dir.join("change_set"),
        &(change_set.join("\n") + "\n"),
        false,
    );
    write(&dir.join("stack"), &(stack.join("\n") + "\n"), false);
    write(&dir.join("bin/sleep"), "#!/bin/sh\nexit 0\n", true);
    write(
        &dir.join("bin/aws"),
        r#"#!/bin/bash
set -eu
echo "$*" >> "$STUB_DIR/calls"
next() {
  head -n 1 "$STUB_DIR/$1"
  if [ "$(wc -l < "$STUB_DIR/$1")" -gt 1 ]; then sed -i 1d "$STUB_DIR/$1"; fi
}
case "$*" in
  *describe-change-set*arn:missing*) echo "An error occurred (ChangeSetNotFound)" >&2; exit 254 ;;
  *describe-change-set*StackId*) echo "arn:aws:cloudformation:ap-northeast-1:123456789012:stack/vexora-payouts-prod/1" ;;
  *describe-change-set*ExecutionStatus*) next change_set ;;
  *describe-change-set*StatusReason*) echo "The submitted information didn't contain changes." ;;
  *describe-stacks*) next stack ;;
  *describe-stack-events*) echo "SubmitPayoutFunction UPDATE_FAILED Resource handler returned message" ;;
  *execute-change-set* | *continue-update-rollback*) ;;
  *) echo "unexpected aws $*" >&2; exit 2 ;;
esac
"#,
        true,
    );
    write(&dir.join("step.sh"), script, false);
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let output = Command::new("bash")
        .args(["-e", "step.sh"])
        .current_dir(&dir)
        .env("PATH", path)
        .env("STUB_DIR", &dir)
        .env("CHANGE_SET", change_set_arn)
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        calls,
    )
}

fn called(calls: &[String], command: &str) -> usize {
    calls
        .iter()
        .filter(|c| c.starts_with(&format!("cloudformation {command} ")))
        .count()
}

#[test]
fn deploy_prod_waits_for_the_change_sets_execution_and_can_be_re_run() {
    let w = yaml(".github/workflows/deploy.yml");
    let (_, script) = step_running(&w["jobs"]["deploy-prod"], "execute-change-set").unwrap();
    for needed in [
        "--query ExecutionStatus",
        "EXECUTE_COMPLETE",
        "EXECUTE_FAILED",
        "OBSOLETE",
        "continue-update-rollback",
        "UPDATE_ROLLBACK_FAILED",
    ] {
        assert!(
            script.contains(needed) || script.contains(&needed.replace("--query ", "")),
            "{needed}"
        );
    }
    let arn = "arn:aws:cloudformation:ap-northeast-1:123456789012:changeSet/samcli-deploy1/1";

    // First run: executed once, then the change set's status is followed to its end.
    let (code, out, calls) = run_deploy_prod(
        "first",
        arn,
        &[
            "AVAILABLE",
            "EXECUTE_IN_PROGRESS",
            "EXECUTE_IN_PROGRESS",
            "EXECUTE_COMPLETE",
        ],
        &[
            "UPDATE_COMPLETE",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "UPDATE_COMPLETE",
        ],
    );
    assert_eq!(
        (code, called(&calls, "execute-change-set")),
        (0, 1),
        "{out}"
    );
    assert!(
        calls
            .iter()
            .filter(|c| c.contains("ExecutionStatus"))
            .count()
            >= 4,
        "{calls:?}"
    );

    // Re-run after it ran (or while it runs): reported, waited for, never executed again.
    for (scenario, statuses) in [
        ("rerun-done", &["EXECUTE_COMPLETE"][..]),
        (
            "rerun-running",
            &["EXECUTE_IN_PROGRESS", "EXECUTE_COMPLETE"][..],
        ),
    ] {
        let (code, out, calls) = run_deploy_prod(scenario, arn, statuses, &["UPDATE_COMPLETE"]);
        assert_eq!(
            (code, called(&calls, "execute-change-set")),
            (0, 0),
            "{out}"
        );
        assert!(out.contains("not executing it again"), "{out}");
    }

    // A stack left UPDATE_ROLLBACK_FAILED: the rollback is continued and waited for, then the
    // job fails and asks for a new plan; the stale change set is not executed.
    let (code, out, calls) = run_deploy_prod(
        "stuck",
        arn,
        &["AVAILABLE"],
        &[
            "UPDATE_ROLLBACK_FAILED",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(called(&calls, "continue-update-rollback"), 1, "{calls:?}");
    assert_eq!(called(&calls, "execute-change-set"), 0, "{calls:?}");
    assert!(
        out.contains("UPDATE_ROLLBACK_COMPLETE") && out.contains("re-run the prod-change-set job"),
        "{out}"
    );

    // The execution fails: the job fails with the failed events; a rollback that itself failed
    // is continued.
    for (scenario, stack, continued) in [
        (
            "failed",
            &["UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"][..],
            0,
        ),
        (
            "failed-stuck",
            &[
                "UPDATE_COMPLETE",
                "UPDATE_ROLLBACK_FAILED",
                "UPDATE_ROLLBACK_COMPLETE",
            ][..],
            1,
        ),
    ] {
        let (code, out, calls) = run_deploy_prod(
            scenario,
            arn,
            &["AVAILABLE", "EXECUTE_IN_PROGRESS", "EXECUTE_FAILED"],
            stack,
        );
        assert_eq!(code, 1, "{scenario}: {out}");
        assert_eq!(called(&calls, "execute-change-set"), 1, "{scenario}");
        assert_eq!(
            called(&calls, "continue-update-rollback"),
            continued,
            "{scenario}"
        );
        assert!(
            out.contains("EXECUTE_FAILED") && out.contains("UPDATE_FAILED"),
            "{scenario}: {out}"
        );
    }

    // Not executable: clear messages, nothing executed.
    for (scenario, statuses, stack, says) in [
        ("obsolete", "OBSOLETE", "UPDATE_COMPLETE", "OBSOLETE"),
        (
            "failed-earlier",
            "EXECUTE_FAILED",
            "UPDATE_ROLLBACK_COMPLETE",
            "already ran and failed",
        ),
        (
            "unavailable",
            "UNAVAILABLE",
            "UPDATE_COMPLETE",
            "didn't contain changes",
        ),
    ] {
        let (code, out, calls) = run_deploy_prod(scenario, arn, &[statuses], &[stack]);
        assert_eq!(code, 1, "{scenario}: {out}");
        assert_eq!(called(&calls, "execute-change-set"), 0, "{scenario}");
        assert!(out.contains(says), "{scenario}: {out}");
    }
    let (code, out, calls) = run_deploy_prod(
        "missing",
        "arn:missing",
        &["AVAILABLE"],
        &["UPDATE_COMPLETE"],
    );
    assert_eq!(
        (code, called(&calls, "execute-change-set")),
        (1, 0),
        "{out}"
    );
    assert!(out.contains("re-run the prod-change-set job"), "{out}");

    // Completed, but the stack is not in a completed state.
    let (code, out, _) = run_deploy_prod(
        "completed-elsewhere",
        arn,
        &["EXECUTE_COMPLETE"],
        &["UPDATE_ROLLBACK_COMPLETE"],
    );
    assert_eq!(code, 1, "{out}");

    // Nothing planned: nothing to call.
    let (code, out, calls) = run_deploy_prod("none", "", &["AVAILABLE"], &["UPDATE_COMPLETE"]);
    assert_eq!((code, calls.len()), (0, 0), "{out}");
}

/// `v` as CloudFormation resolves it in one stage's bootstrap: `!If [IsProd, a, b]` (and
/// `!If [CreateOidcProvider, a, b]`, taken as creating the provider) decided, `!Ref
/// AWS::NoValue` removed from lists and mappings.
fn for_stage(v: &Value, stage: &str) -> Option<Value> {
    match v {
        Value::Tagged(t) if t.tag == "If" => {
            let branches = t.value.as_sequence().unwrap();
            let take = match branches[0].as_str().unwrap() {
                "IsProd" => stage == "prod",
                "CreateOidcProvider" => true,
                other => panic!("unknown condition {other}"),
            };
            for_stage(&branches[if take { 1 } else { 2 }], stage)
        }
        Value::Tagged(t) if t.tag == "Ref" && t.value == "AWS::NoValue" => None,
        Value::Sequence(items) => Some(Value::Sequence(
            items.iter().filter_map(|i| for_stage(i, stage)).collect(),
        )),
        Value::Mapping(m) => Some(Value::Mapping(
            m.iter()
                .filter_map(|(k, v)| for_stage(v, stage).map(|v| (k.clone(), v)))
                .collect::<Mapping>(),
        )),
        other => Some(other.clone()),
    }
}

/// The bootstrap's resources in one stage: `Condition: IsProd` resources only in prod.
fn bootstrap_for(stage: &str) -> Mapping {
    let t = yaml("infra/bootstrap.yaml");
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| match r["Condition"].as_str() {
            None => true,
            Some("IsProd") => stage == "prod",
            Some("CreateOidcProvider") => true,
            Some(other) => panic!("unknown condition {other}"),
        })
        .map(|(k, r)| (k.clone(), for_stage(r, stage).unwrap()))
        .collect()
}

fn resource<'a>(resources: &'a Mapping, name: &str) -> &'a Value {
    resources
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in this stage's bootstrap"))
}

/// The statements of a role's inline policies, a managed policy or a bucket policy.
fn statements(resource: &Value) -> Vec<Value> {
    let properties = &resource["Properties"];
    let documents: Vec<&Value> = match properties["Policies"].as_sequence() {
        Some(policies) => policies.iter().map(|p| &p["PolicyDocument"]).collect(),
        None => vec![&properties["PolicyDocument"]],
    };
    documents
        .into_iter()
        .flat_map(|d| d["Statement"].as_sequence().unwrap().clone())
        .collect()
}

/// A single string or a list, as the texts they hold (`!Sub "..."` as its template,
/// `!GetAtt X` as `!GetAtt X`).
fn texts_of(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().flat_map(texts_of).collect(),
        Value::Tagged(t) if t.tag == "Sub" => vec![t.value.as_str().unwrap().to_owned()],
        Value::Tagged(t) => vec![format!(
            "{} {}",
            t.tag,
            t.value.as_str().unwrap_or_default()
        )],
        Value::String(s) => vec![s.clone()],
        Value::Null => vec![],
        other => panic!("not a string: {other:?}"),
    }
}

fn actions(statement: &Value) -> Vec<String> {
    texts_of(&statement["Action"])
}

fn allows(statement: &Value) -> bool {
    statement["Effect"] == "Allow"
}

/// The role's statements allow `action` exactly (`cloudformation:*` would count too).
fn grants(role: &Value, action: &str) -> bool {
    let service = format!("{}:*", action.split(':').next().unwrap());
    statements(role)
        .iter()
        .filter(|s| allows(s))
        .flat_map(actions)
        .any(|a| a == action || a == service || a == "*")
}

/// The GitHub environments a role's trust names (`repo:org/repo:environment:<name>`), in one
/// stage.
fn trusted_environments(role: &Value, stage: &str) -> Vec<String> {
    let trust = &role["Properties"]["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(trust.as_sequence().unwrap().len(), 1);
    let trust = &trust[0];
    if trust["Action"] != "sts:AssumeRoleWithWebIdentity" {
        return Vec::new();
    }
    let condition = &trust["Condition"]["StringEquals"];
    assert_eq!(
        condition["token.actions.githubusercontent.com:aud"],
        "sts.amazonaws.com"
    );
    texts_of(&condition["token.actions.githubusercontent.com:sub"])
        .iter()
        .map(|subject| {
            let (_, environment) = subject
                .split_once("repo:${GitHubOrg}/${GitHubRepo}:environment:")
                .unwrap_or_else(|| panic!("not this repository's environment: {subject}"));
            environment.replace("${Stage}", stage)
        })
        .collect()
}

fn roles(resources: &Mapping) -> Vec<(String, &Value)> {
    resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r))
        .collect()
}

#[test]
fn each_stage_has_a_deploy_role_and_prod_a_plan_role_each_trusting_one_environment() {
    for stage in STAGES {
        let resources = bootstrap_for(stage);
        let mut assumable: Vec<(String, Vec<String>)> = roles(&resources)
            .into_iter()
            .map(|(name, role)| (name, trusted_environments(role, stage)))
            .filter(|(_, environments)| !environments.is_empty())
            .collect();
        assumable.sort();
        let mut expected = vec![("DeployRole".to_owned(), vec![stage.to_owned()])];
        if stage == "prod" {
            expected.push(("PlanRole".to_owned(), vec!["prod-plan".to_owned()]));
        }
        assert_eq!(assumable, expected, "{stage}");
        let mut all: Vec<String> = roles(&resources).into_iter().map(|(n, _)| n).collect();
        all.sort();
        let mut expected_roles = vec!["DeployRole", "ExecutionRole"];
        if stage == "prod" {
            expected_roles.push("PlanRole");
        }
        assert_eq!(all, expected_roles, "{stage}");
        let execution = &resource(&resources, "ExecutionRole")["Properties"];
        assert_eq!(
            execution["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
            "cloudformation.amazonaws.com"
        );
    }
    let toolchain = text("rust-toolchain.toml");
    assert!(
        toolchain.contains("channel = \"1."),
        "the toolchain is pinned to a release"
    );
}

#[test]
fn only_the_reviewed_prod_environment_executes_on_prod_and_it_cannot_plan_or_upload() {
    for stage in STAGES {
        let resources = bootstrap_for(stage);
        let deploy = resource(&resources, "DeployRole");
        for action in [
            "cloudformation:ExecuteChangeSet",
            "cloudformation:DescribeChangeSet",
            "cloudformation:ContinueUpdateRollback",
            "cloudformation:ListStackResources",
            "lambda:ListVersionsByFunction",
            "lambda:ListAliases",
            "lambda:DeleteFunction",
        ] {
            assert!(grants(deploy, action), "{stage}: {action}");
        }
        let plans = ["cloudformation:CreateChangeSet", "s3:PutObject"];
        for action in plans {
            assert_eq!(grants(deploy, action), stage != "prod", "{stage}: {action}");
        }
        if stage == "prod" {
            let s3: Vec<String> = statements(deploy)
                .iter()
                .flat_map(actions)
                .filter(|a| a.starts_with("s3:"))
                .collect();
            assert!(s3.is_empty(), "prod's deploy role uploads nothing: {s3:?}");
            let plan = resource(&resources, "PlanRole");
            assert!(grants(plan, "cloudformation:CreateChangeSet"));
            assert!(grants(plan, "s3:PutObject"));
            assert!(!grants(plan, "cloudformation:ExecuteChangeSet"));
            assert!(!grants(plan, "cloudformation:ContinueUpdateRollback"));
            assert!(!grants(plan, "lambda:DeleteFunction"));
        }
    }
    let w = yaml(".github/workflows/deploy.yml");
    assert_eq!(w["jobs"]["deploy-prod"]["environment"], "prod");
    assert_eq!(w["jobs"]["prod-change-set"]["environment"], "prod-plan");
}

#[test]
fn the_deploy_roles_are_not_administrators_and_reach_only_their_stages_stack() {
    for stage in STAGES {
        let resources = bootstrap_for(stage);
        for (name, role) in roles(&resources) {
            if name == "ExecutionRole" {
                continue;
            }
            for s in statements(role) {
                let actions = actions(&s);
                let resources = texts_of(&s["Resource"]);
                for action in &actions {
                    assert!(action != "*" && !action.ends_with(":*"), "{name}: {action}");
                }
                if actions.iter().any(|a| a == "iam:PassRole") {
                    assert_eq!(resources, ["!GetAtt ExecutionRole.Arn"], "{name}");
                    assert_eq!(
                        s["Condition"]["StringEquals"]["iam:PassedToService"],
                        "cloudformation.amazonaws.com"
                    );
                }
                for r in &resources {
                    if r.contains(":cloudformation:") && !r.contains(":aws:transform/") {
                        assert!(
                            r.ends_with(":stack/${StackNamePrefix}-${Stage}/*"),
                            "{name}: stacks are named exactly: {r}"
                        );
                    }
                }
                // Old versions only: a qualifier (`:*` after the name) is required, so the
                // function itself can never be deleted.
                if actions.iter().any(|a| a == "lambda:DeleteFunction") {
                    assert_eq!(actions, ["lambda:DeleteFunction"], "{name}");
                    assert!(!resources.is_empty());
                    for r in &resources {
                        assert!(
                            r.ends_with("${StackNamePrefix}-${Stage}-*:*"),
                            "{name}: {r}"
                        );
                        for other in [
                            "vexora-payouts-dev-Submit-1",
                            "CodeDeployHook_vexora-payouts-dev-pre",
                        ] {
                            let function = format!(
                                "arn:aws:lambda:ap-northeast-1:123456789012:function:{other}"
                            );
                            let pattern = substitute(r, "dev");
                            assert!(!glob(&pattern, &function), "{r} deletes {function}");
                            assert_eq!(
                                glob(&pattern, &format!("{function}:7")),
                                r.contains("CodeDeployHook_")
                                    == other.starts_with("CodeDeployHook_"),
                                "{r}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A resource template with the bootstrap's parameters and pseudo parameters filled in, for
/// one stage, every stage in the same account (the case that must hold apart).
fn substitute(template: &str, stage: &str) -> String {
    template
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", "ap-northeast-1")
        .replace("${AWS::AccountId}", "123456789012")
        .replace("${StackNamePrefix}", "vexora-payouts")
        .replace("${Stage}", stage)
        .replace("!GetAtt ArtifactBucket.Arn", "${ArtifactBucket.Arn}")
        .replace(
            "${ArtifactBucket.Arn}",
            &format!("arn:aws:s3:::payouts-bootstrap-{stage}-artifactbucket"),
        )
}

#[test]
fn an_iam_wildcard_matches_what_iam_would() {
    assert!(glob(
        "arn:x:function:a-dev-*",
        "arn:x:function:a-dev-F-1:live"
    ));
    assert!(!glob(
        "arn:x:function:a-dev-*:*",
        "arn:x:function:a-dev-F-1"
    ));
    assert!(glob(
        "arn:x:function:a-dev-*:*",
        "arn:x:function:a-dev-F-1:3"
    ));
    assert!(glob("arn:x:function:a-*", "arn:x:function:a-prod-F-1"));
    assert!(!glob("arn:x:function:a-dev-*", "arn:x:function:a-prod-F-1"));
    assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
}

/// What a stage's stack and bootstrap create, as ARNs (CloudFormation's generated names:
/// `<stack>-<LogicalId>-<random>`).
fn names_of_stage(stage: &str) -> Vec<String> {
    let s = format!("vexora-payouts-{stage}");
    let r = "arn:aws:{service}:ap-northeast-1:123456789012:";
    let at = |service: &str, rest: String| format!("{}{rest}", r.replace("{service}", service));
    vec![
        at("cloudformation", format!("stack/{s}/4a1b")),
        at("lambda", format!("function:{s}-SubmitPayoutFunction-AbC1")),
        at(
            "lambda",
            format!("function:{s}-SubmitPayoutFunction-AbC1:live"),
        ),
        at(
            "lambda",
            format!("function:{s}-SubmitPayoutFunction-AbC1:12"),
        ),
        at("lambda", format!("function:CodeDeployHook_{s}-pre-traffic")),
        at("dynamodb", format!("table/{s}-PayoutsTable-XY1")),
        at(
            "dynamodb",
            format!("table/{s}-PayoutsTable-XY1/stream/2025"),
        ),
        at("secretsmanager", format!("secret:{s}-vexora-AbCdEf")),
        at("sqs", format!("{s}-BatchQueue-Q1")),
        at("sns", format!("{s}-AlarmTopic-T1")),
        at("logs", format!("log-group:{s}-SubmitPayoutLogs-L1")),
        at(
            "logs",
            format!("log-group:{s}-SubmitPayoutLogs-L1:log-stream:x"),
        ),
        at("cloudwatch", format!("alarm:{s}-SubmitErrorsAlarm-A1")),
        format!("arn:aws:cloudwatch::123456789012:dashboard/{s}"),
        at("events", format!("event-bus/{s}-payouts")),
        at("events", format!("archive/{s}-payouts")),
        at("scheduler", format!("schedule/default/{s}-reconcile")),
        at(
            "codedeploy",
            format!("application:{s}-ServerlessDeploymentApplication-C1"),
        ),
        at(
            "codedeploy",
            format!(
                "deploymentgroup:{s}-ServerlessDeploymentApplication-C1/{s}-SubmitPayoutFunctionDeploymentGroup-G1"
            ),
        ),
        format!("arn:aws:iam::123456789012:role/{s}-SubmitPayoutFunctionRole-R1"),
        format!("arn:aws:iam::123456789012:policy/{s}-SubmitPolicy-P1"),
        format!("arn:aws:iam::123456789012:policy/{s}-boundary"),
        format!("arn:aws:s3:::payouts-bootstrap-{stage}-artifactbucket/vexora-payouts/abc"),
    ]
}

/// Resources of the execution role and the boundary that name no stage, with the actions
/// allowed on each: the action has no resource-level permission, or the resource is scoped by
/// a condition (below), or it is read-only and shared by every stage.
const OUTSIDE_ANY_STAGE: [(&str, &[&str]); 6] = [
    (
        "*",
        &[
            // No resource-level permission.
            "dynamodb:ListStreams",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:GetSamplingStatisticSummaries",
            "cloudwatch:DescribeAlarms",
            "secretsmanager:GetRandomPassword",
            "logs:DescribeLogGroups",
            "lambda:GetEventSourceMapping",
            "lambda:ListEventSourceMappings",
            // The HTTP API's access-log delivery (API Gateway's documented set).
            "logs:CreateLogDelivery",
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
            // Conditioned: through Secrets Manager only.
            "kms:Decrypt",
            // Conditioned: only for the stage's functions (lambda:FunctionArn).
            "lambda:CreateEventSourceMapping",
            "lambda:UpdateEventSourceMapping",
            "lambda:DeleteEventSourceMapping",
        ],
    ),
    (
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:*",
        &[
            "lambda:TagResource",
            "lambda:UntagResource",
            "lambda:ListTags",
        ],
    ),
    (
        "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentconfig:*",
        &["codedeploy:GetDeploymentConfig"],
    ),
    // Conditioned on the stage's tag (below).
    (
        "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apis",
        &["apigateway:POST"],
    ),
    (
        "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apis/*",
        &["apigateway:*"],
    ),
    (
        "arn:${AWS::Partition}:apigateway:${AWS::Region}::/tags/*",
        &[
            "apigateway:GET",
            "apigateway:POST",
            "apigateway:PUT",
            "apigateway:DELETE",
        ],
    ),
];

fn of_this_stage(resource: &str) -> bool {
    resource.contains("${StackNamePrefix}-${Stage}")
        || resource.contains("${ArtifactBucket.Arn}")
        || resource == "!GetAtt ArtifactBucket.Arn"
}

#[test]
fn the_execution_role_and_the_boundary_reach_nothing_of_another_stage() {
    let source = text("infra/bootstrap.yaml");
    assert!(
        !source.contains("${StackNamePrefix}-*") && !source.contains("${StackNamePrefix}*"),
        "a prefix without the stage matches every stage"
    );
    for stage in STAGES {
        let resources = bootstrap_for(stage);
        let mut patterns = Vec::new();
        for name in [
            "ExecutionRole",
            "FunctionBoundary",
            "DeployRole",
            "PlanRole",
        ] {
            let Some(holder) = resources.get(name) else {
                continue;
            };
            for s in statements(holder).iter().filter(|s| allows(s)) {
                let actions = actions(s);
                for r in texts_of(&s["Resource"]) {
                    if of_this_stage(&r) {
                        patterns.push((name, substitute(&r, stage)));
                        continue;
                    }
                    if name == "DeployRole" || name == "PlanRole" {
                        // The SAM transform, ValidateTemplate, and handing the stage's own
                        // execution role to CloudFormation.
                        assert!(
                            r.ends_with(":aws:transform/Serverless-2016-10-31")
                                || r == "*"
                                || r == "!GetAtt ExecutionRole.Arn",
                            "{name}: {r}"
                        );
                        continue;
                    }
                    let (_, allowed) = OUTSIDE_ANY_STAGE
                        .iter()
                        .find(|(documented, _)| *documented == r)
                        .unwrap_or_else(|| panic!("{name}: {r} names no stage: {actions:?}"));
                    for action in &actions {
                        assert!(
                            allowed.contains(&action.as_str()),
                            "{name}: {action} on {r}"
                        );
                    }
                    let condition = format!("{:?}", s["Condition"]);
                    if actions.iter().any(|a| a == "kms:Decrypt") {
                        assert!(condition.contains("kms:ViaService"), "{condition}");
                    }
                    if actions.iter().any(|a| {
                        a.ends_with("EventSourceMapping")
                            && !a.starts_with("lambda:Get")
                            && !a.starts_with("lambda:List")
                    }) {
                        let arn = texts_of(&s["Condition"]["StringLike"]["lambda:FunctionArn"]);
                        assert!(
                            arn.len() == 1
                                && arn[0].ends_with(":function:${StackNamePrefix}-${Stage}-*"),
                            "{arn:?}"
                        );
                    }
                }
            }
        }
        // Nothing of another stage in the same account matches, and the stage's own names do
        // (the check is not vacuous).
        for other in STAGES.iter().filter(|o| **o != stage) {
            for arn in names_of_stage(other) {
                for (name, pattern) in &patterns {
                    assert!(
                        !glob(pattern, &arn),
                        "{stage}'s {name}: {pattern} matches {arn}"
                    );
                }
            }
        }
        for arn in names_of_stage(stage) {
            assert!(
                patterns.iter().any(|(_, p)| glob(p, &arn)),
                "{stage}: nothing reaches its own {arn}"
            );
        }
    }
}

#[test]
fn api_gateway_is_reached_only_through_the_stages_tag() {
    let resources = bootstrap_for("dev");
    let mut apigateway = 0;
    for name in ["ExecutionRole", "FunctionBoundary", "DeployRole"] {
        for s in statements(resource(&resources, name)) {
            if !actions(&s).iter().any(|a| a.starts_with("apigateway:")) {
                continue;
            }
            apigateway += 1;
            let resources = texts_of(&s["Resource"]);
            let creates = resources.iter().all(|r| r.ends_with("::/apis"));
            // Creating: the request carries the stage's tag; anything else: the API carries it
            // already (a request tag alone would let one stage re-tag another's API).
            let key = if creates {
                "aws:RequestTag/payouts:stage"
            } else {
                "aws:ResourceTag/payouts:stage"
            };
            let value = &s["Condition"]["StringEquals"][key];
            assert_eq!(texts_of(value), ["!Ref Stage"], "{name}: {resources:?}");
            if let Some(request) = s["Condition"].get("StringEqualsIfExists") {
                assert_eq!(
                    texts_of(&request["aws:RequestTag/payouts:stage"]),
                    ["!Ref Stage"]
                );
            }
        }
    }
    assert_eq!(apigateway, 3);
}

#[test]
fn the_execution_role_creates_only_bounded_roles_and_cannot_touch_the_deploy_identity() {
    for stage in STAGES {
        let resources = bootstrap_for(stage);
        let role = resource(&resources, "ExecutionRole");
        let minting = [
            "iam:CreateRole",
            "iam:PutRolePolicy",
            "iam:AttachRolePolicy",
            "iam:PutRolePermissionsBoundary",
        ];
        let mut bounded = 0;
        for s in statements(role) {
            let actions = actions(&s);
            if actions.iter().any(|a| minting.contains(&a.as_str())) {
                bounded += 1;
                assert_eq!(
                    texts_of(&s["Condition"]["StringEquals"]["iam:PermissionsBoundary"]),
                    ["!Ref FunctionBoundary"],
                    "{actions:?}"
                );
            }
            assert!(
                !actions
                    .iter()
                    .any(|a| a == "iam:DeleteRolePermissionsBoundary" || a == "iam:*"),
                "{actions:?}"
            );
            for r in texts_of(&s["Resource"]) {
                if r.contains(":iam::") {
                    assert!(
                        r.contains(":role/${StackNamePrefix}-${Stage}-")
                            || r.contains(":policy/${StackNamePrefix}-${Stage}-"),
                        "{r}"
                    );
                }
            }
            // A policy people attach outside any boundary is never rewritten by a change set.
            assert!(
                !actions
                    .iter()
                    .any(|a| a == "iam:CreatePolicyVersion" || a == "iam:SetDefaultPolicyVersion"),
                "{actions:?}"
            );
            if actions
                .iter()
                .any(|a| a.starts_with("lambda:") && a.ends_with('*'))
            {
                for r in texts_of(&s["Resource"]) {
                    assert!(
                        r.ends_with(":function:${StackNamePrefix}-${Stage}-*")
                            || r.ends_with(
                                ":function:CodeDeployHook_${StackNamePrefix}-${Stage}-*"
                            ),
                        "{r}"
                    );
                }
            }
        }
        assert_eq!(bounded, 1);
        let boundary = resource(&resources, "FunctionBoundary");
        assert_eq!(
            texts_of(&boundary["Properties"]["ManagedPolicyName"]),
            ["${StackNamePrefix}-${Stage}-boundary"]
        );
        let guard = statements(resource(&resources, "ExecutionRoleGuard"));
        assert_eq!(guard.len(), 1);
        assert_eq!(guard[0]["Effect"], "Deny");
        assert_eq!(actions(&guard[0]), ["iam:*"]);
        let mut protected = texts_of(&guard[0]["Resource"]);
        protected.sort();
        let mut expected = vec![
            "!GetAtt DeployRole.Arn",
            "!GetAtt ExecutionRole.Arn",
            "!Ref FunctionBoundary",
        ];
        if stage == "prod" {
            expected.push("!GetAtt PlanRole.Arn");
        }
        expected.sort_unstable();
        assert_eq!(protected, expected, "{stage}");
    }
}

#[test]
fn the_artefact_bucket_keeps_every_pinned_version() {
    for stage in STAGES {
        let resources = bootstrap_for(stage);
        let bucket = &resource(&resources, "ArtifactBucket")["Properties"];
        assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
        for rule in bucket["LifecycleConfiguration"]["Rules"]
            .as_sequence()
            .unwrap()
        {
            let days = &rule["NoncurrentVersionExpiration"]["NoncurrentDays"];
            assert!(days.is_null() || days.as_u64().unwrap() >= 400, "{days:?}");
        }
        let policy = statements(resource(&resources, "ArtifactBucketPolicy"));
        let denies = |action: &str| -> Vec<&Value> {
            policy
                .iter()
                .filter(|s| s["Effect"] == "Deny" && actions(s).iter().any(|a| a == action))
                .collect()
        };
        // Nobody deletes a version.
        assert!(
            denies("s3:DeleteObjectVersion").iter().any(|s| {
                s["Principal"] == "*"
                    && s["Condition"].is_null()
                    && texts_of(&s["Resource"]).contains(&"${ArtifactBucket.Arn}/*".to_owned())
            }),
            "{stage}"
        );
        // The pipeline's roles cannot suspend versioning, shorten the lifecycle or rewrite the
        // policy.
        let mut pipeline = vec![
            "!GetAtt DeployRole.Arn".to_owned(),
            "!GetAtt ExecutionRole.Arn".to_owned(),
        ];
        if stage == "prod" {
            pipeline.push("!GetAtt PlanRole.Arn".to_owned());
        }
        for action in [
            "s3:PutBucketVersioning",
            "s3:PutLifecycleConfiguration",
            "s3:PutBucketPolicy",
            "s3:DeleteBucketPolicy",
        ] {
            let statement = denies(action);
            assert_eq!(statement.len(), 1, "{stage}: {action}");
            let principals = texts_of(&statement[0]["Condition"]["ArnEquals"]["aws:PrincipalArn"]);
            for role in &pipeline {
                assert!(principals.contains(role), "{stage}: {action} {role}");
            }
            assert!(
                texts_of(&statement[0]["Resource"])
                    .contains(&"!GetAtt ArtifactBucket.Arn".to_owned())
            );
        }
        // And none of them is granted any such action.
        for (name, role) in roles(&resources) {
            for action in statements(role)
                .iter()
                .filter(|s| allows(s))
                .flat_map(actions)
            {
                assert!(
                    !(action.starts_with("s3:Delete")
                        || action.starts_with("s3:PutBucket")
                        || action.starts_with("s3:PutLifecycle")
                        || action == "s3:*"
                        || action == "*"),
                    "{stage}: {name} {action}"
                );
            }
        }
    }
}

#[test]
fn every_job_that_reaches_aws_uses_an_environment_exactly_one_role_trusts() {
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
        // The environment's account is its stage's (prod-plan: prod's).
        let stage = environment.trim_end_matches("-plan");
        let resources = bootstrap_for(stage);
        let trusting: Vec<String> = roles(&resources)
            .into_iter()
            .filter(|(_, role)| trusted_environments(role, stage).contains(&environment.to_owned()))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            trusting.len(),
            1,
            "{name:?}: {environment} trusted by {trusting:?}"
        );
    }
    assert_eq!(reaching, 4);
}

#[test]
fn deploys_use_the_bootstraps_bucket_never_sams_managed_stack() {
    // `resolve_s3` makes the SAM CLI create or read `aws-sam-cli-managed-default`, a stack the
    // deploy role may not touch.
    let samconfig = text("samconfig.toml");
    assert!(
        !samconfig
            .lines()
            .any(|l| l.trim_start().starts_with("resolve_s3"))
    );
    let w = yaml(".github/workflows/deploy.yml");
    for job in ["deploy-dev", "deploy-staging", "prod-change-set"] {
        let (_, package) = step_running(&w["jobs"][job], "make package").unwrap();
        assert!(
            package.contains("ARTIFACT_BUCKET=\"$ARTIFACT_BUCKET\""),
            "{job}"
        );
        let (_, deploy) = step_running(&w["jobs"][job], "make deploy").unwrap();
        assert!(
            deploy.contains("ARTIFACT_BUCKET=\"$ARTIFACT_BUCKET\""),
            "{job}"
        );
    }
    let printed = Command::new("make")
        .args(["-n", "--no-print-directory", "deploy", "TEMPLATE=Makefile"])
        .args(["ARTIFACT_BUCKET=artefacts-123"])
        .current_dir(root())
        .output()
        .unwrap();
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(printed.contains("--s3-bucket 'artefacts-123'"), "{printed}");
    assert!(!printed.contains("--resolve-s3"), "{printed}");
    let (_, plan) = step_running(&w["jobs"]["prod-change-set"], "--no-execute-changeset").unwrap();
    assert!(plan.starts_with("set -o pipefail"));
    // `make deploy` and `make package` bring their own SAM CLI (the deploy jobs have no .venv of
    // their own).
    let makefile = text("Makefile");
    assert!(makefile.lines().any(|l| l.starts_with("deploy: venv ")));
    assert!(makefile.lines().any(|l| l.starts_with("package: venv ")));
}

#[test]
fn prod_plans_only_mains_newest_commit_never_reads_nothing_as_no_change_and_installs_before_credentials()
 {
    let w = yaml(".github/workflows/deploy.yml");
    let jobs = &w["jobs"];
    // A re-run of an older run would plan an older build against prod.
    let (check, script) = step_running(
        &jobs["prod-change-set"],
        "git ls-remote origin refs/heads/main",
    )
    .unwrap();
    assert!(script.contains("exit 1"), "{script}");
    let (package, _) = step_running(&jobs["prod-change-set"], "make package").unwrap();
    assert!(check < package, "checked before anything is packaged");
    // No change set in the output is "nothing to change" only when SAM says so.
    let (_, plan) = step_running(&jobs["prod-change-set"], "--no-execute-changeset").unwrap();
    assert!(plan.contains("No changes to deploy"), "{plan}");
    // Tools are installed (PyPI) before any AWS credentials exist in the job.
    for (name, job) in jobs.as_mapping().unwrap() {
        let steps = steps(job);
        let Some(credentials) = steps.iter().position(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials@"))
        }) else {
            continue;
        };
        let venv = steps
            .iter()
            .position(|s| s["run"].as_str().is_some_and(|r| r.trim() == "make venv"));
        assert!(
            venv.is_some_and(|v| v < credentials),
            "{name:?}: `make venv` before configure-aws-credentials"
        );
    }
}
