# One entry point for building and testing every language. `make help` lists the targets.
# CI runs `make ci`, which is `make lint test`.

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
LIB_DIR := $(CARGO_TARGET_DIR)/debug
MVN ?= mvn -B -ntp

.PHONY: help run build lint test test-rust test-kotlin test-swift bindings bench bench-federated bench-privacy setup-swift ci clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## Run the device emulator against an embedded server (the demo)
	cargo run --release -p starling-emulator --bin starling-emulate

.PHONY: bench-emulator
bench-emulator: ## Emulator throughput and peak memory beside a tracking-only baseline
	scripts/bench-emulator.sh

build: ## Build every crate
	cargo build --workspace

lint: ## rustfmt and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: test-rust test-kotlin test-swift ## Run every test: Rust, Kotlin, Swift

test-rust: ## Rust unit, end-to-end and crash tests
	cargo test --workspace

bindings: ## Build the native library and generate its Kotlin and Swift bindings
	scripts/generate-bindings.sh

test-kotlin: bindings ## Kotlin SDK tests on the JVM (Maven, JNA, JUnit) against the host library
	$(MVN) -f android/jvm-tests/pom.xml test -Dstarling.lib.dir=$(LIB_DIR) \
		-Dstarling.generated.dir=$(CARGO_TARGET_DIR)/uniffi/kotlin

setup-swift: ## Install Swift 6 in a Debian trixie root (Linux only, root, idempotent)
	scripts/setup-swift.sh

test-swift: bindings ## Swift SDK tests (XCTest); on Linux inside the Swift root
	ios/scripts/test.sh

bench: ## Pipeline benchmarks beside their baselines (docs/benchmarks.md)
	cargo bench -p starling-tests --bench pipeline

# Vowpal Wabbit's Python package, for the regret comparison, in a venv of its own.
VW_VENV := $(CARGO_TARGET_DIR)/vw-venv
.PHONY: bench-vw

$(VW_VENV)/.installed:
	python3 -m venv $(VW_VENV)
	$(VW_VENV)/bin/pip install -q 'vowpalwabbit>=9,<10'
	touch $@

bench-vw: $(VW_VENV)/.installed ## Contextual-bandit regret beside Vowpal Wabbit, same streams (docs/benchmarks.md)
	STARLING_VW_PYTHON=$(VW_VENV)/bin/python cargo bench -p starling-tests --bench vw
FL_VENV := $(CARGO_TARGET_DIR)/fl-venv

bench-federated: ## Federated learning on breast cancer data: Starling vs centralized vs Flower
	test -x $(FL_VENV)/bin/python || python3 -m venv $(FL_VENV)
	$(FL_VENV)/bin/pip install -q scikit-learn "flwr[simulation]"
	FL_BENCH_DIR=$(CARGO_TARGET_DIR)/fl-bench $(FL_VENV)/bin/python scripts/bench_federated.py

bench-privacy: ## Privacy benchmarks: cost of one release, fleet estimate error (docs/benchmarks.md)
	cargo bench -p starling-tests --bench privacy

ci: lint test ## What CI runs

clean: ## Remove build output
	cargo clean
	rm -rf android/jvm-tests/target ios/.build
