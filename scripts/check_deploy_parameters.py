"""Computes each environment's effective stack parameters with the SAM CLI's own option
handling (click context of `sam deploy`, samconfig.toml as its default map) for a plain
`sam deploy --config-env X` and for the documented `make deploy ENV=X EXTRA_PARAMETERS=...`,
and checks them against infra/parameters/X.yaml: the extras on top, a value with blanks kept
whole, text that make or a shell would expand passed verbatim, and Environment always X (an
extra `Environment=dev` cannot make the prod stack anything else). Exits non-zero with the
differences."""

import os
import shlex
import subprocess
import sys
import tempfile

import yaml
from samcli.commands.deploy.command import cli

ENVIRONMENTS = {"dev": "default", "staging": "staging", "prod": "prod"}
EXTRA = (
    'AlarmEmail=ops@example.jp VexoraBaseUrl=https://api.vexora.example/japan LogRetentionDays=731 '
    'ReconcileSchedule="rate(10 minutes)" VexoraSecretArn=$(shell/touch/pwned)`id`$HOME Environment=dev'
)
EXTRA_EXPECTED = {
    "AlarmEmail": "ops@example.jp",
    "VexoraBaseUrl": "https://api.vexora.example/japan",
    "LogRetentionDays": "731",
    "ReconcileSchedule": "rate(10 minutes)",
    "VexoraSecretArn": "$(shell/touch/pwned)`id`$HOME",
}


def effective(args):
    config = ["--config-file", os.path.abspath("samconfig.toml")]
    template = ["--template-file", "infra/template.yaml"]
    if "--template-file" in args:
        i = args.index("--template-file")
        args = args[:i] + args[i + 2:]
    ctx = cli.make_context("deploy", config + template + args, resilient_parsing=False)
    return dict(ctx.params["parameter_overrides"])


def documented(env):
    """The `sam deploy` arguments `make deploy` runs, as make prints them."""
    printed = subprocess.run(
        ["make", "-n", "--no-print-directory", "deploy", f"ENV={env}", f"EXTRA_PARAMETERS={EXTRA}",
         "TEMPLATE=infra/template.yaml"],
        check=True, capture_output=True, text=True,
    ).stdout.replace("\\\n", " ")
    line = next(l for l in printed.splitlines() if " deploy " in l and "sam" in l)
    words = shlex.split(line)
    return words[words.index("deploy") + 1:]


def settings_are_never_run():
    """What the pipeline passes from its settings can hold make or shell syntax: none of it runs,
    in a recipe that runs (make exports command-line variables to recipes) or in the deploy
    command (printed by `make -n`, which still expands it), and each reaches the SAM CLI whole."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        hostile = {
            "EXTRA_PARAMETERS": f"AlarmEmail=$(shell touch {tmp}/a)`touch {tmp}/b`",
            "CFN_ROLE_ARN": f"arn:aws:iam::1:role/x; touch {tmp}/c #$(shell touch {tmp}/d)",
            "ARTIFACT_BUCKET": f"b'$(shell touch {tmp}/e)'; touch {tmp}/f",
        }
        assigned = [f"{k}={v}" for k, v in hostile.items()]
        subprocess.run(["make", "--no-print-directory", "help", *assigned], check=True, capture_output=True)
        printed = subprocess.run(
            ["make", "-n", "--no-print-directory", "deploy", "ENV=prod", "TEMPLATE=infra/template.yaml", *assigned],
            check=True, capture_output=True, text=True,
        ).stdout.replace("\\\n", " ")
        line = next(l for l in printed.splitlines() if " deploy " in l and "sam" in l)
        words = shlex.split(line)
        if os.listdir(tmp):
            failures.append(f"a setting ran: {sorted(os.listdir(tmp))}")
        for flag, name in [("--role-arn", "CFN_ROLE_ARN"), ("--s3-bucket", "ARTIFACT_BUCKET")]:
            if words[words.index(flag) + 1] != hostile[name]:
                failures.append(f"{name} reached sam as {words[words.index(flag) + 1]!r}")
        if hostile["EXTRA_PARAMETERS"] not in words:
            failures.append(f"EXTRA_PARAMETERS did not reach sam whole: {words}")
    # A setting the SAM CLI would read as its own option, or that would split the recipe.
    for name, value, says in [
        ("EXTRA_PARAMETERS", "--stack-name=vexora-payouts-prod", 'begins with "-"'),
        ("CFN_ROLE_ARN", "--disable-rollback", 'begins with "-"'),
        ("EXTRA_PARAMETERS", "AlarmEmail=a@b.jp\nrm -rf x", "line break"),
    ]:
        refused = subprocess.run(
            ["make", "-n", "--no-print-directory", "deploy", "ENV=dev", "TEMPLATE=infra/template.yaml",
             f"{name}={value}"],
            capture_output=True, text=True,
        )
        if refused.returncode == 0 or says not in refused.stderr:
            failures.append(f"{name}={value!r} was not refused: {refused.stderr.strip()}")
    return failures


def main():
    failures = settings_are_never_run()
    for env, sam_env in ENVIRONMENTS.items():
        with open(f"infra/parameters/{env}.yaml") as f:
            expected = {k: str(v) for k, v in yaml.safe_load(f).items()}
        if expected.get("Environment") != env:
            failures.append(f"{env}: infra/parameters/{env}.yaml sets Environment={expected.get('Environment')}")
        plain = effective(["--config-env", sam_env])
        if plain != expected:
            failures.append(f"{env}: `sam deploy --config-env {sam_env}` gives {plain}, expected {expected}")
        with_extras = dict(expected)
        with_extras.update(EXTRA_EXPECTED)
        with_extras["Environment"] = env
        made = effective(documented(env))
        if made != with_extras:
            failures.append(f"{env}: `make deploy ENV={env} EXTRA_PARAMETERS=...` gives {made}, expected {with_extras}")
        print(f"{env}: {made}")
    for failure in failures:
        print("FAIL", failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
