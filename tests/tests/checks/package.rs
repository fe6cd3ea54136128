//! `make package` against S3 (the moto server, with the pinned SAM CLI): every function's code
//! in the packaged template is pinned to the object version it uploaded, so a later write to the
//! same key (an unreviewed role between the prod review and its execution) changes nothing
//! that runs; an unversioned bucket is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use payout_testkit::Moto;
use serde_norway::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn aws(command: &mut Command, moto: &Moto) -> Output {
    command
        .current_dir(root())
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "ap-northeast-1")
        .env("AWS_REGION", "ap-northeast-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap()
}

/// Runs Python with boto3 against the moto server; its last line of output, as JSON.
fn s3(moto: &Moto, script: &str) -> serde_json::Value {
    // `holds_the_build(version, key, bucket)`: whether that version is a zip of exactly the
    // build (its one file, executable, with the build's bytes).
    let prelude = "import boto3, io, json, zipfile\n\
        s3 = boto3.client('s3')\n\
        def holds_the_build(version, key, bucket='artefacts'):\n\
        \x20   body = s3.get_object(Bucket=bucket, Key=key, VersionId=version)['Body'].read()\n\
        \x20   z = zipfile.ZipFile(io.BytesIO(body))\n\
        \x20   [info] = z.infolist()\n\
        \x20   return [info.filename == 'bootstrap' and z.read(info) == b'the reviewed build', (info.external_attr >> 16) & 0o111 == 0o111]\n";
    let out = aws(
        Command::new(root().join(".venv/bin/python")).args(["-c", &format!("{prelude}{script}")]),
        moto,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap()
}

fn package(moto: &Moto, dir: &Path, bucket: &str) -> Output {
    aws(
        Command::new("make").args([
            "--no-print-directory",
            "package",
            &format!("ARTIFACT_BUCKET={bucket}"),
            &format!("BUILT={}", dir.join("template.yaml").display()),
            &format!("PACKAGED={}", dir.join("packaged.yaml").display()),
        ]),
        moto,
    )
}

#[test]
fn the_packaged_template_pins_every_function_to_the_object_version_it_uploaded() {
    let moto = Moto::start().unwrap();
    let dir = std::env::temp_dir().join(format!("package-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("code")).unwrap();
    // A build as `sam build` leaves it: the real template, each function's code a directory.
    let template = std::fs::read_to_string(root().join("infra/template.yaml")).unwrap();
    assert!(template.contains("CodeUri: ..\n"));
    std::fs::write(
        dir.join("template.yaml"),
        template.replace("CodeUri: ..\n", "CodeUri: code\n"),
    )
    .unwrap();
    std::fs::write(dir.join("code/bootstrap"), "the reviewed build").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("code/bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    s3(
        &moto,
        "s3.create_bucket(Bucket='artefacts', CreateBucketConfiguration={'LocationConstraint': 'ap-northeast-1'})\n\
         s3.put_bucket_versioning(Bucket='artefacts', VersioningConfiguration={'Status': 'Enabled'})\n\
         s3.create_bucket(Bucket='unversioned', CreateBucketConfiguration={'LocationConstraint': 'ap-northeast-1'})\n\
         print('null')",
    );

    let out = package(&moto, &dir, "artefacts");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let packaged: Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("packaged.yaml")).unwrap())
            .unwrap();
    let mut pinned = Vec::new();
    for (name, resource) in packaged["Resources"].as_mapping().unwrap() {
        let p = &resource["Properties"];
        if resource["Type"] != "AWS::Serverless::Function" || p.get("InlineCode").is_some() {
            continue;
        }
        let code = &p["CodeUri"];
        assert_eq!(code["Bucket"], "artefacts", "{name:?}: {code:?}");
        let key = code["Key"].as_str().unwrap().to_owned();
        let version = code["Version"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?} is not pinned: {code:?}"))
            .to_owned();
        pinned.push((key, version));
    }
    assert_eq!(
        pinned.len(),
        payout_aws::permissions::ALL.len(),
        "{pinned:?}"
    );

    // Someone writes other code under the same keys afterwards: the pinned versions still
    // hold the reviewed build, and are not the newest.
    let pins = serde_json::to_string(&pinned).unwrap();
    let seen = s3(
        &moto,
        &format!(
            "pins = json.loads('{pins}')\n\
             out = []\n\
             for key, version in pins:\n\
             \x20   s3.put_object(Bucket='artefacts', Key=key, Body=b'an unreviewed build')\n\
             \x20   newest = s3.head_object(Bucket='artefacts', Key=key)['VersionId']\n\
             \x20   out.append([newest != version] + holds_the_build(version, key))\n\
             print(json.dumps(out))"
        ),
    );
    for row in seen.as_array().unwrap() {
        assert_eq!(row, &serde_json::json!([true, true, true]), "{seen}");
    }

    // Something planted under the build's key before packaging (`sam package` then skips the
    // upload): what is pinned is still the build, uploaded and pinned by this run.
    let key = &pinned[0].0;
    s3(
        &moto,
        &format!(
            "s3.create_bucket(Bucket='planted', CreateBucketConfiguration={{'LocationConstraint': 'ap-northeast-1'}})\n\
             s3.put_bucket_versioning(Bucket='planted', VersioningConfiguration={{'Status': 'Enabled'}})\n\
             s3.put_object(Bucket='planted', Key='{key}', Body=b'an unreviewed build')\n\
             print('null')"
        ),
    );
    let out = package(&moto, &dir, "planted");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packaged: Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("packaged.yaml")).unwrap())
            .unwrap();
    let mut checked = 0;
    for (_, resource) in packaged["Resources"].as_mapping().unwrap() {
        let code = &resource["Properties"]["CodeUri"];
        if let Some(version) = code["Version"].as_str() {
            let key = code["Key"].as_str().unwrap();
            let holds = s3(
                &moto,
                &format!("print(json.dumps(holds_the_build('{version}', '{key}', 'planted')))"),
            );
            assert_eq!(holds, serde_json::json!([true, true]), "{code:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, payout_aws::permissions::ALL.len());

    // Without versions there is nothing to pin: refused, with the reason.
    let out = package(&moto, &dir, "unversioned");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("must keep versions"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
