# alustan — the two commands people need are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# A Python venv for the CI-only tools (kubernetes-validate, helm-python-sdk), kept outside the
# clone so repeated runs reuse it.
VENV ?= $(HOME)/.cache/alustan/venv
PYTHON := $(VENV)/bin/python
# Debian packages the tests drive for real: the OCI registry, htpasswd, skopeo, bubblewrap
# (the process kubelet's sandbox), tmux (TUI tests), curl (the real tier's in-cluster API call) and kubectl.
APT_PACKAGES := docker-registry apache2-utils skopeo bubblewrap tmux
KUBERNETES_VERSIONS := 1.30.0 1.31.0 1.32.0 1.33.0

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: demo
demo: system-deps ## Run alustan in a local sandbox and open the TUI (NO_TUI=1: check the samples and print them; KEEP=1: keep the work dir; CONTROL_PLANE=real: on the real control plane).
	@if [ "$(CONTROL_PLANE)" = real ]; then \
	  bin="$$(testenv/controlplane/build.sh)"; \
	  ALUSTAN_CONTROLPLANE_BIN="$$bin" CONTROL_PLANE=real NO_TUI="$(NO_TUI)" KEEP="$(KEEP)" demo/run.sh; \
	else \
	  CONTROL_PLANE=embedded NO_TUI="$(NO_TUI)" KEEP="$(KEEP)" demo/run.sh; \
	fi

.PHONY: test
test: deps fmt-check clippy one-crypto-provider crd-check chart-check unit ## Install what the tests need, then fmt, clippy and every test.

.PHONY: deps
deps: system-deps python-deps rust-deps ## Install the system packages, Python and Rust tools the tests use.

# cargo-nextest (crates.io) runs each test in its own process and ends one that hangs (see
# .config/nextest.toml); built once into ~/.cargo/bin, outside the clone.
.PHONY: rust-deps
rust-deps:
	@cargo nextest --version >/dev/null 2>&1 || cargo install --locked --quiet cargo-nextest

.PHONY: system-deps
system-deps:
	@missing=""; \
	for tool in docker-registry:docker-registry htpasswd:apache2-utils skopeo:skopeo bwrap:bubblewrap tmux:tmux busybox:busybox-static curl:curl; do \
	  command -v "$${tool%%:*}" >/dev/null || missing="$$missing $${tool#*:}"; \
	done; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: python-deps
python-deps: $(VENV)/.installed

$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check kubernetes-validate helm-python-sdk
	touch $@

.PHONY: fmt-check
fmt-check: ## cargo fmt check.
	cargo fmt --all -- --check

.PHONY: clippy
clippy: ## clippy on every target, warnings are errors.
	cargo clippy --workspace --all-targets --locked -- -D warnings

.PHONY: one-crypto-provider
one-crypto-provider: ## rustls must have exactly one crypto provider (ring) or it panics at run time.
	@if cargo tree --workspace --locked -i aws-lc-rs >/dev/null 2>&1; then \
	  echo "aws-lc-rs is in the dependency tree beside ring: rustls would panic at start-up" >&2; \
	  cargo tree --workspace -i aws-lc-rs >&2; exit 1; \
	fi
	@echo "ok: ring is the only rustls crypto provider"

.PHONY: crd-check
crd-check: python-deps ## Validate the generated CRD and the examples against it.
	for v in $(KUBERNETES_VERSIONS); do $(VENV)/bin/kubernetes-validate --strict -k $$v crds/terraform.yaml; done
	$(PYTHON) .ci/validate_crd.py

.PHONY: chart-check
chart-check: python-deps ## Lint and render the Helm chart with the real Helm engine and validate every manifest.
	$(PYTHON) .ci/chart_check.py $(KUBERNETES_VERSIONS)

.PHONY: unit
unit: ## Every Rust test of the workspace.
	@if cargo nextest --version >/dev/null 2>&1; then \
	  cargo nextest run --workspace --locked --no-fail-fast; \
	else \
	  echo "cargo-nextest is missing: cargo test, the whole run bounded to 40 minutes" >&2; \
	  timeout --signal=KILL 2400 cargo test --workspace --locked --no-fail-fast; \
	fi

.PHONY: controlplane
controlplane: ## Build (once, cached in ~/.cache/alustan/controlplane) the real etcd and Kubernetes control plane from the pinned Go modules.
	testenv/controlplane/build.sh

# The agent's and the plugin's e2e suites: they run unchanged on either backend
# (ALUSTAN_CONTROL_PLANE=embedded|real, read by testenv's TestEnv).
AGENT_E2E := --test e2e_reconcile --test e2e_dependencies --test e2e_bad_input --test e2e_binary --test e2e_credentials --test e2e_failures --test e2e_leader --test e2e_run_safety --test e2e_plans
PLUGIN_E2E := --test e2e_cli --test e2e_cluster --test e2e_tui --test e2e_tree --test e2e_daily --test e2e_plans
# nextest ends a hung test (.config/nextest.toml); without it the whole run is bounded.
tests = if cargo nextest --version >/dev/null 2>&1; then cargo nextest run --locked --no-fail-fast $(1); else timeout --signal=KILL 1800 cargo test --locked --no-fail-fast $(1); fi

.PHONY: test-real
test-real: system-deps python-deps controlplane ## The real-control-plane tier: the control plane's own tests, the differential conformance run, the agent's and plugin's e2e suites on it, and the Helm chart installed for real.
	@set -e; start=$$(date +%s); \
	export ALUSTAN_CONTROLPLANE_BIN="$$(testenv/controlplane/build.sh)"; \
	timeout --signal=KILL 900 cargo test -p alustan-testenv --locked --test controlplane --test controlplane_node -- --ignored; \
	echo "real tier: control plane tests done after $$(( $$(date +%s) - start )) s"; \
	$(PYTHON) .ci/conformance_diff.py; \
	echo "real tier: differential conformance run done after $$(( $$(date +%s) - start )) s"; \
	export ALUSTAN_CONTROL_PLANE=real; \
	$(call tests,-p alustan-agent $(AGENT_E2E)); \
	$(call tests,-p kubectl-alustan $(PLUGIN_E2E)); \
	unset ALUSTAN_CONTROL_PLANE; \
	echo "real tier: agent and plugin e2e suites done after $$(( $$(date +%s) - start )) s"; \
	timeout --signal=KILL 900 cargo test -p alustan-agent --locked --test real_helm_install -- --ignored; \
	echo "real-control-plane tier: $$(( $$(date +%s) - start )) s"

.PHONY: bench-scale
bench-scale: ## The agent at scale, run as the shipped release binary (knobs: SCALE_CRS=1000,10000 SCALE_POST_DEPLOY SCALE_SYNC_INTERVAL SCALE_QUIET_SECS; see agent/benches/scale.rs).
	cargo build --release --locked -p alustan-agent
	SCALE_AGENT_BIN="$${CARGO_TARGET_DIR:-target}/release/alustan-agent" cargo bench --locked -p alustan-agent --bench scale

.PHONY: generate
generate: ## Regenerate crds/terraform.yaml (and the chart's copy) and the README's CR reference from the Rust types.
	cargo run -q -p alustan-shared --bin crdgen > crds/terraform.yaml
	cp crds/terraform.yaml charts/alustan/crds/terraform.yaml
	cargo run -q -p alustan-shared --bin crdgen reference | python3 .ci/splice_readme.py README.md
