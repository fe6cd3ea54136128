//! The SAM template agrees with the code: the table's keys and index, the environment
//! variables, each function's IAM actions, the binaries, the timeouts and the alarm metrics.

use std::collections::BTreeSet;

use payout_core::{budget, config, metrics, permissions, store::schema};
use serde_norway::Value;

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
        ("POST /payouts", budget::submit(vexora_max)),
        ("GET ?refresh=true", budget::refresh(vexora_max)),
    ] {
        assert!(
            worst + budget::MARGIN <= submit,
            "{path}: {worst:?} in {submit:?}"
        );
    }
    // ... and the submit ends before its PENDING order counts as abandoned.
    let abandoned_at_least = payout_core::order::pending_abandoned_after(
        std::time::Duration::from_millis(vexora_min_ms),
    );
    assert!((submit.as_secs() as i64) < abandoned_at_least.num_seconds());
    // Vexora waits 10 s for the webhook's OK.
    let webhook = seconds(timeout("PayoutWebhookFunction"));
    assert!(webhook < seconds(10));
    assert!(
        budget::webhook() + budget::MARGIN <= webhook,
        "{:?}",
        budget::webhook()
    );
    // The reconciler stops at its deadline; one order still fits many times over.
    let reconcile = seconds(timeout("ReconcilePayoutsFunction"));
    assert!(budget::reconcile_one(vexora_max) * 10 <= reconcile);
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
    assert!(payout_core::secrets::VexoraCredentials::from_json(generated_value).is_err());
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

#[test]
fn prods_canary_is_rolled_back_by_errors_5xx_and_unconfirmed_and_nothing_else_blocks_deploys() {
    let t = translated(&["Environment=prod"]);
    let group = &t["Resources"]["SubmitPayoutFunctionDeploymentGroup"]["Properties"];
    let alarms = group["AlarmConfiguration"]["Fn::If"][1]["Alarms"].to_string();
    for alarm in [
        "SubmitPayoutErrorsAlarm",
        "ApiServerErrorsAlarm",
        "UnconfirmedRateAlarm",
    ] {
        assert!(alarms.contains(alarm), "{alarm} in {alarms}");
    }
    assert_eq!(group["AlarmConfiguration"]["Fn::If"][0], "IsProd");
    assert_eq!(
        group["AlarmConfiguration"]["Fn::If"][2],
        serde_json::json!({}),
        "outside prod no alarm gates a deploy"
    );
    assert_eq!(group["ServiceRoleArn"]["Fn::GetAtt"][0], "CodeDeployRole");
}

