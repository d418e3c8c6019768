#!/usr/bin/env bash
# Runs the benchmarks behind the performance figures (issue 17's table, and the workshop room) in
# one go on the current code and prints them; installs what they need idempotently, like test.sh.
# Benchmarks print figures and fail only if they cannot run. Run it on an otherwise idle machine.
#
#   scripts/bench.sh            # everything (about 15 minutes of benchmarks after the builds)
#   scripts/bench.sh idle ssr   # only these: size idle ssr logs workshops browser
set -euo pipefail
source "$(dirname "$0")/lib/setup.sh"
cd "$KRAFT_ROOT"

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(size idle ssr logs workshops browser)
want() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

ensure_wasm_toolchain
ensure_wasm_bindgen
ensure_postgres
command -v taskset >/dev/null || apt_install util-linux
if want ssr && ! command -v oha >/dev/null && [ ! -x "$HOME/.cache/kraft/oha/bin/oha" ]; then
  say "installing oha (HTTP load generator) into ~/.cache/kraft/oha"
  cargo install oha --locked --root "$HOME/.cache/kraft/oha"
fi
if want browser; then
  ensure_chromium
  ensure_node_modules
fi

say "building the release site and server"
scripts/site.sh release
cargo build --release -p server

if want size; then
  say "sizes"
  echo "kraft.wasm: $(stat -c %s target/site/pkg/kraft.wasm) bytes raw, $(stat -c %s target/site/pkg/kraft.wasm.gz) gzip, $(stat -c %s target/site/pkg/kraft.wasm.br) brotli"
  echo "release binary: $(stat -c %s target/release/kraft) bytes"
  if [ -x target/dist/kraft ]; then
    echo "dist binary (from the last 'cargo build --profile dist -p server'; not rebuilt here): $(stat -c %s target/dist/kraft) bytes"
  fi
fi
for bench in idle ssr logs workshops; do
  if want "$bench"; then
    say "cargo bench -p server --bench $bench"
    cargo bench -p server --bench "$bench"
  fi
done
if want browser; then
  say "node end2end/bench/log-render.mjs"
  node end2end/bench/log-render.mjs
  say "node end2end/bench/slow-link.mjs"
  node end2end/bench/slow-link.mjs
fi
