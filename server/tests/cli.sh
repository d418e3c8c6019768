#!/usr/bin/env bash
# The kraft CLI end to end against zero-config KRaft (SQLite, in-process hostsim, its own TLS):
# an operator makes an account and an API token, the CLI logs in with it, creates a cluster,
# waits for Ready, merges a kubeconfig into $KUBECONFIG, real kubectl lists the nodes through
# KRaft's gateway, and the cluster is deleted. Exit codes are checked along the way. Then the
# OpenAPI document is validated and every documented operation is called and its answer checked
# against the document (server/tests/openapi_contract.py).
#
# Usage: server/tests/cli.sh <kraft binary>   (KUBECTL and OPENAPI_PYTHON from scripts/lib/setup.sh)
set -euo pipefail

kraft=$(realpath "${1:?usage: cli.sh <kraft binary>}")
kubectl=${KUBECTL:-kubectl}
python=${OPENAPI_PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
passed=0

server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "--- server log (last 40 lines)" >&2
  tail -n 40 "$work/server.log" >&2 || true
  exit 1
}
ok() { passed=$((passed + 1)); echo "ok: $*"; }

# `expect_exit N cmd...`: runs cmd, which must leave with exit code N.
expect_exit() {
  local want=$1
  shift
  set +e
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  set -e
  [ "$got" -eq "$want" ] || fail "$* exited $got, expected $want: $(cat "$work/err")"
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
# Everything the CLI and the server write stays in $work.
export HOME="$work/home" KRAFT_DATA_DIR="$work/data" KRAFT_ADDR="127.0.0.1:$port"
export KUBECONFIG="$work/home/.kube/config" KRAFT_SITE_ROOT="$work/site"
unset KRAFT_CONFIG KRAFT_URL KRAFT_TOKEN XDG_CONFIG_HOME DATABASE_URL
mkdir -p "$HOME"

"$kraft" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || fail "kraft serve exited"
  sleep 0.2
done
curl -fsS "$url/readyz" >/dev/null || fail "kraft did not become ready"
ok "zero-config kraft serves on $url"

# An account and a token, as an operator makes them for a CI pipeline.
echo "correct horse battery staple" | "$kraft" admin create-user --email ada@example.org --username ada >/dev/null
token=$("$kraft" admin create-token --username ada --name ci --scopes read,clusters,kubeconfigs --days 1)
case "$token" in kraftpat_*) ok "an API token for ada" ;; *) fail "no token: $token" ;; esac
read_token=$("$kraft" admin create-token --username ada --name reader --scopes read --days 1)

expect_exit 3 "$kraft" clusters list
ok "not logged in: exit 3"
expect_exit 3 "$kraft" login "$url" --token kraftpat_not-a-token
ok "a wrong token is refused at login: exit 3"
expect_exit 0 "$kraft" login "$url" --token "$token"
grep -q "Logged in to $url as ada" "$work/err" || fail "login said: $(cat "$work/err")"
config="$HOME/.config/kraft/config.json"
[ "$(stat -c %a "$config")" = 600 ] || fail "$config is not private"
ok "login saves the URL and token privately"

expect_exit 0 "$kraft" clusters list
grep -q "No clusters yet" "$work/err" || fail "empty list said: $(cat "$work/out" "$work/err")"
expect_exit 5 "$kraft" clusters create Not_A_Name
grep -q "name" "$work/err" || fail "invalid name said: $(cat "$work/err")"
ok "invalid input: exit 5 with the field"
expect_exit 0 "$kraft" clusters create demo
grep -q "^demo " "$work/out" || fail "create printed: $(cat "$work/out")"
expect_exit 5 "$kraft" clusters create demo
ok "create, and a taken name is refused"
expect_exit 4 "$kraft" clusters get nothing-here
ok "no such cluster: exit 4"
expect_exit 3 env KRAFT_TOKEN="$read_token" "$kraft" clusters create other
grep -q "scope" "$work/err" || fail "missing scope said: $(cat "$work/err")"
ok "a read-only token cannot create: exit 3"

expect_exit 0 "$kraft" clusters wait demo --timeout 5m
expect_exit 0 "$kraft" clusters list -o json
"$python" -c 'import json, sys; c = json.load(open(sys.argv[1])); assert [x["phase"] for x in c] == ["Ready"], c' "$work/out" \
  || fail "list -o json: $(cat "$work/out")"
ok "wait until Ready; -o json for scripts"

# A kubeconfig merged into $KUBECONFIG next to what is there, and kubectl through the gateway.
mkdir -p "$(dirname "$KUBECONFIG")"
cat >"$KUBECONFIG" <<'YAML'
apiVersion: v1
kind: Config
clusters:
- name: elsewhere
  cluster:
    server: https://elsewhere.invalid:6443
users:
- name: elsewhere
  user:
    token: keep-me
contexts:
- name: elsewhere
  context:
    cluster: elsewhere
    user: elsewhere
current-context: elsewhere
YAML
expect_exit 0 "$kraft" kubeconfig demo --merge
[ "$("$kubectl" config current-context)" = demo-ada ] || fail "current context is not demo-ada"
# Captured, then searched: `kubectl … | grep -q` fails under pipefail when grep exits first and
# kubectl, still writing, dies of SIGPIPE.
contexts=$("$kubectl" config get-contexts -o name) || fail "kubectl config get-contexts failed"
grep -qx elsewhere <<<"$contexts" || fail "the other context was lost: $contexts"
[ "$(stat -c %a "$KUBECONFIG")" = 600 ] || fail "$KUBECONFIG is not private"
nodes=$("$kubectl" get nodes -o name) || fail "kubectl get nodes failed"
[ -n "$nodes" ] || fail "no nodes"
ok "kubeconfig --merge, then kubectl get nodes: $(echo "$nodes" | tr '\n' ' ')"
expect_exit 0 "$kraft" kubeconfig demo --name second -f "$work/demo.yaml"
namespaces=$("$kubectl" --kubeconfig "$work/demo.yaml" get namespaces -o name 2>&1) || fail "kubeconfig -f does not work: $namespaces"
grep -qx namespace/default <<<"$namespaces" || fail "kubeconfig -f: no default namespace in $namespaces"
ok "kubeconfig -f writes a working file"

# Every documented route, as documented (needs a ready cluster: run it now).
# An admin organizes workshops; the contract test scripts one with this token.
echo "correct horse battery staple" | "$kraft" admin create-user --email root@example.org --username root --admin >/dev/null
organizer_token=$("$kraft" admin create-token --username root --name workshops --scopes read,clusters,kubeconfigs --days 1)
"$python" "$here/openapi_contract.py" "$url" "$token" demo "$organizer_token" || fail "the API does not answer as its OpenAPI document says"
ok "OpenAPI document valid; every documented operation answers as documented"

expect_exit 0 "$kraft" clusters delete demo --wait --timeout 5m
expect_exit 4 "$kraft" clusters get demo
ok "delete --wait, then it is gone"

expect_exit 0 "$kraft" logout
expect_exit 3 "$kraft" clusters list
ok "logout forgets the token"

echo "kraft cli: $passed passed"
