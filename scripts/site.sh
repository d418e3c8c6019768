#!/usr/bin/env bash
# Builds the browser side into target/site: pkg/kraft.js, pkg/kraft.wasm, pkg/kraft.css, public files.
# usage: scripts/site.sh [release|debug]     (default: release)
# KRAFT_WASM_NAMES=1 keeps the function names in a release bundle, for profiling it (larger: not
# for the budget check or for shipping).
set -euo pipefail
source "$(dirname "$0")/lib/setup.sh"
cd "$KRAFT_ROOT"

mode=${1:-release}
strip=(--strip-debug)
case "$mode" in
  release) profile=wasm-release; outdir=wasm-release; bindgen_flags=(--remove-name-section) ;;
  debug) profile=dev; outdir=debug; bindgen_flags=() ;;
  *) die "unknown mode '$mode' (release or debug)" ;;
esac
if [ "${KRAFT_WASM_NAMES:-}" = 1 ]; then bindgen_flags=(); strip=(-g); fi

ensure_wasm_toolchain
ensure_wasm_bindgen

front=target/front
say "building the WebAssembly front end ($mode)"
if has_rustup_wasm_target; then
  cargo build -p frontend --lib --target wasm32-unknown-unknown --profile "$profile" --target-dir "$front"
else
  # No rustup wasm32 target here: Debian's rustc-web builds std from source. Only this build uses
  # it (it compiles 2-3x slower), with its own target dir so the server build never rebuilds.
  RUSTUP_TOOLCHAIN=/usr RUSTC_BOOTSTRAP=1 cargo build -p frontend --lib \
    --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
    --profile "$profile" --target-dir "$front"
fi

site=target/site
rm -rf "$site/pkg"
mkdir -p "$site/pkg"
wasm-bindgen --target web --out-dir "$site/pkg" --out-name kraft "${bindgen_flags[@]}" \
  "$front/wasm32-unknown-unknown/$outdir/frontend.wasm"
# Leptos asks for /pkg/kraft.wasm when LEPTOS_OUTPUT_NAME is set at compile time (.cargo/config.toml).
mv "$site/pkg/kraft_bg.wasm" "$site/pkg/kraft.wasm"
if [ "$mode" = release ]; then
  # Binaryen on top of rustc's opt-level z and LTO. -O1, not -Oz: what crosses the link is the
  # compressed file, and measured on this bundle (binaryen 132, b5dbfa0) -Oz makes it smaller raw
  # but larger compressed (gzip 683,927 -> 767,091 bytes, brotli 501,843 -> 546,501), -Os and -O2
  # likewise, while -O1 shrinks all three (raw -3.7 %, gzip 673,624, brotli 494,809). The
  # features are those rustc's wasm32 target emits.
  ensure_wasm_opt
  before=$(stat -c %s "$site/pkg/kraft.wasm")
  "$WASM_OPT" -O1 "${strip[@]}" --strip-producers \
    --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
    --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
    -o "$site/pkg/kraft.opt.wasm" "$site/pkg/kraft.wasm"
  mv "$site/pkg/kraft.opt.wasm" "$site/pkg/kraft.wasm"
  say "wasm-opt -O1: $before -> $(stat -c %s "$site/pkg/kraft.wasm") bytes"
fi
cp style/main.css "$site/pkg/kraft.css"
cp -R public/. "$site/"

# Precompressed once here, sent as they are to browsers that take them (server/src/assets.rs).
ensure_brotli
for file in kraft.js kraft.wasm kraft.css; do
  gzip -9 -k -f -n "$site/pkg/$file"
  brotli -q 11 -k -f "$site/pkg/$file"
done

raw=$(stat -c %s "$site/pkg/kraft.wasm")
gz=$(stat -c %s "$site/pkg/kraft.wasm.gz")
br=$(stat -c %s "$site/pkg/kraft.wasm.br")
say "site ready in $site (kraft.wasm: $raw bytes raw, $gz bytes gzip, $br bytes brotli)"
