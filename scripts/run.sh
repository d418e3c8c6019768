#!/usr/bin/env bash
# Installs what KRaft needs (idempotently), builds the release site and binary, and serves.
# Extra arguments go to `kraft serve` (see `target/release/kraft --help`).
set -euo pipefail
source "$(dirname "$0")/lib/setup.sh"
cd "$KRAFT_ROOT"

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
scripts/site.sh release
say "building the kraft binary"
cargo build --release -p server
exec target/release/kraft serve "$@"
