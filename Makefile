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

.PHONY: help venv test lint fmt dev clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## Create .venv with the pinned Python tools (moto, ...)

lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: venv lint ## Every check and test (what CI runs)
	@mkdir -p target
	cargo build --workspace --bins
	cargo test --workspace 2>&1 | tee target/test-output.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "total: %d passed, %d failed\n", p, f}' target/test-output.log

fmt: ## Format the code
	cargo fmt --all

dev: venv ## Run the product locally: moto, the Vexora sandbox, both functions, a demo payout
	MOTO_PORT=$(MOTO_PORT) SANDBOX_PORT=$(SANDBOX_PORT) WATCH_PORT=$(WATCH_PORT) scripts/dev.sh

clean: ## Remove build output and the virtualenv
	cargo clean
	rm -rf $(VENV)
