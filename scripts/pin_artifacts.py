"""Pins every function's code in a packaged template to the S3 object version that holds this
build, so the stack runs exactly the reviewed artefact even if someone writes the same key again
between the review and the execution (the artefact bucket keeps every version and no pipeline
role may delete one: infra/bootstrap.yaml). The version pinned is read back and compared, file by
file, with the build directory it was packaged from (`sam package` skips the upload when the key
exists, so the object could be anyone's). Refuses an unversioned bucket: without a version there
is nothing to pin. Rewrites the packaged template in place.

Usage: pin_artifacts.py BUILT_TEMPLATE PACKAGED_TEMPLATE
"""

import io
import os
import sys
import zipfile
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
    """Pins every packaged function of `template` with `head(name, bucket, key) -> version id`;
    answers the names pinned."""
    pinned = []
    for name, resource in sorted(template.get("Resources", {}).items()):
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "InlineCode" not in properties:
            bucket, key = location(properties["CodeUri"])
            properties["CodeUri"] = {"Bucket": bucket, "Key": key, "Version": head(name, bucket, key)}
            pinned.append(name)
        elif resource.get("Type") == "AWS::Lambda::Function" and "S3Key" in properties.get("Code", {}):
            code = properties["Code"]
            code["S3ObjectVersion"] = head(name, code["S3Bucket"], code["S3Key"])
            pinned.append(name)
    return pinned


def files_of(directory):
    """Every file under `directory`, by its path relative to it, with its bytes."""
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            out[os.path.relpath(path, directory).replace(os.sep, "/")] = open(path, "rb").read()
    return out


def files_in(zipped):
    """Every file of a zip archive, with its bytes; None for what is not one."""
    try:
        with zipfile.ZipFile(io.BytesIO(zipped)) as z:
            return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
    except zipfile.BadZipFile:
        return None


def main():
    built_path, path = sys.argv[1], sys.argv[2]
    with open(built_path) as f:
        built = yaml_parse(f.read())
    with open(path) as f:
        template = yaml_parse(f.read())
    s3 = boto3.client("s3")

    def head(name, bucket, key):
        version = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
        if not version or version == "null":
            raise SystemExit(
                f"pin_artifacts: s3://{bucket}/{key} has no version: the artefact bucket must keep "
                "versions (infra/bootstrap.yaml's ArtifactBucket)"
            )
        code = built["Resources"][name]["Properties"]["CodeUri"]
        directory = os.path.join(os.path.dirname(os.path.abspath(built_path)), code)
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
        if files_in(body) != files_of(directory):
            raise SystemExit(
                f"pin_artifacts: s3://{bucket}/{key} (version {version}) does not hold the build "
                f"of {name} ({code}): refusing to pin it"
            )
        return version

    pinned = pin(template, head)
    if not pinned:
        raise SystemExit("pin_artifacts: no packaged function in the template")
    with open(path, "w") as f:
        f.write(yaml_dump(template))
    print(f"pinned {len(pinned)} functions to the object versions holding their build: {', '.join(pinned)}")


if __name__ == "__main__":
    main()
