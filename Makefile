# r1 — the two commands a newcomer needs are `make devnet` and `make test`.
#
# Everything is built once, in the debug profile, into a target directory outside the clone so
# that a warm machine (or CI cache) reuses it across fresh clones.

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/r1/target
CARGO ?= cargo
CARGO_FLAGS ?= --locked

.PHONY: all deps build test test-rust crd-drift fmt-check lint crds bench bench-scale devnet devnet-down help

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

deps: ## install missing apt and npm prerequisites (idempotent)
	@.ci/deps.sh

build: deps ## build every crate and test binary once
	$(CARGO) build $(CARGO_FLAGS) --workspace --all-targets

test: build fmt-check test-rust ## everything CI runs (the CRD drift check is one of the r1-crds tests)
	@echo "make test: all checks passed"

test-rust: build
	R1_REQUIRE_FRESH_BINARIES=1 $(CARGO) test $(CARGO_FLAGS) --workspace --no-fail-fast

crd-drift: ## fail when crds/*.yaml differ from the Rust types
	$(CARGO) run $(CARGO_FLAGS) -q -p r1-crds --bin crdgen -- --check

crds: ## regenerate crds/*.yaml from the Rust types
	$(CARGO) run $(CARGO_FLAGS) -q -p r1-crds --bin crdgen

fmt-check:
	$(CARGO) fmt --all -- --check

lint: ## clippy over the workspace (not part of `make test`: it would compile everything twice)
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

bench: build ## benchmarks that print numbers (container start latency, heartbeat cost, an oracle's cost per heartbeat and per pass at 10,000 nodes, apply→running and node-loss→replacement on a whole network, R1FS add/fetch/first byte, CSTORE against redis-server and its replication lag, an image started on 4 nodes from a slow registry with and without peer sharing, a service call across nodes against direct TCP); needs root
	$(CARGO) bench $(CARGO_FLAGS) --profile dev --workspace --bench node_agent --bench oracle_intake --bench oracle_network --bench r1fs --bench cstore --bench images --bench services

bench-scale: build ## 3 oracles against 1,000 and 5,000 simulated nodes with 1,000 jobs, on rumqttd and mosquitto (R1_SCALE_NODES, R1_SCALE_LOAD, R1_SCALE_JOBS, R1_SCALE_BROKERS): CPU, memory, pass time, heartbeats verified, votes and gas, apply → running for a burst, node loss; needs root, takes minutes
	$(CARGO) bench $(CARGO_FLAGS) --profile dev --workspace --bench oracle_scale

devnet: build ## the main job: chain, broker, 3 oracles, 4 node agents running crds/examples (Ctrl-C stops)
	$(CARGO_TARGET_DIR)/debug/r1-devnet up $(DEVNET_FLAGS)

devnet-down: ## stop the devnet `make devnet` started, and anything it left behind
	@if [ -x $(CARGO_TARGET_DIR)/debug/r1-devnet ]; then $(CARGO_TARGET_DIR)/debug/r1-devnet down; \
	else echo "make devnet-down: r1-devnet is not built, so no devnet can be running"; fi
