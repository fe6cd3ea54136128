"""Pins every function's code in a packaged template to an S3 object version that holds exactly
this build, so the stack runs the reviewed artefact even if someone writes the same key again
between the review and the execution (the artefact bucket keeps every version and no pipeline
role may delete one: infra/bootstrap.yaml).

`sam package` names an artefact by a hash of its build and skips the upload when the key
exists, so the object under a key may be anyone's. This script therefore uploads, under the key
`sam package` chose, the zip of the function's build directory it made itself (each file with
its mode, so `bootstrap` stays executable) and pins the version S3 answered for that upload: no
object planted before, nor one written after, can be what is pinned. Refuses an unversioned
bucket: without a version there is nothing to pin. Rewrites the packaged template in place.

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


def pin(template, upload):
    """Pins every packaged function of `template` with `upload(name, bucket, key) -> version
    id`; answers the names pinned."""
    pinned = []
    for name, resource in sorted(template.get("Resources", {}).items()):
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "InlineCode" not in properties:
            bucket, key = location(properties["CodeUri"])
            properties["CodeUri"] = {"Bucket": bucket, "Key": key, "Version": upload(name, bucket, key)}
            pinned.append(name)
        elif resource.get("Type") == "AWS::Lambda::Function" and "S3Key" in properties.get("Code", {}):
            code = properties["Code"]
            code["S3ObjectVersion"] = upload(name, code["S3Bucket"], code["S3Key"])
            pinned.append(name)
    return pinned


def zipped(directory):
    """The zip of every file under `directory` (links followed), with its mode, in a fixed order
    and with fixed times: the same build gives the same bytes."""
    paths = []
    for root, _, names in os.walk(directory, followlinks=True):
        paths.extend(os.path.join(root, n) for n in names)
    if not paths:
        raise SystemExit(f"pin_artifacts: {directory} holds no file")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(paths):
            info = zipfile.ZipInfo(os.path.relpath(path, directory).replace(os.sep, "/"))
            info.external_attr = (os.stat(path).st_mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
    return out.getvalue()


def main():
    built_path, path = sys.argv[1], sys.argv[2]
    with open(built_path) as f:
        built = yaml_parse(f.read())
    with open(path) as f:
        template = yaml_parse(f.read())
    s3 = boto3.client("s3")

    def upload(name, bucket, key):
        code = built["Resources"][name]["Properties"]["CodeUri"]
        directory = os.path.join(os.path.dirname(os.path.abspath(built_path)), code)
        version = s3.put_object(Bucket=bucket, Key=key, Body=zipped(directory)).get("VersionId")
        if not version or version == "null":
            raise SystemExit(
                f"pin_artifacts: s3://{bucket} keeps no versions: the artefact bucket must keep "
                "versions (infra/bootstrap.yaml's ArtifactBucket)"
            )
        return version

    pinned = pin(template, upload)
    if not pinned:
        raise SystemExit("pin_artifacts: no packaged function in the template")
    with open(path, "w") as f:
        f.write(yaml_dump(template))
    print(f"pinned {len(pinned)} functions to the object versions of their build: {', '.join(pinned)}")


if __name__ == "__main__":
    main()
