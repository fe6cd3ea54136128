"""Deletes the Lambda versions of a stack's functions that nothing runs and no rollback needs.

    scripts/prune_versions.py STACK_NAME [--keep 5] [--dry-run]

Run by the pipeline after each successful deploy (`make prune-versions ENV=...`). Every change
publishes a version (AutoPublishAlias), and versions count against the account's code storage.
For every AWS::Lambda::Function of the stack, a numbered version is deleted unless

  - an alias points at it (its FunctionVersion, or a weight in its RoutingConfig, as during a
    canary), or
  - it is among the function's newest KEEP numbered versions (kept for rollback).

Deletion always names the version (`delete_function(FunctionName=name, Qualifier=version)`):
never the function itself, never $LATEST (the deploy role may delete qualified ARNs only).
Prints the names and version numbers it deleted, nothing else of the functions.
"""

import argparse
import re
import sys

NUMBERED = re.compile(r"[0-9]+")


def to_prune(versions, aliases, keep):
    """The numbered versions to delete, oldest first, as strings.

    versions: the function's version names as ListVersionsByFunction gives them
        ("$LATEST", "1", "2", ...).
    aliases: its aliases as ListAliases gives them (dicts with FunctionVersion and, during a
        weighted shift, RoutingConfig.AdditionalVersionWeights {version: weight}).
    keep: how many of the newest numbered versions stay whatever points at them.
    """
    if keep < 0:
        raise ValueError(f"keep must be 0 or more, not {keep}")
    numbered = sorted({int(v) for v in versions if NUMBERED.fullmatch(str(v))})
    referenced = set()
    for alias in aliases:
        referenced.add(str(alias.get("FunctionVersion")))
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        referenced.update(str(v) for v in weights)
    newest = set(numbered[-keep:]) if keep else set()
    return [str(v) for v in numbered if v not in newest and str(v) not in referenced]


def _items(client, operation, key, **arguments):
    for page in client.get_paginator(operation).paginate(**arguments):
        yield from page.get(key, [])


def stack_functions(cloudformation, stack_name):
    """The physical names of the stack's AWS::Lambda::Function resources."""
    return [
        resource["PhysicalResourceId"]
        for resource in _items(
            cloudformation, "list_stack_resources", "StackResourceSummaries", StackName=stack_name
        )
        if resource.get("ResourceType") == "AWS::Lambda::Function"
        and resource.get("PhysicalResourceId")
        and not resource.get("ResourceStatus", "").startswith("DELETE_")
    ]


def _error_code(error):
    return (getattr(error, "response", None) or {}).get("Error", {}).get("Code")


def prune(cloudformation, lambda_client, stack_name, keep=5, dry_run=False, out=print):
    """Deletes (or, with dry_run, lists) what to_prune chooses for each function of the stack.

    Returns {function name: [versions deleted]}.
    """
    deleted = {}
    for name in stack_functions(cloudformation, stack_name):
        versions = [
            v["Version"]
            for v in _items(lambda_client, "list_versions_by_function", "Versions", FunctionName=name)
        ]
        aliases = list(_items(lambda_client, "list_aliases", "Aliases", FunctionName=name))
        for version in to_prune(versions, aliases, keep):
            if not NUMBERED.fullmatch(version):
                raise AssertionError(f"{name}: refusing to delete {version!r}: not a numbered version")
            if dry_run:
                out(f"{name}: would delete version {version}")
                continue
            try:
                lambda_client.delete_function(FunctionName=name, Qualifier=version)
            except Exception as error:  # botocore's ClientError, without importing botocore here
                code = _error_code(error)
                if code == "ResourceNotFoundException":
                    continue
                if code == "ResourceConflictException":
                    # An alias moved onto it since the listing: Lambda keeps it, and so do we.
                    out(f"{name}: kept version {version} (an alias points at it now)")
                    continue
                raise
            out(f"{name}: deleted version {version}")
            deleted.setdefault(name, []).append(version)
    total = sum(len(v) for v in deleted.values())
    out(f"{stack_name}: {'dry run, nothing deleted' if dry_run else f'{total} version(s) deleted'}")
    return deleted


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack_name", metavar="STACK_NAME")
    parser.add_argument("--keep", type=_non_negative, default=5,
                        help="newest numbered versions of each function to keep (default 5)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    args = parser.parse_args(argv)

    import boto3  # only here: to_prune and prune are importable (and tested) without AWS

    prune(boto3.client("cloudformation"), boto3.client("lambda"), args.stack_name, args.keep, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
