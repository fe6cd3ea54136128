//! What CloudFormation and IAM would make of a template, for the template checks: the intrinsic
//! functions resolved for one stack (physical names as CloudFormation generates them:
//! `<stack>-<LogicalId>-<random>`), and IAM's evaluation of a request (action, resource,
//! request context) against policy statements: action and resource wildcards, the condition
//! operators our policies use, an explicit `Deny` winning. Only what a real account does not
//! add: service control policies, quotas and IAM's own surprises are for a real deploy.

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub const REGION: &str = "ap-northeast-1";
pub const ACCOUNT: &str = "123456789012";
/// The random suffix CloudFormation appends to a generated name.
const RANDOM: &str = "AbC123dEf456";

/// One stack: its template (CloudFormation JSON, after the SAM transform), name and parameters.
pub struct Stack<'a> {
    pub template: &'a Value,
    pub name: String,
    parameters: BTreeMap<String, String>,
}

impl<'a> Stack<'a> {
    /// `parameters` on top of the template's defaults.
    pub fn new(template: &'a Value, name: &str, parameters: &[(&str, &str)]) -> Self {
        let mut values = BTreeMap::new();
        for (key, p) in template["Parameters"].as_object().into_iter().flatten() {
            if let Some(default) = p.get("Default") {
                values.insert(key.clone(), text(default));
            }
        }
        for (key, value) in parameters {
            values.insert((*key).to_owned(), (*value).to_owned());
        }
        Stack {
            template,
            name: name.to_owned(),
            parameters: values,
        }
    }

    fn resource(&self, logical: &str) -> &Value {
        let r = &self.template["Resources"][logical];
        assert!(!r.is_null(), "no resource {logical}");
        r
    }

    pub fn condition(&self, name: &str) -> bool {
        let c = &self.template["Conditions"][name];
        assert!(!c.is_null(), "no condition {name}");
        self.truth(c)
    }

    fn truth(&self, c: &Value) -> bool {
        let (function, args) = single(c);
        match function {
            "Fn::Equals" => self.resolve(&args[0]) == self.resolve(&args[1]),
            "Fn::Not" => !self.truth(&args[0]),
            "Fn::Or" => args.as_array().unwrap().iter().any(|a| self.truth(a)),
            "Fn::And" => args.as_array().unwrap().iter().all(|a| self.truth(a)),
            "Condition" => self.condition(args.as_str().unwrap()),
            other => panic!("condition function {other}"),
        }
    }

    /// The generated physical name of a resource, shortened as CloudFormation shortens it.
    fn generated(&self, logical: &str) -> String {
        let kind = self.resource(logical)["Type"].as_str().unwrap_or_default();
        generated_name(&self.name, logical, name_limit(kind))
    }

    /// A property naming the resource, resolved, or the generated name.
    fn named(&self, logical: &str, property: &str) -> String {
        match self.resource(logical)["Properties"].get(property) {
            Some(v) => text(&self.resolve(v)),
            None => self.generated(logical),
        }
    }

