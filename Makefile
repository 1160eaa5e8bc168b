# The two commands a newcomer needs: `make run` and `make test`. Both install what they
# need on a fresh machine, idempotently, and say what they are doing.

SHELL := /bin/bash
ADDR ?= 127.0.0.1:8080
DATA_DIR ?= .llm-local
CARGO ?= cargo
# Lambda architecture for `make build`: x86_64 (default here) or arm64 (needs the
# aarch64-unknown-linux-gnu Rust target: `rustup target add aarch64-unknown-linux-gnu`).
ARCH ?= x86_64
LAMBDAS := llm-settings generate llm-usage
VENV_BIN := $(CURDIR)/.venv/bin
WITH_EMULATOR := tools/with_ministack.sh

.PHONY: run token test deny test-unit test-sdk test-soak soak fuzz test-schemathesis test-browser test-aws lint fmt venv build infra-check deploy-local bench bench-profile check-tools clean

check-tools:
	@command -v $(CARGO) >/dev/null || { echo "make: cargo not found; install Rust (https://rustup.rs) and retry"; exit 1; }

## run: build llm-local (release) and serve every route on $(ADDR), data in $(DATA_DIR)
run: check-tools
	@echo "==> building llm-local (release; the first build takes a few minutes)"
	$(CARGO) build --release --locked -p llm-local
	@echo "==> starting llm-local on http://$(ADDR) (data in $(DATA_DIR)); Ctrl-C stops it"
	@echo "==> in another shell, get a token with:"
	@echo "      ./target/release/llm-local token create --user alice --data-dir $(DATA_DIR)"
	@echo "    or: make token USER_ID=alice"
	./target/release/llm-local serve --addr $(ADDR) --data-dir $(DATA_DIR)

## token: print a bearer token for USER_ID (add ADMIN=1 for an admin)
token: check-tools
	@test -n "$(USER_ID)" || { echo "usage: make token USER_ID=alice [ADMIN=1]"; exit 1; }
	@$(CARGO) build --release --locked -q -p llm-local
	@./target/release/llm-local token create --user "$(USER_ID)" $(if $(ADMIN),--admin) --data-dir $(DATA_DIR)

## test: everything: lints, unit/router/e2e tests, AWS conformance and the Terraform
## deployment into the emulator, and the infra static checks
test: check-tools lint deny test-unit test-sdk test-soak test-schemathesis test-browser test-aws infra-check deploy-local
	@echo "==> make test: all suites passed"

## deny: cargo-deny on the dependency graph: licenses, bans, sources and RustSec advisories
## (the vendored snapshot when offline; tools/supply_chain.sh says which)
deny: check-tools
	@echo "==> supply chain: cargo deny (pinned cargo-deny, installed if missing)"
	tools/supply_chain.sh deny

test-unit: check-tools
	@echo "==> every test in the workspace (embedded store, router, Lambda events, e2e over a socket)"
	$(CARGO) test --workspace --locked

## test-sdk: the official OpenAI and Anthropic Python SDKs against llm-local, and a loopback load of
## 3,000 requests that must leave exactly one usage entry each (reuses test-unit's build)
test-sdk: check-tools venv
	@echo "==> the official openai SDK against llm-local"
	$(CARGO) build --locked -p llm-local
	SKIP_BUILD=1 LLM_LOCAL_BIN=$(CURDIR)/target/debug/llm-local tests/openai_sdk/run.sh
	@echo "==> the official anthropic SDK against llm-local"
	SKIP_BUILD=1 LLM_LOCAL_BIN=$(CURDIR)/target/debug/llm-local tests/anthropic_sdk/run.sh
	@echo "==> 3,000 generate requests on loopback: exactly one usage entry each"
	$(VENV_BIN)/python tools/load_test.py --bin $(CURDIR)/target/debug/llm-local -n 3000

## test-soak: two minutes of mixed traffic through llm-local against a fault-injecting
## upstream (tools/soak.py): no lost or doubled usage, no overshoot, no leaked reservation,
## flat RSS and descriptors, no saved key anywhere afterwards
test-soak: check-tools venv
	@echo "==> soak, 2 minutes: mixed traffic against upstreams injecting 500s, 429s, hangs, resets, slow streams"
	$(CARGO) build --locked -p llm-local
	$(VENV_BIN)/python tools/soak.py --bin $(CURDIR)/target/debug/llm-local --seconds 120

## soak: the long version (SOAK_SECONDS, default 20 minutes) on a release build
SOAK_SECONDS ?= 1200
soak: check-tools venv
	@echo "==> soak, $(SOAK_SECONDS) s on a release build"
	$(CARGO) build --release --locked -p llm-local
	$(VENV_BIN)/python tools/soak.py --bin $(CURDIR)/target/release/llm-local --seconds $(SOAK_SECONDS)

## fuzz: every fuzz target (gateway-fuzz: route bodies, provider answers and streams, page
## tokens, API Gateway events, prices) for FUZZ_SECONDS each, mutating fuzz/corpus; a
## violation is saved under fuzz/artifacts/ and fails the run
FUZZ_SECONDS ?= 60
fuzz: check-tools
	@echo "==> fuzzing every target for $(FUZZ_SECONDS) s each (stable toolchain harness, seeded)"
	$(CARGO) run --release --locked -p gateway-fuzz -- all $(FUZZ_SECONDS)

