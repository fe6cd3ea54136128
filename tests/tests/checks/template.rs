//! The SAM template agrees with the code: the table's keys and index, the environment
//! variables, each function's IAM actions, the binaries, the timeouts and the alarm metrics.

use std::collections::BTreeSet;
use std::path::PathBuf;

use payout_app::metrics;
use payout_aws::store::schema;
use payout_aws::{config, permissions, time_budget};
use serde_norway::Value;

use super::iam;

fn template() -> Value {
    let text = include_str!("../../../infra/template.yaml");
    serde_norway::from_str(text).unwrap()
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    &t["Resources"][name]["Properties"]
}

fn texts(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

/// A CloudFormation intrinsic (`!Ref X`) as its tag and value.
fn tagged(v: &Value) -> (String, String) {
    match v {
        Value::Tagged(t) => (t.tag.to_string(), format!("{:?}", t.value)),
        other => (String::new(), format!("{other:?}")),
    }
}

#[test]
fn the_table_has_the_keys_and_index_the_code_uses() {
    let t = template();
    let table = resource(&t, "PayoutsTable");
    let key = &table["KeySchema"][0];
    assert_eq!(key["AttributeName"], schema::PARTITION_KEY);
    assert_eq!(key["KeyType"], "HASH");
    assert_eq!(table["KeySchema"].as_sequence().unwrap().len(), 1);
    let types: BTreeSet<(String, String)> = table["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().into(),
                a["AttributeType"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        (schema::PARTITION_KEY, "S"),
        (schema::UNRESOLVED_KEY, "S"),
        (schema::CHECK_AFTER, "N"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(types, expected);
    let indexes = table["GlobalSecondaryIndexes"].as_sequence().unwrap();
    assert_eq!(indexes.len(), 1);
    let index = &indexes[0];
    assert_eq!(index["IndexName"], schema::UNRESOLVED_INDEX);
    assert_eq!(
        index["KeySchema"][0]["AttributeName"],
        schema::UNRESOLVED_KEY
    );
    assert_eq!(index["KeySchema"][0]["KeyType"], "HASH");
    assert_eq!(index["KeySchema"][1]["AttributeName"], schema::CHECK_AFTER);
    assert_eq!(index["KeySchema"][1]["KeyType"], "RANGE");
    assert_eq!(index["Projection"]["ProjectionType"], "KEYS_ONLY");
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["DeletionProtectionEnabled"], true);
}

#[test]
fn every_function_gets_exactly_the_contracts_variables() {
    let t = template();
    let vars = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    let names: BTreeSet<&str> = vars.keys().map(|k| k.as_str().unwrap()).collect();
    let required: BTreeSet<&str> = [
        config::PAYOUTS_TABLE,
        config::VEXORA_SECRET_ID,
        config::VEXORA_BASE_URL,
        config::VEXORA_NOTIFY_URL,
        config::VEXORA_TIMEOUT_MS,
    ]
    .into();
    assert!(required.is_subset(&names), "{names:?}");
    assert!(
        names.iter().all(|n| config::ALL_VARIABLES.contains(n)),
        "{names:?}"
    );
    let notify = tagged(&vars[&Value::from(config::VEXORA_NOTIFY_URL)]);
    assert_eq!(notify.0, "!Sub");
    assert!(
        notify.1.contains("${HttpApi}") && notify.1.contains("/vexora/notify"),
        "{notify:?}"
    );
}

#[test]
fn each_function_may_call_exactly_the_actions_its_code_calls() {
    let t = template();
    for needs in permissions::ALL {
        let (name, function) = t["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"] == needs.binary)
            .unwrap_or_else(|| panic!("no function builds {}", needs.binary));
        assert_eq!(function["Type"], "AWS::Serverless::Function");
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name:?}"
        );
        let statements = function["Properties"]["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap();
        let mut table = BTreeSet::new();
        let mut index = BTreeSet::new();
        let mut secret = BTreeSet::new();
        let mut bus = BTreeSet::new();
        let mut stream = BTreeSet::new();
        let mut failure_queue = BTreeSet::new();
        let mut batch_queue = BTreeSet::new();
        for s in statements {
            if let Value::Tagged(conditional) = s {
                // Only a customer managed key of an existing secret, and only through Secrets
                // Manager.
                assert_eq!(conditional.tag.to_string(), "!If", "{name:?}");
                let kms = &conditional.value[1];
                assert_eq!(conditional.value[0], "HasSecretKmsKey");
                assert_eq!(texts(&kms["Action"]), ["kms:Decrypt"]);
                assert!(
                    tagged(&kms["Condition"]["StringEquals"]["kms:ViaService"])
                        .1
                        .contains("secretsmanager."),
                    "{name:?}"
                );
                continue;
            }
            assert_eq!(s["Effect"], "Allow");
            let actions = texts(&s["Action"]);
            let (tag, target) = tagged(&s["Resource"]);
            let bucket = if target.contains("PayoutsTable.StreamArn") {
                &mut stream
            } else if target.contains("PayoutEventsBus.Arn") {
                &mut bus
            } else if target.contains("PayoutEventFailures.Arn") {
                &mut failure_queue
            } else if target.contains("BatchQueue.Arn") {
                &mut batch_queue
            } else if target.contains("/index/") {
                assert!(target.contains(schema::UNRESOLVED_INDEX), "{target}");
                &mut index
            } else if tag == "!GetAtt" && target.contains("PayoutsTable") {
                &mut table
            } else if tag == "!If" && target.contains("VexoraSecret") {
                &mut secret
            } else {
                panic!("{name:?}: unexpected resource {tag} {target}");
            };
            bucket.extend(actions);
        }
        let set = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(table, set(needs.table), "{}: table actions", needs.binary);
        assert_eq!(index, set(needs.index), "{}: index actions", needs.binary);
        assert_eq!(
            secret,
            set(needs.secret),
            "{}: secret actions",
            needs.binary
        );
        assert_eq!(bus, set(needs.bus), "{}: bus actions", needs.binary);
        assert_eq!(
            stream,
            set(needs.stream),
            "{}: stream actions",
            needs.binary
        );
        assert_eq!(
            failure_queue,
            set(needs.failure_queue),
            "{}: failure queue actions",
            needs.binary
        );
        assert_eq!(
            batch_queue,
            set(needs.batch_queue),
            "{}: batch queue actions",
            needs.binary
        );
    }
}

#[test]
fn timeouts_fit_vexora_and_the_abandonment_rule() {
    let t = template();
    let timeout = |name: &str| resource(&t, name)["Timeout"].as_u64().unwrap();
    let vexora_max_ms = t["Parameters"]["VexoraTimeoutMs"]["MaxValue"]
        .as_u64()
        .unwrap();
    let vexora_min_ms = t["Parameters"]["VexoraTimeoutMs"]["MinValue"]
        .as_u64()
        .unwrap();
    let seconds = std::time::Duration::from_secs;
    let vexora_max = std::time::Duration::from_millis(vexora_max_ms);
    let default = config::DEFAULT_VEXORA_TIMEOUT;
    assert_eq!(
        t["Parameters"]["VexoraTimeoutMs"]["Default"].as_u64(),
        Some(default.as_millis() as u64),
        "the template's default is the code's"
    );
    // Every path of a function, each call at its bound, fits its timeout with margin.
    let submit = seconds(timeout("SubmitPayoutFunction"));
    for (path, worst) in [
        ("POST /payouts", time_budget::submit(vexora_max)),
        ("GET ?refresh=true", time_budget::refresh(vexora_max)),
    ] {
        assert!(
            worst + time_budget::MARGIN <= submit,
            "{path}: {worst:?} in {submit:?}"
        );
    }
    // ... and the submit ends before its PENDING order counts as abandoned.
    let abandoned_at_least = payout_domain::order::pending_abandoned_after(
        std::time::Duration::from_millis(vexora_min_ms),
    );
    assert!((submit.as_secs() as i64) < abandoned_at_least.num_seconds());
    // Vexora waits 10 s for the webhook's OK.
    let webhook = seconds(timeout("PayoutWebhookFunction"));
    assert!(webhook < seconds(10));
    assert!(
        time_budget::webhook() + time_budget::MARGIN <= webhook,
        "{:?}",
        time_budget::webhook()
    );
    // The reconciler stops at its deadline; one order still fits many times over.
    let reconcile = seconds(timeout("ReconcilePayoutsFunction"));
    assert!(time_budget::reconcile_one(vexora_max) * 10 <= reconcile);
    // The API Gateway integration waits for the longest submit.
    let integration = resource(&t, "SubmitIntegration")["TimeoutInMillis"]
        .as_u64()
        .unwrap()
        / 1000;
    assert!(seconds(integration) > submit);
    for name in [
        "SubmitPayoutFunction",
        "PayoutWebhookFunction",
        "ReconcilePayoutsFunction",
    ] {
        let f = &t["Resources"][name];
        assert_eq!(
            tagged(&f["Properties"]["LoggingConfig"]["LogGroup"]).0,
            "!Ref",
            "{name} has a log group"
        );
    }
    for (name, condition) in [
        ("SubmitPayoutFunction", "ReservesSubmit"),
        ("PayoutWebhookFunction", "ReservesWebhook"),
    ] {
        // A fresh account's quota may not allow reserving: a parameter, 0 by default.
        let reserved = &resource(&t, name)["ReservedConcurrentExecutions"];
        assert_eq!(tagged(reserved).0, "!If", "{name}");
        assert!(tagged(reserved).1.contains(condition), "{name}");
    }
    assert!(
        resource(&t, "ReconcilePayoutsFunction")
            .get("ReservedConcurrentExecutions")
            .is_none()
    );
    assert_eq!(t["Globals"]["Function"]["Architectures"][0], "arm64");
    assert_eq!(t["Globals"]["Function"]["Runtime"], "provided.al2023");
    assert_eq!(t["Globals"]["Function"]["Tracing"], "Active");
}

#[test]
fn the_template_ships_no_usable_secret() {
    let t = template();
    let secret = resource(&t, "VexoraSecret");
    assert!(
        secret.get("SecretString").is_none(),
        "a literal value is a published secret"
    );
    let generated = &secret["GenerateSecretString"];
    assert!(
        generated.get("SecretStringTemplate").is_none(),
        "not even a placeholder merchant number ships"
    );
    assert!(generated["PasswordLength"].as_u64().unwrap() >= 32);
    // What Secrets Manager generates from it: a random string, which is not credentials, so
    // every function stops at init until the merchant's are put.
    let generated_value = "k3J9xQ2mVbN7pL4tR8wZ1cF6hD0sG5yAeU3iO9nM2qW7vB4x";
    assert!(vexora::credentials::VexoraCredentials::from_json(generated_value).is_err());
}

/// The template as CloudFormation's `AWS::Serverless` transform turns it into resources, with
/// the pinned SAM translator (`sam validate` does not run everything the transform checks).
fn translated(parameters: &[&str]) -> serde_json::Value {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/sam_translate.py"))
        .arg(root.join("infra/template.yaml"))
        .args(parameters)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SAM transform refuses the template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn of_type<'a>(
    t: &'a serde_json::Value,
    kind: &'a str,
) -> impl Iterator<Item = (&'a String, &'a serde_json::Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(move |(_, r)| r["Type"] == kind)
}

#[test]
fn the_transform_accepts_the_template_for_every_environment_and_every_role_is_bounded() {
    for environment in ["dev", "staging", "prod"] {
        let t = translated(&[&format!("Environment={environment}")]);
        let roles: Vec<_> = of_type(&t, "AWS::IAM::Role").collect();
        assert!(roles.len() >= 5, "{environment}: {}", roles.len());
        for (name, role) in roles {
            assert_eq!(
                role["Properties"]["PermissionsBoundary"]["Fn::If"][1]["Ref"],
                "PermissionsBoundaryArn",
                "{environment}: {name} must carry the boundary the execution role requires"
            );
        }
        // Two environments in one account: every explicitly named resource is the stack's.
        for (name, schedule) in of_type(&t, "AWS::Scheduler::Schedule") {
            assert_eq!(
                schedule["Properties"]["Name"]["Fn::Sub"], "${AWS::StackName}-reconcile",
                "{name}"
            );
        }
    }
}

#[test]
fn a_change_of_parameters_alone_publishes_a_new_version() {
    let t = translated(&["Environment=prod"]);
    let versions: Vec<_> = of_type(&t, "AWS::Lambda::Version").collect();
    assert!(!versions.is_empty());
    let template = template();
    for (name, version) in versions {
        let description = version["Properties"]["Description"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no parameter-bearing description"));
        // Every parameter a function's environment is built from is in it (a Description change
        // replaces the version: CloudFormation cannot update it in place).
        for parameter in [
            "Environment",
            "VexoraBaseUrl",
            "VexoraSecretArn",
            "VexoraSecretKmsKeyArn",
            "VexoraTimeoutMs",
        ] {
            assert!(
                description.contains(&format!("${{{parameter}}}")),
                "{name}: {parameter}"
            );
        }
        let function = name.split("Version").next().unwrap();
        let env = &resource(&template, function)["Properties"]["Environment"]["Variables"];
        let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
        for vars in [env, globals] {
            let text = serde_norway::to_string(vars).unwrap();
            for (parameter, _) in template["Parameters"].as_mapping().unwrap() {
                let parameter = parameter.as_str().unwrap();
                assert!(
                    !text.contains(parameter) || description.contains(&format!("${{{parameter}}}")),
                    "{name}: {parameter} reaches the environment but not the version"
                );
            }
        }
    }
}

/// The functions deployed through CodeDeploy, and whether a PreTraffic hook invokes their new
/// version before traffic (the event-driven ones, which a 5-minute canary may never run).
const DEPLOYED: [(&str, bool); 5] = [
    ("SubmitPayout", false),
    ("PayoutWebhook", false),
    ("ReconcilePayouts", true),
    ("PublishPayoutEvents", true),
    ("SubmitBatchItems", true),
];

#[test]
fn prods_canary_is_judged_by_the_new_version_alone_and_nothing_else_blocks_deploys() {
    let t = translated(&["Environment=prod"]);
    let source = template();
    for (function, hooked) in DEPLOYED {
        let group = &t["Resources"][format!("{function}FunctionDeploymentGroup")]["Properties"];
        assert_eq!(group["AlarmConfiguration"]["Fn::If"][0], "IsProd");
        let rollback = &group["AlarmConfiguration"]["Fn::If"][1]["Alarms"];
        // Only the new version's own errors: not the API's 5xx, the UNCONFIRMED rate, the
        // iterator age or retried records, which a Vexora or EventBridge outage raises (that
        // must not roll back good code or block a hotfix; they page instead).
        assert_eq!(
            rollback,
            &serde_json::json!([{"Name": {"Ref": format!("{function}NewVersionErrorsAlarm")}}]),
            "{function}"
        );
        assert_eq!(
            group["AlarmConfiguration"]["Fn::If"][2],
            serde_json::json!({}),
            "outside prod no alarm gates a deploy"
        );
        assert_eq!(group["ServiceRoleArn"]["Fn::GetAtt"][0], "CodeDeployRole");
        // The alarm watches the version being deployed, invoked through `live`, per minute.
        let alarm = resource(&source, &format!("{function}NewVersionErrorsAlarm"));
        assert_eq!(alarm["MetricName"], "Errors");
        assert_eq!(alarm["Period"], 60);
        assert_eq!(alarm["Threshold"], 1.0);
        let dimensions: Vec<(String, String)> = alarm["Dimensions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["Name"].as_str().unwrap().to_owned(),
                    tagged(&d["Value"]).1,
                )
            })
            .collect();
        assert_eq!(
            dimensions,
            [
                (
                    "FunctionName".to_owned(),
                    format!("String(\"{function}Function\")")
                ),
                (
                    "Resource".to_owned(),
                    format!("String(\"${{{function}Function}}:live\")")
                ),
                (
                    "ExecutedVersion".to_owned(),
                    format!("String(\"{function}Function.Version.Version\")")
                ),
            ],
            "{function}"
        );
        let alias = &t["Resources"][format!("{function}FunctionAliaslive")];
        let hook = &alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["BeforeAllowTrafficHook"];
        if hooked {
            assert_eq!(hook["Ref"], "PreTrafficHookFunction", "{function}");
        } else {
            assert!(hook.is_null(), "{function}: canary traffic judges it");
        }
    }
    // No other alarm gates a deployment.
    for (name, group) in of_type(&t, "AWS::CodeDeploy::DeploymentGroup") {
        let alarms = group["Properties"]["AlarmConfiguration"].to_string();
        assert_eq!(alarms.matches("\"Name\"").count(), 1, "{name}: {alarms}");
    }
    // The hook invokes exactly the new versions of the hooked functions, and gates only prod.
    let hook = &t["Resources"]["PreTrafficHookFunction"]["Properties"];
    let variables = &hook["Environment"]["Variables"];
    for (variable, function) in [
        ("RECONCILE_VERSION", "ReconcilePayouts"),
        ("PUBLISH_VERSION", "PublishPayoutEvents"),
        ("WORKER_VERSION", "SubmitBatchItems"),
    ] {
        let version = variables[variable]["Ref"].as_str().unwrap();
        assert_eq!(t["Resources"][version]["Type"], "AWS::Lambda::Version");
        assert!(
            version.starts_with(&format!("{function}FunctionVersion")),
            "{version}"
        );
    }
    assert_eq!(
        variables["GATE"],
        serde_json::json!({"Fn::If": ["IsProd", "enforce", "report"]})
    );
    assert!(
        hook["FunctionName"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .starts_with("CodeDeployHook_${AWS::StackName}-"),
        "AWSCodeDeployRoleForLambda lets CodeDeploy invoke CodeDeployHook_* only"
    );
}

#[test]
fn the_prod_guards_follow_the_stack_name_whatever_the_environment_parameter_says() {
    for (stack, environment, prod) in [
        ("vexora-payouts-prod", "prod", true),
        ("vexora-payouts-prod", "dev", true),
        ("vexora-payouts-dev", "prod", true),
        ("vexora-payouts-dev", "dev", false),
        ("vexora-payouts-staging", "staging", false),
        ("vexora-payouts-production-test", "dev", false),
        ("prod-payouts-dev", "dev", false),
    ] {
        let t = translated(&[&format!("Environment={environment}")]);
        let s = iam::Stack::new(&t, stack, &[("Environment", environment)]);
        assert_eq!(s.condition("IsProd"), prod, "{stack} {environment}");
        let group = s.resolve(&t["Resources"]["SubmitPayoutFunctionDeploymentGroup"]["Properties"]);
        assert_eq!(
            group["AlarmConfiguration"]["Alarms"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0),
            usize::from(prod),
            "{stack} {environment}: {group}"
        );
        let hook = s.resolve(&t["Resources"]["PreTrafficHookFunction"]["Properties"]);
        assert_eq!(
            hook["Environment"]["Variables"]["GATE"],
            if prod { "enforce" } else { "report" }
        );
    }
}

/// Runs the PreTraffic hook's inline code with a recording stand-in for boto3.
fn run_hook(failing: &[&str], gate: &str, raise: bool) -> serde_json::Value {
    run_hook_reporting(failing, gate, raise, false)
}

fn run_hook_reporting(
    failing: &[&str],
    gate: &str,
    raise: bool,
    report_raises: bool,
) -> serde_json::Value {
    let t = template();
    let code = resource(&t, "PreTrafficHookFunction")["InlineCode"]
        .as_str()
        .unwrap();
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pre-traffic-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.py"), code).unwrap();
    std::fs::write(
        dir.join("boto3.py"),
        r#"import io, json, os
calls = []
class Client:
    def __init__(self, service, config):
        self.service = service
        self.config = config
    def invoke(self, FunctionName, Payload):
        # One try, waiting out a whole reconcile run: botocore's own 60 s and retries would
        # run the reconciler again and fail a healthy deployment.
        assert self.config is not None and self.config.read_timeout >= 300, self.config
        assert self.config.retries == {"total_max_attempts": 1}, self.config.retries
        calls.append({"invoke": FunctionName, "payload": json.loads(Payload)})
        if os.environ.get("RAISE") == "1":
            raise RuntimeError("throttled")
        if FunctionName in os.environ.get("FAILING", "").split(","):
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(b'{"errorType":"Runtime.ExitError","errorMessage":"secret 0000000001"}')}
        return {"StatusCode": 200, "Payload": io.BytesIO(b"null")}
    def put_lifecycle_event_hook_execution_status(self, **kwargs):
        calls.append({"report": kwargs})
        if os.environ.get("REPORT_RAISES") == "1":
            raise RuntimeError("throttled")
def client(service, config=None):
    return Client(service, config)
"#,
    )
    .unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .current_dir(&dir)
        .env("PYTHONPATH", &dir)
        .env("RECONCILE_VERSION", "arn:reconcile:7")
        .env("PUBLISH_VERSION", "arn:publish:7")
        .env("WORKER_VERSION", "arn:worker:7")
        .env("GATE", gate)
        .env("FAILING", failing.join(","))
        .env("RAISE", if raise { "1" } else { "0" })
        .env("REPORT_RAISES", if report_raises { "1" } else { "0" })
        .args([
            "-c",
            "import json, boto3, index\n\
             answer = index.handler({'DeploymentId': 'd-1', 'LifecycleEventHookExecutionId': 'h-1'}, None)\n\
             print(json.dumps({'answer': answer, 'calls': boto3.calls}))",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        !stdout.contains("0000000001"),
        "the hook repeats an error's message: {stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn the_pre_traffic_hook_invokes_each_new_version_and_fails_prods_deployment_on_an_error() {
    let reported = |run: &serde_json::Value| {
        let calls = run["calls"].as_array().unwrap();
        let reports: Vec<_> = calls.iter().filter(|c| c.get("report").is_some()).collect();
        assert_eq!(
            reports.len(),
            1,
            "CodeDeploy gets exactly one answer: {run}"
        );
        assert_eq!(reports[0]["report"]["deploymentId"], "d-1");
        assert_eq!(reports[0]["report"]["lifecycleEventHookExecutionId"], "h-1");
        reports[0]["report"]["status"].as_str().unwrap().to_owned()
    };
    let all_good = run_hook(&[], "enforce", false);
    assert_eq!(reported(&all_good), "Succeeded");
    let invoked: Vec<_> = all_good["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("invoke").is_some())
        .map(|c| {
            (
                c["invoke"].as_str().unwrap().to_owned(),
                c["payload"].clone(),
            )
        })
        .collect();
    assert_eq!(
        invoked,
        [
            ("arn:reconcile:7".to_owned(), serde_json::json!({})),
            (
                "arn:publish:7".to_owned(),
                serde_json::json!({"Records": []})
            ),
            (
                "arn:worker:7".to_owned(),
                serde_json::json!({"Records": []})
            ),
        ]
    );
    assert_eq!(
        reported(&run_hook(&["arn:worker:7"], "enforce", false)),
        "Failed"
    );
    assert_eq!(
        reported(&run_hook(&["arn:publish:7"], "report", false)),
        "Succeeded"
    );
    assert_eq!(reported(&run_hook(&[], "enforce", true)), "Failed");
    assert_eq!(reported(&run_hook(&[], "report", true)), "Succeeded");
    // An answer CodeDeploy did not take is not retried (the hook would run everything again):
    // the invocation ends without an error, and Lambda does not retry it either.
    let unreported = run_hook_reporting(&[], "enforce", false, true);
    assert_eq!(unreported["answer"]["status"], "Unreported", "{unreported}");
    let t = template();
    let config = resource(&t, "PreTrafficHookInvokeConfig");
    assert_eq!(config["MaximumRetryAttempts"], 0);
    assert_eq!(
        config["Qualifier"], "$LATEST",
        "CodeDeploy invokes the hook by its name"
    );
    assert_eq!(
        tagged(&config["FunctionName"]).1,
        "String(\"PreTrafficHookFunction\")"
    );
}

#[test]
fn a_stack_named_prod_with_another_environment_is_refused_and_no_stack_defaults_to_dev() {
    let t = template();
    assert!(
        t["Parameters"]["Environment"].get("Default").is_none(),
        "a stack is given its stage, never dev by omission"
    );
    for (stack, environment, refused) in [
        ("vexora-payouts-prod", "dev", true),
        ("vexora-payouts-prod", "staging", true),
        ("vexora-payouts-prod", "prod", false),
        ("vexora-payouts-dev", "dev", false),
        ("vexora-payouts-dev", "prod", false),
    ] {
        let translated = translated(&[&format!("Environment={environment}")]);
        let s = iam::Stack::new(&translated, stack, &[("Environment", environment)]);
        assert_eq!(
            s.condition("MislabeledProd"),
            refused,
            "{stack} {environment}"
        );
    }
    let refusal = &t["Resources"]["RefusedStackNamedProdWithEnvironmentNotProd"];
    assert_eq!(refusal["Type"], "AWS::CloudFormation::WaitCondition");
    assert_eq!(refusal["Condition"], "MislabeledProd");
    assert_eq!(refusal["Properties"]["Timeout"], "1");
}

#[test]
fn every_canary_alarm_is_new_with_its_version_and_every_generated_name_keeps_the_stack_name() {
    let source = template();
    for (function, _) in DEPLOYED {
        let name = &resource(&source, &format!("{function}NewVersionErrorsAlarm"))["AlarmName"];
        let text = format!("{name:?}");
        assert!(
            text.contains("AWS::StackName")
                && text.contains(&format!("{function}Function.Version.Version")),
            "{function}: a failing earlier version's ALARM state must not carry over: {text}"
        );
    }
    // CloudFormation shortens a generated name that exceeds its service's limit, cutting into
    // the stack's name, which the stage's execution role is scoped by: every name it generates
    // for the stack keeps the whole stack name, with the longest prefix the bootstrap allows.
    let bootstrap: Value =
        serde_norway::from_str(include_str!("../../../infra/bootstrap.yaml")).unwrap();
    let longest_prefix = bootstrap["Parameters"]["StackNamePrefix"]["MaxLength"]
        .as_u64()
        .expect("the bootstrap bounds StackNamePrefix") as usize;
    let names = [
        "FunctionName",
        "QueueName",
        "ArchiveName",
        "TableName",
        "LogGroupName",
        "TopicName",
        "AlarmName",
        "ApplicationName",
        "DeploymentGroupName",
        "ManagedPolicyName",
        "RoleName",
        "Name",
    ];
    let mut checked = 0;
    for environment in ["dev", "staging", "prod"] {
        let t = translated(&[&format!("Environment={environment}")]);
        for prefix in ["vexora-payouts".to_owned(), "p".repeat(longest_prefix)] {
            let stack = format!("{prefix}-{environment}");
            for (logical, r) in t["Resources"].as_object().unwrap() {
                let kind = r["Type"].as_str().unwrap();
                if names.iter().any(|p| r["Properties"].get(*p).is_some())
                    || kind.starts_with("AWS::ApiGatewayV2")
                {
                    continue;
                }
                let name = iam::generated_name(&stack, logical, iam::name_limit(kind));
                assert!(
                    name.starts_with(&format!("{stack}-")),
                    "{environment}: {logical} ({kind}) would be named {name}, outside {stack}-*"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn the_alarms_watch_the_metrics_the_code_emits() {
    let t = template();
    // Every alarm on our own metrics is scoped to the stack's environment (dev and prod in one
    // account never trip each other's), by function where the metric is one function's.
    for metric in [
        metrics::WEBHOOK_SIGNATURE_REJECTED,
        metrics::PAYOUT_ANOMALY,
        metrics::STUCK_ORDERS,
        metrics::VEXORA_UNAVAILABLE,
        metrics::RECONCILE_RUN,
    ] {
        let alarm = alarms(&t)
            .into_iter()
            .find(|r| r["Properties"]["MetricName"] == metric)
            .unwrap_or_else(|| panic!("no alarm on {metric}"));
        let p = &alarm["Properties"];
        assert_eq!(p["Namespace"], metrics::NAMESPACE);
        assert_eq!(p["Dimensions"][0]["Name"], "Environment", "{metric}");
        assert_eq!(
            tagged(&p["Dimensions"][0]["Value"]).1,
            "String(\"Environment\")"
        );
        if metric == metrics::WEBHOOK_SIGNATURE_REJECTED {
            assert_eq!(p["Dimensions"][1]["Value"], "payout-webhook", "{metric}");
        }
    }
    let heartbeat = alarms(&t)
        .into_iter()
        .find(|r| r["Properties"]["MetricName"] == metrics::RECONCILE_RUN)
        .unwrap();
    assert_eq!(heartbeat["Properties"]["TreatMissingData"], "breaching");
    assert_eq!(heartbeat["Properties"]["Period"], 1800);
    let rate = &resource(&t, "UnconfirmedRateAlarm")["Metrics"];
    let named: Vec<&str> = rate
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m["MetricStat"]["Metric"]["MetricName"].as_str())
        .collect();
    assert_eq!(
        named,
        [metrics::PAYOUT_UNCONFIRMED, metrics::PAYOUT_SUBMITTED]
    );
    let routes: Vec<(String, String)> = t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::ApiGatewayV2::Route")
        .map(|r| {
            (
                r["Properties"]["RouteKey"].as_str().unwrap().to_owned(),
                r["Properties"]["AuthorizationType"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    for expected in [
        ("POST /payouts", "AWS_IAM"),
        ("GET /payouts/{tradeNo}", "AWS_IAM"),
        ("POST /vexora/notify", "NONE"),
    ] {
        assert!(
            routes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{routes:?}"
        );
    }
}

/// The dimension sets (names) the template's alarms and dashboard select each of our metrics on.
fn selected_dimensions(t: &Value) -> BTreeSet<(String, Vec<String>)> {
    let mut out = BTreeSet::new();
    let mut add = |metric: &Value, dimensions: &Value| {
        if let Some(name) = metric.as_str() {
            let names = dimensions
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|d| d["Name"].as_str().unwrap().to_owned())
                .collect();
            out.insert((name.to_owned(), names));
        }
    };
    for alarm in alarms(t) {
        let p = &alarm["Properties"];
        if p["Namespace"] == metrics::NAMESPACE {
            add(&p["MetricName"], &p["Dimensions"]);
        }
        for m in p["Metrics"].as_sequence().into_iter().flatten() {
            let metric = &m["MetricStat"]["Metric"];
            if metric["Namespace"] == metrics::NAMESPACE {
                add(&metric["MetricName"], &metric["Dimensions"]);
            }
        }
    }
    // The dashboard's rows: [namespace, name, dimension, value, ...], "." repeating the row above.
    let Value::Tagged(body) = &resource(t, "Dashboard")["DashboardBody"] else {
        panic!("the dashboard's body is a !Sub");
    };
    let mut plain = String::new();
    let mut rest = body.value.as_str().unwrap();
    while let Some(start) = rest.find("${") {
        plain.push_str(&rest[..start]);
        plain.push('X');
        rest = &rest[start + rest[start..].find('}').unwrap() + 1..];
    }
    plain.push_str(rest);
    let dashboard: serde_json::Value = serde_json::from_str(&plain).unwrap();
    for widget in dashboard["widgets"].as_array().unwrap() {
        let mut previous: Vec<String> = Vec::new();
        for row in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let cells: Vec<String> = row
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .enumerate()
                .map(|(i, c)| if c == "." { previous[i].clone() } else { c })
                .collect();
            if cells[0] == metrics::NAMESPACE {
                let names = cells[2..].iter().step_by(2).cloned().collect();
                out.insert((cells[1].clone(), names));
            }
            previous = cells;
        }
    }
    out
}

#[test]
fn each_metric_is_published_under_exactly_the_dimensions_something_selects() {
    // Every dimension set is a custom metric billed each month: publish a metric by
    // `Environment` alone unless an alarm or the dashboard selects it by more.
    let t = template();
    let selected = selected_dimensions(&t);
    for (metric, names) in &selected {
        assert!(
            metrics::ALL.contains(&metric.as_str()),
            "the template selects {metric}, which no code emits"
        );
        let emitted: Vec<Vec<String>> = metrics::dimensions(metric)
            .iter()
            .map(|set| set.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        assert!(
            emitted.contains(names),
            "{metric} selected by {names:?}, emitted by {emitted:?}"
        );
    }
    for metric in metrics::ALL {
        for set in metrics::dimensions(metric) {
            let set: Vec<String> = set.iter().map(|s| (*s).to_owned()).collect();
            assert!(
                set == ["Environment"] || selected.contains(&(metric.to_owned(), set.clone())),
                "{metric} is published by {set:?}, which nothing selects (a metric billed for nothing)"
            );
        }
    }
}

fn alarms(t: &Value) -> Vec<&Value> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .collect()
}

#[test]
fn every_alarm_reaches_the_stacks_topic_when_it_fires_and_when_it_clears() {
    let t = template();
    let all = alarms(&t);
    assert!(all.len() >= 14, "{}", all.len());
    for alarm in all {
        // A version's own alarm, new with each deploy, tells only when it fires.
        let fresh_each_deploy = alarm["Properties"].get("AlarmName").is_some();
        for actions in ["AlarmActions", "OKActions"] {
            if fresh_each_deploy && actions == "OKActions" {
                assert!(alarm["Properties"].get("OKActions").is_none());
                continue;
            }
            let action = &alarm["Properties"][actions][0];
            assert_eq!(
                tagged(action),
                ("!Ref".into(), "String(\"AlarmTopic\")".into())
            );
        }
    }
    assert_eq!(t["Resources"]["AlarmTopic"]["Type"], "AWS::SNS::Topic");
    let subscription = resource(&t, "AlarmSubscription");
    assert_eq!(subscription["Protocol"], "email");
    assert!(tagged(&subscription["Endpoint"]).1.contains("AlarmEmail"));
    for (namespace, metric) in [
        ("AWS/ApiGateway", "5xx"),
        ("AWS/ApiGateway", "Latency"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    ] {
        assert!(
            alarms(&t)
                .iter()
                .any(|a| a["Properties"]["Namespace"] == namespace
                    && a["Properties"]["MetricName"] == metric),
            "no alarm on {namespace} {metric}"
        );
    }
    assert_eq!(
        t["Resources"]["Dashboard"]["Type"],
        "AWS::CloudWatch::Dashboard"
    );
}

#[test]
fn production_refuses_the_sandbox_an_empty_alarm_target_and_a_missing_secret() {
    let t = template();
    let rule = &t["Rules"]["ProductionIsSafe"];
    assert!(tagged(&rule["RuleCondition"]).1.contains("prod"));
    let assertions: Vec<String> = rule["Assertions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| tagged(&a["Assert"]).1)
        .collect();
    for parameter in ["VexoraBaseUrl", "AlarmEmail", "VexoraSecretArn"] {
        assert!(
            assertions.iter().any(|a| a.contains(parameter)),
            "{parameter}: {assertions:?}"
        );
    }
    assert!(assertions[0].contains("sandbox-api.vexora.com"));
}

#[test]
fn traffic_reaches_a_new_version_only_through_the_alias_and_its_deployment() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["AutoPublishAlias"], "live");
    assert!(
        tagged(&globals["DeploymentPreference"]["Type"])
            .1
            .contains("Canary10Percent5Minutes")
    );
    let prod = translated(&["Environment=prod"]);
    for (function, _) in DEPLOYED {
        let group = &prod["Resources"][format!("{function}FunctionDeploymentGroup")]["Properties"];
        let rollback = group["AlarmConfiguration"]["Fn::If"][1]["Alarms"].to_string();
        assert!(
            rollback.contains(&format!("{function}NewVersionErrorsAlarm")),
            "{function}: {rollback}"
        );
    }
    for (integration, function) in [
        ("SubmitIntegration", "SubmitPayoutFunction.Alias"),
        ("WebhookIntegration", "PayoutWebhookFunction.Alias"),
    ] {
        let uri = tagged(&resource(&t, integration)["IntegrationUri"]);
        assert_eq!(uri.0, "!Ref");
        assert!(uri.1.contains(function), "{integration}: {uri:?}");
    }
    for permission in ["SubmitInvokePermission", "WebhookInvokePermission"] {
        assert!(
            tagged(&resource(&t, permission)["FunctionName"])
                .1
                .contains(".Alias")
        );
    }
    let failures = &resource(&t, "ReconcilePayoutsFunction")["EventInvokeConfig"];
    assert_eq!(failures["DestinationConfig"]["OnFailure"]["Type"], "SQS");
    assert!(
        tagged(&failures["DestinationConfig"]["OnFailure"]["Destination"])
            .1
            .contains("ReconcileFailures")
    );
}

#[test]
fn what_an_aws_reviewer_checks_is_in_place() {
    let t = template();
    for group in [
        "SubmitPayoutLogs",
        "PayoutWebhookLogs",
        "ReconcilePayoutsLogs",
        "ApiAccessLogs",
    ] {
        assert_eq!(t["Resources"][group]["DeletionPolicy"], "Retain", "{group}");
    }
    let format = resource(&t, "HttpApiStage")["AccessLogSettings"]["Format"]
        .as_str()
        .unwrap();
    for field in [
        "$context.identity.userArn",
        "$context.requestId",
        "$context.integration.requestId",
    ] {
        assert!(format.contains(field), "{field}");
    }
    for forbidden in ["body", "querystring", "header"] {
        assert!(!format.to_lowercase().contains(forbidden), "{forbidden}");
    }
    assert!(t["Outputs"].get("ApiId").is_some());
    let policy = &resource(&t, "MerchantInvokePolicy")["PolicyDocument"]["Statement"][0];
    assert_eq!(policy["Action"], "execute-api:Invoke");
    let routes: Vec<String> = policy["Resource"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| tagged(r).1)
        .collect();
    assert!(routes[0].ends_with("/*/POST/payouts\")"), "{routes:?}");
    assert!(routes[1].ends_with("/*/GET/payouts/*\")"), "{routes:?}");
    assert!(t["Outputs"].get("MerchantInvokePolicyArn").is_some());
}

/// The AWS managed policies the stack's roles carry, as AWS publishes them. Any other managed
/// policy (SAM's SQS or stream event, which grant on every queue or stream) fails the test.
fn managed_policy(arn: &str) -> Vec<serde_json::Value> {
    let name = arn.rsplit('/').next().unwrap();
    let document = match name {
        "AWSLambdaBasicExecutionRole" => serde_json::json!([{"Effect": "Allow", "Resource": "*",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]}]),
        "AWSXrayWriteOnlyAccess" => serde_json::json!([{"Effect": "Allow", "Resource": "*",
            "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"]}]),
        "AWSCodeDeployRoleForLambda" => serde_json::json!([
            {"Effect": "Allow", "Resource": "*", "Action": ["cloudwatch:DescribeAlarms",
                "lambda:UpdateAlias", "lambda:GetAlias", "lambda:GetProvisionedConcurrencyConfig",
                "sns:Publish"]},
            {"Effect": "Allow", "Resource": "arn:aws:s3:::*/CodeDeploy/*",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"]},
            {"Effect": "Allow", "Resource": "arn:aws:lambda:*:*:function:CodeDeployHook_*",
                "Action": ["lambda:InvokeFunction"]}]),
        other => panic!("{other}: a managed policy the checks do not know (what does it grant?)"),
    };
    document.as_array().unwrap().clone()
}

/// Every statement a role of the stack has (inline and managed), resolved.
fn role_statements(stack: &iam::Stack, role: &str) -> Vec<serde_json::Value> {
    let properties = stack.resolve(&stack.template["Resources"][role]["Properties"]);
    let mut out = Vec::new();
    for policy in properties["Policies"].as_array().into_iter().flatten() {
        out.extend(iam::statements(&policy["PolicyDocument"]));
    }
    for arn in properties["ManagedPolicyArns"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.extend(managed_policy(arn.as_str().unwrap()));
    }
    out
}

/// The permissions boundary of `infra/bootstrap.yaml` as the bootstrap of `stage` creates it.
fn boundary(stage: &str) -> Vec<serde_json::Value> {
    let bootstrap: Value =
        serde_norway::from_str(include_str!("../../../infra/bootstrap.yaml")).unwrap();
    let bootstrap = iam::from_yaml(&bootstrap);
    let stack = iam::Stack::new(
        &bootstrap,
        &format!("payouts-bootstrap-{stage}"),
        &[
            ("Stage", stage),
            ("GitHubOrg", "org"),
            ("GitHubRepo", "repo"),
        ],
    );
    let document = &bootstrap["Resources"]["FunctionBoundary"]["Properties"]["PolicyDocument"];
    assert!(!document.is_null(), "a boundary in infra/bootstrap.yaml");
    iam::statements(&stack.resolve(document))
}

/// Parameters of a stack as its pipeline deploys it (prod's secret is a person's, named for
/// the stage as docs/deploying.md says, with a customer managed key).
fn deployed(environment: &str) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("Environment", environment.to_owned()),
        (
            "PermissionsBoundaryArn",
            format!(
                "arn:aws:iam::{}:policy/vexora-payouts-{environment}-boundary",
                iam::ACCOUNT
            ),
        ),
    ];
    if environment == "prod" {
        p.push(("VexoraBaseUrl", "https://api.vexora.example/japan".into()));
        p.push(("AlarmEmail", "ops@example.jp".into()));
        p.push((
            "VexoraSecretArn",
            format!(
                "arn:aws:secretsmanager:{}:{}:secret:vexora-payouts-prod-vexora-Qw3rTy",
                iam::REGION,
                iam::ACCOUNT
            ),
        ));
        p.push((
            "VexoraSecretKmsKeyArn",
            format!(
                "arn:aws:kms:{}:{}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                iam::REGION,
                iam::ACCOUNT
            ),
        ));
    }
    p
}

/// What is done with each role of a stack: the functions' code (`payout_aws::permissions`),
/// Lambda on their behalf (logs, traces, event source mappings, on-failure destinations),
/// the schedule, CodeDeploy and the PreTraffic hook.
fn requests(stack: &iam::Stack, source: &Value) -> Vec<(String, iam::Request)> {
    use iam::{Request, text};
    let r = |logical: &str, attribute: &str| text(&stack.attribute(logical, attribute));
    let table = r("PayoutsTable", "Arn");
    let stream = r("PayoutsTable", "StreamArn");
    let index = format!("{table}/index/{}", schema::UNRESOLVED_INDEX);
    // The secret every function is given (SAM merged the Globals into each function).
    let secret = text(&stack.resolve(
        &stack.template["Resources"]["SubmitPayoutFunction"]["Properties"]["Environment"]
            ["Variables"]["VEXORA_SECRET_ID"],
    ));
    let via_secrets_manager = format!("secretsmanager.{}.amazonaws.com", iam::REGION);
    let kms_key = text(&stack.reference("VexoraSecretKmsKeyArn"));
    let mut out = Vec::new();
    let role_of = |function: &str| {
        stack.template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function} has no role of the stack's"))
            .to_owned()
    };
    let function_of = |binary: &str| {
        source["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"] == binary)
            .map(|(name, _)| name.as_str().unwrap().to_owned())
            .unwrap()
    };
    let logs = |function: &str| {
        let group = text(&stack.resolve(
            &stack.template["Resources"][function]["Properties"]["LoggingConfig"]["LogGroup"],
        ));
        format!(
            "arn:aws:logs:{}:{}:log-group:{group}:log-stream:2026/12/06/[live]0123",
            iam::REGION,
            iam::ACCOUNT
        )
    };
    let mut functions: Vec<String> = permissions::ALL
        .iter()
        .map(|n| function_of(n.binary))
        .collect();
    functions.push("PreTrafficHookFunction".into());
    for function in &functions {
        let role = role_of(function);
        for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
            out.push((role.clone(), Request::new(action, &logs(function))));
        }
        for action in ["xray:PutTraceSegments", "xray:PutTelemetryRecords"] {
            out.push((role.clone(), Request::new(action, "*")));
        }
    }
    for needs in permissions::ALL {
        let role = role_of(&function_of(needs.binary));
        let on = |actions: &[&str], resource: &str, out: &mut Vec<(String, Request)>| {
            for action in actions {
                out.push((role.clone(), Request::new(action, resource)));
            }
        };
        on(needs.table, &table, &mut out);
        on(needs.index, &index, &mut out);
        on(needs.secret, &secret, &mut out);
        on(needs.bus, &r("PayoutEventsBus", "Arn"), &mut out);
        on(needs.stream, &stream, &mut out);
        on(
            needs.failure_queue,
            &r("PayoutEventFailures", "Arn"),
            &mut out,
        );
        on(needs.batch_queue, &r("BatchQueue", "Arn"), &mut out);
        if !needs.secret.is_empty() && !kms_key.is_empty() {
            out.push((
                role.clone(),
                Request::new("kms:Decrypt", &kms_key).with("kms:ViaService", &via_secrets_manager),
            ));
        }
    }
    // The reconciler's failed runs go to its on-failure destination.
    out.push((
        role_of("ReconcilePayoutsFunction"),
        Request::new("sqs:SendMessage", &r("ReconcileFailures", "Arn")),
    ));
    // The schedule invokes the reconciler's `live` alias.
    let reconciler_alias = text(&stack.reference("ReconcilePayoutsFunctionAliaslive"));
    let schedule = stack.template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Type"] == "AWS::Scheduler::Schedule")
        .unwrap()
        .1;
    let schedule_role = schedule["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap()
        .to_owned();
    out.push((
        schedule_role,
        Request::new("lambda:InvokeFunction", &reconciler_alias),
    ));
    // CodeDeploy shifts each alias and asks the hook; the hook invokes the new versions and
    // reports to its deployment group.
    let hook = text(&stack.reference("PreTrafficHookFunction"));
    out.push((
        "CodeDeployRole".into(),
        Request::new(
            "lambda:InvokeFunction",
            &format!(
                "arn:aws:lambda:{}:{}:function:{hook}",
                iam::REGION,
                iam::ACCOUNT
            ),
        ),
    ));
    out.push((
        "CodeDeployRole".into(),
        Request::new("cloudwatch:DescribeAlarms", "*"),
    ));
    let application = text(&stack.reference("ServerlessDeploymentApplication"));
    for (name, resource) in stack.template["Resources"].as_object().unwrap() {
        if resource["Type"] == "AWS::Lambda::Alias" && !name.starts_with("PreTrafficHook") {
            let alias = text(&stack.reference(name));
            for action in ["lambda:GetAlias", "lambda:UpdateAlias"] {
                out.push(("CodeDeployRole".into(), Request::new(action, &alias)));
            }
        }
        if resource["Type"] == "AWS::CodeDeploy::DeploymentGroup" {
            let group = text(&stack.reference(name));
            out.push((
                role_of("PreTrafficHookFunction"),
                Request::new(
                    "codedeploy:PutLifecycleEventHookExecutionStatus",
                    &format!(
                        "arn:aws:codedeploy:{}:{}:deploymentgroup:{application}/{group}",
                        iam::REGION,
                        iam::ACCOUNT
                    ),
                ),
            ));
        }
        if resource["Type"] == "AWS::Lambda::Version"
            && [
                "ReconcilePayouts",
                "PublishPayoutEvents",
                "SubmitBatchItems",
            ]
            .iter()
            .any(|f| name.starts_with(&format!("{f}FunctionVersion")))
        {
            out.push((
                role_of("PreTrafficHookFunction"),
                Request::new("lambda:InvokeFunction", &text(&stack.reference(name))),
            ));
        }
    }
    out
}

#[test]
fn every_action_the_code_performs_is_allowed_by_its_role_and_the_boundary() {
    // Evaluated over the template as SAM translates it (the managed policies SAM attaches
    // included), in every environment, resources and conditions included: an action the code
    // needs that the role or the boundary lacks answers AccessDenied in AWS only (issue 23:
    // BatchGetItem and the boundary).
    let source = template();
    let mut evaluated = 0;
    for environment in ["dev", "staging", "prod"] {
        let parameters = deployed(environment);
        let arguments: Vec<String> = parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        let t = translated(&arguments);
        let parameters: Vec<(&str, &str)> =
            parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let stack = iam::Stack::new(&t, &format!("vexora-payouts-{environment}"), &parameters);
        let boundary = boundary(environment);
        // What another stage's boundary grants on resources it names (not on `*`, which the
        // services without resource-level permissions need: traces, ListStreams, kms:Decrypt
        // through Secrets Manager, which another stage's secret policy does not reach).
        let others: Vec<(&str, Vec<serde_json::Value>)> = ["dev", "staging", "prod"]
            .into_iter()
            .filter(|other| *other != environment)
            .map(|other| {
                let named = self::boundary(other)
                    .into_iter()
                    .filter(|s| s["Resource"] != "*" && s["Resource"] != serde_json::json!(["*"]))
                    .collect();
                (other, named)
            })
            .collect();
        let requests = requests(&stack, &source);
        assert!(requests.len() > 60, "{}", requests.len());
        for (role, request) in &requests {
            let granted = role_statements(&stack, role);
            assert!(
                iam::allows(&granted, request),
                "{environment}: {role} does not allow {request:?}"
            );
            assert!(
                iam::allows(&boundary, request),
                "{environment}: {role} needs {request:?}, which the permissions boundary (infra/bootstrap.yaml) does not allow"
            );
            evaluated += 1;
            // Stages cannot touch each other: another stage's boundary refuses this stage's
            // resources.
            for (other, named) in &others {
                assert!(
                    !iam::allows(named, request),
                    "{other}'s boundary allows {environment}'s {request:?}"
                );
            }
        }
    }
    assert!(evaluated > 180, "{evaluated}");
}

#[test]
fn the_merchant_policy_grants_exactly_the_iam_routes_and_the_readme_says_which() {
    let t = template();
    let mut routes: Vec<String> = t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| {
            r["Type"] == "AWS::ApiGatewayV2::Route"
                && r["Properties"]["AuthorizationType"] == "AWS_IAM"
        })
        .map(|r| {
            let key = r["Properties"]["RouteKey"].as_str().unwrap();
            let (method, path) = key.split_once(' ').unwrap();
            // execute-api ARNs name a path parameter by `*`.
            let path: Vec<&str> = path
                .split('/')
                .map(|part| if part.starts_with('{') { "*" } else { part })
                .collect();
            format!("/*/{method}{}", path.join("/"))
        })
        .collect();
    let mut granted: Vec<String> =
        resource(&t, "MerchantInvokePolicy")["PolicyDocument"]["Statement"][0]["Resource"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| {
                let text = tagged(r).1;
                let (_, route) = text.split_once("${HttpApi}").unwrap();
                route.trim_end_matches("\")").to_owned()
            })
            .collect();
    routes.sort();
    granted.sort();
    assert_eq!(routes, granted);
    // The README and the docs it moved its sections to: the routes are counted in the deploy
    // guide and the API reference, the dashboard is named with the alarms.
    let readme = [
        include_str!("../../../README.md"),
        include_str!("../../../docs/deploying.md"),
        include_str!("../../../docs/api.md"),
        include_str!("../../../docs/operations.md"),
    ]
    .concat();
    assert!(
        !readme.contains("on the two routes") && !readme.contains("allows exactly `POST /payouts`"),
        "the docs count the merchant routes wrongly"
    );
    let dashboard = tagged(&resource(&t, "Dashboard")["DashboardName"]);
    assert_eq!(
        dashboard,
        ("!Ref".into(), "String(\"AWS::StackName\")".into())
    );
    assert!(!readme.contains("dashboard `<stack>-payouts`"));
}

#[test]
fn queues_use_sqs_managed_encryption_and_every_change_of_a_function_reaches_live() {
    let t = template();
    let queues: Vec<_> = t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::SQS::Queue")
        .collect();
    assert!(queues.len() >= 4, "{}", queues.len());
    for (name, queue) in queues {
        // No KMS key: nothing for the permissions boundary to grant, nothing to rotate.
        assert_eq!(
            queue["Properties"]["SqsManagedSseEnabled"], true,
            "{name:?}"
        );
        assert!(queue["Properties"]["KmsMasterKeyId"].is_null(), "{name:?}");
    }
    assert_eq!(t["Globals"]["Function"]["AutoPublishAlias"], "live");
    let functions: Vec<_> = t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .collect();
    // The functions, and the PreTraffic hook.
    assert_eq!(functions.len(), permissions::ALL.len() + 1);
    for (name, function) in functions {
        assert_eq!(
            function["Properties"]["AutoPublishAliasAllProperties"], true,
            "{name:?}: a Timeout, Runtime or LoggingConfig change alone must publish a version"
        );
    }
    for parameter in ["ThrottleRateLimit", "ThrottleBurstLimit"] {
        assert!(
            t["Parameters"][parameter]["MinValue"].as_u64() >= Some(1),
            "{parameter}"
        );
    }
    for parameter in ["VexoraSecretKmsKeyArn", "ReconcileSchedule"] {
        assert!(
            t["Parameters"][parameter]["AllowedPattern"].is_string(),
            "{parameter}"
        );
    }
}
