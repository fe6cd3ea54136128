"""Translates infra/template.yaml with the pinned SAM translator, as CloudFormation's
AWS::Serverless transform does at deploy time, and prints the result as JSON. `sam validate`
does not catch everything the transform refuses (e.g. the shape of DeploymentPreference alarms);
this does. Usage: sam_translate.py <template> [Parameter=Value ...]"""

import json
import os
import sys

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

# What `sam package` does to CodeUri before the transform sees it.
PACKAGED_CODE = "s3://artefacts/function.zip"
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for name, path in [
        ("AWSLambdaBasicExecutionRole", "service-role/"),
        ("AWSLambdaDynamoDBExecutionRole", "service-role/"),
        ("AWSLambdaSQSQueueExecutionRole", "service-role/"),
        ("AWSXrayWriteOnlyAccess", ""),
        ("AWSXRayDaemonWriteAccess", ""),
    ]
}


class Policies:
    def load(self):
        return MANAGED_POLICIES


def main():
    os.environ.setdefault("AWS_DEFAULT_REGION", "ap-northeast-1")
    template = yaml_parse(open(sys.argv[1]).read())
    parameters = dict(arg.split("=", 1) for arg in sys.argv[2:])
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function" and "InlineCode" not in resource["Properties"]:
            resource["Properties"]["CodeUri"] = PACKAGED_CODE
    print(json.dumps(transform(template, parameters, Policies()), default=str))


if __name__ == "__main__":
    main()