    fn arn(&self, service: &str, rest: &str) -> String {
        format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}")
    }

    /// What `Ref` gives for a parameter, pseudo parameter or resource.
    pub fn reference(&self, name: &str) -> Value {
        match name {
            "AWS::Partition" => return json!("aws"),
            "AWS::Region" => return json!(REGION),
            "AWS::AccountId" => return json!(ACCOUNT),
            "AWS::StackName" => return json!(self.name),
            "AWS::URLSuffix" => return json!("amazonaws.com"),
            "AWS::NoValue" => return Value::Null,
            _ => {}
        }
        if let Some(value) = self.parameters.get(name) {
            return json!(value);
        }
        let r = self.resource(name);
        let p = &r["Properties"];
        json!(match r["Type"].as_str().unwrap() {
            "AWS::DynamoDB::Table" => self.named(name, "TableName"),
            "AWS::SQS::Queue" => format!(
                "https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{}",
                self.named(name, "QueueName")
            ),
            "AWS::Events::EventBus" => self.named(name, "Name"),
            "AWS::SecretsManager::Secret" => self.arn(
                "secretsmanager",
                &format!("secret:{}-AbCdEf", self.named(name, "Name")),
            ),
            "AWS::Lambda::Function" => self.named(name, "FunctionName"),
            "AWS::Lambda::Version" => format!("{}:1", self.function_arn(&p["FunctionName"])),
            "AWS::Lambda::Alias" => format!(
                "{}:{}",
                self.function_arn(&p["FunctionName"]),
                text(&p["Name"])
            ),
            "AWS::Logs::LogGroup" => self.named(name, "LogGroupName"),
            "AWS::SNS::Topic" => self.arn("sns", &self.named(name, "TopicName")),
            "AWS::CloudWatch::Alarm" => self.named(name, "AlarmName"),
            "AWS::Events::Archive" => self.named(name, "ArchiveName"),
            "AWS::ApiGatewayV2::Api" => "a1b2c3d4e5".to_owned(),
            "AWS::IAM::ManagedPolicy" => format!(
                "arn:aws:iam::{ACCOUNT}:policy/{}",
                self.named(name, "ManagedPolicyName")
            ),
            _ => self.generated(name),
        })
    }

    fn function_arn(&self, function: &Value) -> String {
        let name = text(&self.resolve(function));
        if name.starts_with("arn:") {
            name
        } else {
            self.arn("lambda", &format!("function:{name}"))
        }
    }

    /// What `Fn::GetAtt` gives.
    pub fn attribute(&self, logical: &str, attribute: &str) -> Value {
        let r = self.resource(logical);
        let reference = text(&self.reference(logical));
        json!(match (r["Type"].as_str().unwrap(), attribute) {
            ("AWS::DynamoDB::Table", "Arn") => self.arn("dynamodb", &format!("table/{reference}")),
            ("AWS::DynamoDB::Table", "StreamArn") => self.arn(
                "dynamodb",
                &format!("table/{reference}/stream/2026-12-06T00:00:00.000"),
            ),
            ("AWS::SQS::Queue", "Arn") => {
                self.arn("sqs", &self.named(logical, "QueueName"))
            }
            ("AWS::SQS::Queue", "QueueName") => self.named(logical, "QueueName"),
            ("AWS::Events::EventBus", "Arn") => {
                self.arn("events", &format!("event-bus/{reference}"))
            }
            ("AWS::Lambda::Function", "Arn") =>
                self.arn("lambda", &format!("function:{reference}")),
            ("AWS::Lambda::Version", "Version") => "1".to_owned(),
            ("AWS::Logs::LogGroup", "Arn") => {
                self.arn("logs", &format!("log-group:{reference}:*"))
            }
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT}:role/{reference}"),
            ("AWS::SNS::Topic", "TopicArn") => reference,
            (kind, attribute) => panic!("GetAtt {logical}.{attribute} of a {kind}"),
        })
    }

    /// A value with every intrinsic function resolved; `AWS::NoValue` removes list items.
    pub fn resolve(&self, v: &Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.resolve(i))
                    .filter(|i| !i.is_null())
                    .collect(),
            ),
            Value::Object(map) if map.len() == 1 => {
                let (key, args) = map.iter().next().unwrap();
                match key.as_str() {
                    "Ref" => self.reference(args.as_str().unwrap()),
                    "Fn::GetAtt" => {
                        let (logical, attribute) = match args {
                            Value::String(s) => s.split_once('.').unwrap(),
                            _ => (args[0].as_str().unwrap(), args[1].as_str().unwrap()),
                        };
                        self.attribute(logical, attribute)
                    }
                    "Fn::If" => {
                        let branch = if self.condition(args[0].as_str().unwrap()) {
                            &args[1]
                        } else {
                            &args[2]
                        };
                        self.resolve(branch)
                    }
                    "Fn::Sub" => json!(self.substitute(args)),
                    "Fn::Join" => {
                        let parts: Vec<String> = self
                            .resolve(&args[1])
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(text)
                            .collect();
                        json!(parts.join(args[0].as_str().unwrap()))
                    }
                    "Fn::Select" => {
                        let index = text(&self.resolve(&args[0])).parse::<usize>().unwrap();
                        self.resolve(&args[1])[index].clone()
                    }
                    "Fn::Split" => {
                        let whole = text(&self.resolve(&args[1]));
                        json!(whole.split(args[0].as_str().unwrap()).collect::<Vec<_>>())
                    }
                    _ => Value::Object(
                        map.iter()
                            .map(|(k, v)| (k.clone(), self.resolve(v)))
                            .collect(),
                    ),
                }
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .filter(|(_, v)| !v.is_null())
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn substitute(&self, args: &Value) -> String {
        let (template, variables) = match args {
            Value::String(s) => (s.as_str(), None),
            _ => (args[0].as_str().unwrap(), args.get(1)),
        };
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').unwrap() + start;
            let name = &rest[start + 2..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = variables.and_then(|vars| vars.get(name)) {
                out.push_str(&text(&self.resolve(v)));
            } else if let Some((logical, attribute)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                out.push_str(&text(&self.attribute(logical, attribute)));
            } else {
                out.push_str(&text(&self.reference(name)));
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// The longest name a resource of `kind` may have (255 where no shorter limit applies).
pub fn name_limit(kind: &str) -> usize {
    match kind {
        "AWS::Events::Archive" => 48,
        "AWS::Lambda::Function" | "AWS::IAM::Role" => 64,
        "AWS::SQS::Queue" => 80,
        "AWS::CodeDeploy::Application" | "AWS::CodeDeploy::DeploymentGroup" => 100,
        "AWS::IAM::ManagedPolicy" => 128,
        "AWS::SNS::Topic" => 256,
        "AWS::Logs::LogGroup" => 512,
        _ => 255,
    }
}

/// The name CloudFormation generates: `<stack>-<LogicalId>-<12 random>`, and past `limit` the
/// 13 characters of the random tail kept, the rest split between the stack's name and the
/// logical id around one more hyphen, the stack's half rounding up (AWS documents no rule;
/// this one reproduces names CloudFormation produced: KensioSoftware/yulin#1113).
pub fn generated_name(stack: &str, logical: &str, limit: usize) -> String {
    let whole = format!("{stack}-{logical}-{RANDOM}");
    if whole.len() <= limit {
        return whole;
    }
    let left = limit - RANDOM.len() - 2;
    let stack_part = left.div_ceil(2).min(stack.len());
    let logical_part = (left - stack_part).min(logical.len());
    format!(
        "{}-{}-{RANDOM}",
        &stack[..stack_part],
        &logical[..logical_part]
    )
}

fn single(v: &Value) -> (&str, &Value) {
    let map = v.as_object().unwrap();
    assert_eq!(map.len(), 1, "{v}");
    let (k, a) = map.iter().next().unwrap();
    (k.as_str(), a)
}

/// A resolved scalar as text.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A CloudFormation YAML value (short-form tags: `!Sub`, `!Ref`, `!GetAtt`, `!If` ...) as the
/// JSON CloudFormation reads.
pub fn from_yaml(v: &serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => json!(b),
        Y::Number(n) => serde_json::to_value(n).unwrap(),
        Y::String(s) => json!(s),
        Y::Sequence(items) => Value::Array(items.iter().map(from_yaml).collect()),
        Y::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), from_yaml(v)))
                .collect(),
        ),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = from_yaml(&t.value);
            match tag {
                "Ref" | "Condition" => json!({ tag: inner }),
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (a, b) = s.split_once('.').unwrap();
                        json!({"Fn::GetAtt": [a, b]})
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                other => json!({ format!("Fn::{other}"): inner }),
            }
        }
    }
}

