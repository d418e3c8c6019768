#!/usr/bin/env bash
# KRaft's whole test suite, from a fresh machine: installs what it needs (idempotently), then
# lints, runs the Rust tests against real PostgreSQL and SQLite, builds the release site and drives
# it in Chromium with Playwright. Exits non-zero on the first failure.
set -euo pipefail
source "$(dirname "$0")/lib/setup.sh"
cd "$KRAFT_ROOT"

logs=$(mktemp -d)
started=$SECONDS
step() { say "[$((SECONDS - started))s] $*"; }

step "checking tools"
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
ensure_wasm_toolchain
ensure_wasm_bindgen
ensure_chromium
ensure_postgres
ensure_node_modules
ensure_kubectl
ensure_helm_sdk
ensure_openapi_tools

step "formatting"
cargo fmt --all -- --check

step "clippy (server side)"
cargo clippy --release --all-targets -- -D warnings
step "clippy (browser side)"
cargo clippy --release -p frontend -- -D warnings

step "Rust tests (PostgreSQL at 127.0.0.1:5432 and SQLite)"
cargo test --release 2>&1 | tee "$logs/cargo.log"

step "the same host API and cluster tests against the K3k v1.2 profile (v1.1.0 above)"
HOSTSIM_K3K_VERSION=v1.2 cargo test --release -p hostsim -p server --test api 2>&1 | tee "$logs/cargo-v1.2.log"

step "hostsim against real kubectl (K3k v1.1.0, then v1.2)"
hostsim/conformance/kubectl.sh target/release/hostsim 2>&1 | tee "$logs/conformance.log"
HOSTSIM_K3K_VERSION=v1.2 hostsim/conformance/kubectl.sh target/release/hostsim 2>&1 | tee -a "$logs/conformance.log"

step "the kraft CLI end to end against zero-config KRaft, and the OpenAPI contract"
server/tests/cli.sh target/release/kraft 2>&1 | tee "$logs/cli.log"

step "Helm chart with real Helm v4 (lint, render, install into hostsim, uninstall)"
"$HELM_PYTHON" deploy/helm/test_chart.py target/release/hostsim 2>&1 | tee "$logs/helm.log"

step "release site, within the WebAssembly budget (frontend/wasm-budget.txt)"
scripts/site.sh release
budget=$(grep -oP '^[0-9]+' frontend/wasm-budget.txt | head -n 1)
wasm_gz=$(stat -c %s target/site/pkg/kraft.wasm.gz)
if [ "$wasm_gz" -gt "$budget" ]; then
  die "kraft.wasm is $wasm_gz bytes gzip-compressed, over the budget of $budget in frontend/wasm-budget.txt: find what grew (scripts/site.sh release, then twiggy top target/site/pkg/kraft.wasm) rather than raising the budget"
fi
say "kraft.wasm: $wasm_gz bytes gzip, budget $budget"
# The browser tests run target/release/kraft as `cargo test --release` built it for the tests
# above (as the CLI and chart steps do): the same code in the same profile. `cargo build -p
# server` would build it again only because the tests' dev-dependencies turn on more features of
# shared crates (tokio, kube, ...), which took 6.5 of a cold run's 42 minutes.

step "browser tests (Chromium)"
(cd end2end && npx playwright test) 2>&1 | tee "$logs/e2e.log"

rust_passed=$(cat "$logs/cargo.log" "$logs/cargo-v1.2.log" | grep -oP '^test result: ok\. \K[0-9]+(?= passed)' | awk '{s+=$1} END {print s+0}')
e2e_passed=$(grep -oP '^\s+\K[0-9]+(?= passed)' "$logs/e2e.log" | tail -n 1)
kubectl_passed=$(grep -oP '^kubectl conformance: \K[0-9]+(?= passed)' "$logs/conformance.log" | awk '{s+=$1} END {print s+0}')
helm_passed=$(grep -oP '^helm chart: \K[0-9]+(?= passed)' "$logs/helm.log" | tail -n 1)
cli_passed=$(grep -oP '^kraft cli: \K[0-9]+(?= passed)' "$logs/cli.log" | tail -n 1)
step "done"
echo "rust: ${rust_passed:-0} passed; kubectl conformance: ${kubectl_passed:-0} passed; helm chart: ${helm_passed:-0} passed; cli: ${cli_passed:-0} passed; browser: ${e2e_passed:-0} passed"
echo "kraft test suite: $(( ${rust_passed:-0} + ${kubectl_passed:-0} + ${helm_passed:-0} + ${cli_passed:-0} + ${e2e_passed:-0} )) passed, 0 failed"
