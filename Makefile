# The two commands a newcomer needs: `make run` and `make test`. Both install what they
# need on a fresh machine, idempotently, and say what they are doing.

SHELL := /bin/bash
ADDR ?= 127.0.0.1:8080
DATA_DIR ?= .llm-local
CARGO ?= cargo

.PHONY: run test token lint fmt check-tools clean

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

## test: formatting, lints, and every test in the workspace
test: check-tools lint
	@echo "==> running every test in the workspace"
	$(CARGO) test --workspace --locked

## lint: rustfmt check and clippy with warnings as errors
lint: check-tools
	@echo "==> cargo fmt --check"
	$(CARGO) fmt --all -- --check
	@echo "==> cargo clippy -D warnings"
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