/// An IAM wildcard match (`*` any run of characters, `?` one), case-sensitive as for resources.
pub fn glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// One request as IAM sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: Vec<(String, String)>,
}

impl Request {
    pub fn new(action: &str, resource: &str) -> Self {
        Request {
            action: action.to_owned(),
            resource: resource.to_owned(),
            context: Vec::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context.push((key.to_owned(), value.to_owned()));
        self
    }
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::Null => Vec::new(),
        other => vec![text(other)],
    }
}

fn applies(statement: &Value, request: &Request) -> bool {
    let action = request.action.to_ascii_lowercase();
    let actions = list(&statement["Action"]);
    if !actions
        .iter()
        .any(|a| glob(&a.to_ascii_lowercase(), &action))
    {
        return false;
    }
    if !list(&statement["Resource"])
        .iter()
        .any(|r| glob(r, &request.resource))
    {
        return false;
    }
    for (operator, tests) in statement["Condition"].as_object().into_iter().flatten() {
        for (key, expected) in tests.as_object().unwrap() {
            let Some((_, actual)) = request.context.iter().find(|(k, _)| k == key) else {
                return false;
            };
            let expected = list(expected);
            let met = match operator.as_str() {
                "StringEquals" | "ArnEquals" | "Bool" => expected.iter().any(|e| e == actual),
                "StringLike" | "ArnLike" => expected.iter().any(|e| glob(e, actual)),
                other => panic!("condition operator {other} is not modelled"),
            };
            if !met {
                return false;
            }
        }
    }
    true
}

/// Whether `statements` (resolved) allow `request`: some Allow applies and no Deny does.
pub fn allows(statements: &[Value], request: &Request) -> bool {
    let applying = |effect: &str| {
        statements
            .iter()
            .filter(|s| s["Effect"] == effect)
            .any(|s| applies(s, request))
    };
    applying("Allow") && !applying("Deny")
}

/// The statements of a policy document (resolved).
pub fn statements(document: &Value) -> Vec<Value> {
    match &document["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

#[test]
fn a_generated_name_is_shortened_as_cloudformation_shortens_it() {
    // The two names of KensioSoftware/yulin#1113 that were shortened (the random tails ours).
    assert_eq!(
        generated_name(
            "ChineseboostAnalyticsStack",
            "RainlyticsSummariesJobFunction",
            64
        ),
        "ChineseboostAnalyticsStac-RainlyticsSummariesJobFun-AbC123dEf456"
    );
    assert_eq!(generated_name("s", "L", 64), "s-L-AbC123dEf456");
    assert_eq!(
        generated_name(
            "vexora-payouts-staging",
            "PublishPayoutEventsFunctionRole",
            64
        )
        .len(),
        64
    );
}

#[test]
fn a_wildcard_matches_as_iam_does() {
    assert!(glob("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y"));
    assert!(glob("function:p-dev-*:*", "function:p-dev-X-1:7"));
    assert!(!glob("function:p-dev-*:*", "function:p-dev-X-1"));
    assert!(!glob("table/p-dev-*", "table/p-prod-T"));
    assert!(glob("a?c", "abc"));
    assert!(glob("*", ""));
}