## test-schemathesis: schemathesis against the OpenAPI document llm-local serves: every
## operation with bounded examples (ST_EXAMPLES each); no 5xx, every response as documented
ST_EXAMPLES ?= 25
test-schemathesis: check-tools venv
	@echo "==> schemathesis: every operation of /openapi.json, $(ST_EXAMPLES) examples each"
	$(CARGO) build --locked -p llm-local
	SKIP_BUILD=1 LLM_LOCAL_BIN=$(CURDIR)/target/debug/llm-local tests/schemathesis/run.sh $(ST_EXAMPLES)

## test-browser: the dashboard in Debian's chromium driven by playwright-core (both installed
## if missing); screenshots of every page (light, dark, phone) in tests/browser/artifacts/
test-browser: check-tools
	@echo "==> the dashboard in a real browser (chromium + playwright-core)"
	$(CARGO) build --locked -p llm-local
	SKIP_BUILD=1 LLM_LOCAL_BIN=$(CURDIR)/target/debug/llm-local tests/browser/run.sh

## test-aws: the store conformance suite on DynamoDB and Secrets Manager in ministack
test-aws: check-tools venv
	@echo "==> conformance suite on the AWS backends (ministack on loopback)"
	$(CARGO) build --locked -p generate
	$(WITH_EMULATOR) $(CARGO) test --locked -p shared --features aws,conformance --test aws_conformance --test aws_round_trips --test aws_faults --test lambda_streaming -- --include-ignored --nocapture

## lint: rustfmt check and clippy with warnings as errors
lint: check-tools
	@echo "==> cargo fmt --check"
	$(CARGO) fmt --all -- --check
	@echo "==> cargo clippy -D warnings"
	$(CARGO) clippy --workspace --all-targets --all-features --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## venv: Python tools (ministack, boto3, checkov, python-hcl2, cargo-lambda, ziglang) in ./.venv
venv:
	@tools/venv.sh

## build: Lambda zips (target/lambda/<function>/bootstrap.zip) for ARCH=x86_64|arm64
build: check-tools venv
	@echo "==> cargo lambda build --release ($(ARCH)) for: $(LAMBDAS)"
	PATH="$(VENV_BIN):$$PATH" $(CARGO) lambda build --release --locked --output-format zip \
		$(if $(filter arm64,$(ARCH)),--arm64,--x86-64) $(addprefix -p ,$(LAMBDAS))
	@ls -l $(foreach f,$(LAMBDAS),target/lambda/$(f)/bootstrap.zip)
	@echo "==> SBOM (CycloneDX 1.5) of each Lambda binary (pinned cargo-cyclonedx, installed if missing)"
	ARCH=$(ARCH) tools/supply_chain.sh sbom target/lambda

## infra-check: checkov (no failed check) and terraform fmt where terraform exists
infra-check: venv
	@echo "==> static checks on infra/"
	tools/infra_check.sh

## deploy-local: the Terraform deployment, read from infra/*.tf, into ministack, and the
## settings journey through API Gateway with real Cognito JWTs
deploy-local: build
	@echo "==> deploying infra/ into ministack and running the journey"
	tools/deploy_local.sh

## bench: Lambda zip size, cold start and RSS; the gateway's added latency and
## throughput against a loopback upstream, measured beside direct calls in one run
bench: build
	@echo "==> benchmark: llm-settings Lambda (zip, cold start, RSS)"
	$(WITH_EMULATOR) $(VENV_BIN)/python tools/bench_lambda.py target/lambda/llm-settings/bootstrap.zip
	@echo "==> benchmark: llm-local against a loopback upstream (nginx + wrk; installed if missing)"
	@command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "installing wrk and nginx (apt-get)"; apt-get install -y -q wrk nginx >/dev/null; }
	$(CARGO) build --release --locked -p llm-local
	$(VENV_BIN)/python tools/bench_gateway.py
	@echo "==> benchmark: what the durable usage write costs a request (the write path alone)"
	$(CARGO) run --release --locked -p shared --example bench_write
	@echo "==> benchmark: usage analytics, 1,000,000 entries on the embedded store"
	$(CARGO) run --release --locked -p shared --example bench_usage
	@echo "==> benchmark: the same query shape on DynamoDB (emulator): items read vs volume"
	$(WITH_EMULATOR) $(CARGO) run --release --locked -p shared --features aws --example bench_usage -- --dynamodb

## bench-profile: where llm-local's time goes: perf on a release build with symbols,
## grouped by tools/perf_categories.py into target/bench-profile.txt
bench-profile: check-tools venv
	@command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "installing wrk and nginx (apt-get)"; apt-get install -y -q wrk nginx >/dev/null; }
	@command -v perf >/dev/null || { echo "installing perf (apt-get)"; apt-get install -y -q linux-perf >/dev/null; }
	$(CARGO) build --profile profiling --locked -p llm-local
	rm -f target/bench-profile.txt
	$(VENV_BIN)/python tools/bench_gateway.py --bin target/profiling/llm-local --perf target/bench-profile.txt
	@cat target/bench-profile.txt

clean:
	$(CARGO) clean
