"""Pins every function's code in a packaged template to the S3 object version `sam package`
uploaded, so the stack runs exactly the reviewed artefact even if someone writes the same key
again between the review and the execution (the artefact bucket keeps every version and no
pipeline role may delete one: infra/bootstrap.yaml). Refuses an unversioned bucket: without a
version there is nothing to pin. Rewrites the template in place.

Usage: pin_artifacts.py PACKAGED_TEMPLATE
"""

import sys
from urllib.parse import urlparse

import boto3
from samcli.yamlhelper import yaml_dump, yaml_parse


def location(code_uri):
    """(bucket, key) of an `s3://bucket/key` CodeUri, or of a {Bucket, Key} mapping."""
    if isinstance(code_uri, str):
        parsed = urlparse(code_uri)
        if parsed.scheme != "s3":
            raise SystemExit(f"pin_artifacts: CodeUri {code_uri!r} is not in S3: run sam package first")
        return parsed.netloc, parsed.path.lstrip("/")
    return code_uri["Bucket"], code_uri["Key"]


def pin(template, head):
    """Pins every packaged function of `template` with `head(bucket, key) -> version id`;
    answers the names pinned."""
    pinned = []
    for name, resource in sorted(template.get("Resources", {}).items()):
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "InlineCode" not in properties:
            bucket, key = location(properties["CodeUri"])
            properties["CodeUri"] = {"Bucket": bucket, "Key": key, "Version": head(bucket, key)}
            pinned.append(name)
        elif resource.get("Type") == "AWS::Lambda::Function" and "S3Key" in properties.get("Code", {}):
            code = properties["Code"]
            code["S3ObjectVersion"] = head(code["S3Bucket"], code["S3Key"])
            pinned.append(name)
    return pinned


def main():
    path = sys.argv[1]
    with open(path) as f:
        template = yaml_parse(f.read())
    s3 = boto3.client("s3")

    def head(bucket, key):
        version = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
        if not version or version == "null":
            raise SystemExit(
                f"pin_artifacts: s3://{bucket}/{key} has no version: the artefact bucket must keep "
                "versions (infra/bootstrap.yaml's ArtifactBucket)"
            )
        return version

    pinned = pin(template, head)
    if not pinned:
        raise SystemExit("pin_artifacts: no packaged function in the template")
    with open(path, "w") as f:
        f.write(yaml_dump(template))
    print(f"pinned {len(pinned)} functions to their object versions: {', '.join(pinned)}")


if __name__ == "__main__":
    main()