#[test]
fn the_alarms_watch_the_metrics_the_code_emits() {
    let t = template();
    // Every alarm on our own metrics is scoped to the stack's environment (dev and prod in one
    // account never trip each other's), by function where the metric is one function's.
    let emitted = [
        (metrics::WEBHOOK_SIGNATURE_REJECTED, Some("payout-webhook")),
        (metrics::PAYOUT_ANOMALY, None),
        (metrics::STUCK_ORDERS, None),
        (metrics::VEXORA_UNAVAILABLE, None),
        (metrics::RECONCILE_RUN, None),
    ];
    for (metric, function) in emitted {
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
        match function {
            Some(f) => assert_eq!(p["Dimensions"][1]["Value"], f, "{metric}"),
            None => assert!(
                p["Dimensions"].as_sequence().unwrap().len() == 1,
                "{metric}"
            ),
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
        for actions in ["AlarmActions", "OKActions"] {
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
    for (function, alarm) in [
        ("SubmitPayoutFunction", "SubmitPayoutErrorsAlarm"),
        ("PayoutWebhookFunction", "PayoutWebhookErrorsAlarm"),
        ("ReconcilePayoutsFunction", "ReconcilePayoutsErrorsAlarm"),
    ] {
        let group = &prod["Resources"][format!("{function}DeploymentGroup")]["Properties"];
        let rollback = group["AlarmConfiguration"]["Fn::If"][1]["Alarms"].to_string();
        assert!(rollback.contains(alarm), "{function}: {rollback}");
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

/// What the AWS managed policies that SAM attaches to function roles allow, as AWS publishes them.
const MANAGED_POLICIES: [(&str, &[&str]); 4] = [
    (
        "AWSLambdaBasicExecutionRole",
        &[
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ],
    ),
    (
        "AWSLambdaSQSQueueExecutionRole",
        &[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ],
    ),
    (
        "AWSLambdaDynamoDBExecutionRole",
        &[
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ],
    ),
    (
        "AWSXrayWriteOnlyAccess",
        &[
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:GetSamplingStatisticSummaries",
        ],
    ),
];

/// Whether an IAM action pattern (`dynamodb:*`, `sqs:Get*`) covers `action` (IAM compares
/// actions without regard to case).
fn covers(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match pattern.split_once('*') {
        None => pattern == action,
        Some((head, tail)) => {
            action.len() >= head.len() + tail.len()
                && action.starts_with(head)
                && action.ends_with(tail)
        }
    }
}

/// The actions of a policy document's `Allow` statements (an `Fn::If` taken on its true side).
fn allowed(document: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for statement in document["Statement"].as_array().into_iter().flatten() {
        let statement = match statement.get("Fn::If") {
            Some(branches) => &branches[1],
            None => statement,
        };
        if statement["Effect"] != "Allow" {
            continue;
        }
        match &statement["Action"] {
            serde_json::Value::String(a) => out.push(a.clone()),
            serde_json::Value::Array(list) => {
                out.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)));
            }
            _ => {}
        }
    }
    out
}

/// The actions the permissions boundary (infra/bootstrap.yaml) lets any stack role have.
fn boundary() -> Vec<String> {
    let bootstrap: Value =
        serde_norway::from_str(include_str!("../../../infra/bootstrap.yaml")).unwrap();
    let statements =
        bootstrap["Resources"]["FunctionBoundary"]["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .expect("a boundary in infra/bootstrap.yaml");
    statements
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            other => texts(other),
        })
        .collect()
}

#[test]
fn every_action_the_code_performs_is_allowed_by_its_role_and_the_boundary() {
    // Evaluated over the template as SAM translates it (the managed policies SAM attaches
    // included), in every environment: an action the code needs that the role or the boundary
    // lacks answers AccessDenied in AWS only (issue 23: BatchGetItem and the boundary).
    let boundary = boundary();
    let source = template();
    for environment in ["dev", "staging", "prod"] {
        let t = translated(&[&format!("Environment={environment}")]);
        for needs in permissions::ALL {
            let (name, _) = source["Resources"]
                .as_mapping()
                .unwrap()
                .iter()
                .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"] == needs.binary)
                .unwrap();
            let name = name.as_str().unwrap();
            let role_name = t["Resources"][name]["Properties"]["Role"]["Fn::GetAtt"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{environment}: {name} has no role of the stack's"));
            let role = &t["Resources"][role_name]["Properties"];
            let mut granted: Vec<String> = role["Policies"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|p| allowed(&p["PolicyDocument"]))
                .collect();
            for arn in role["ManagedPolicyArns"].as_array().into_iter().flatten() {
                let arn = arn.as_str().unwrap_or_else(|| panic!("{role_name}: {arn}"));
                let (_, actions) = MANAGED_POLICIES
                    .iter()
                    .find(|(policy, _)| arn.ends_with(&format!("/{policy}")))
                    .unwrap_or_else(|| panic!("{role_name}: unknown managed policy {arn}"));
                granted.extend(actions.iter().map(|a| (*a).to_owned()));
            }
            for action in permissions::performed(&needs) {
                assert!(
                    granted.iter().any(|g| covers(g, action)),
                    "{environment}: {name}'s role lacks {action}"
                );
                assert!(
                    boundary.iter().any(|b| covers(b, action)),
                    "{environment}: {name} needs {action}, which the permissions boundary (infra/bootstrap.yaml) does not allow"
                );
            }
        }
    }
}

#[test]
fn an_action_pattern_covers_what_iam_would() {
    assert!(covers("dynamodb:*", "dynamodb:BatchGetItem"));
    assert!(covers("sqs:Get*", "sqs:GetQueueAttributes"));
    assert!(covers("DynamoDB:getitem", "dynamodb:GetItem"));
    assert!(!covers("dynamodb:GetItem", "dynamodb:BatchGetItem"));
    assert!(!covers("dynamodb:Get*", "dynamodb:BatchGetItem"));
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
    assert_eq!(functions.len(), permissions::ALL.len());
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
