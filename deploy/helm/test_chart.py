#!/usr/bin/env python3
"""The Helm chart at deploy/helm/kraft, checked with real Helm (v4, through helm-python-sdk, which
ships Helm's own Go library) against a standalone hostsim.

    test_chart.py HOSTSIM_BINARY        (KUBECTL: a kubectl 1.37; scripts/test.sh sets both up)

Lints the chart, renders it with its defaults and with other values, checks that
values.schema.json refuses bad values and that the chart keeps every KRAFT_* setting of
server/src/config.rs with KRaft's default, installs two releases into namespaces that enforce the
`restricted` Pod Security level, checks what landed on the host (and that a pod made from the
Deployment's template is admitted there), upgrades one, uninstalls both and checks that nothing is
left. Prints `helm chart: N passed, M failed`; exits 1 on any failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

# Everything the run writes stays in one scratch directory: kubectl's and Helm's discovery caches
# (client-go reads KUBECACHEDIR, Helm its HELM_*_HOME) included. Set before Helm's library loads,
# since Go copies the environment when it starts.
WORK = Path(tempfile.mkdtemp(prefix="kraft-chart-"))
os.environ["KUBECACHEDIR"] = str(WORK / "cache")
for what in ("CACHE", "CONFIG", "DATA"):
    os.environ[f"HELM_{what}_HOME"] = str(WORK / "helm" / what.lower())

import helm_python as helm  # noqa: E402 - after the environment above

HERE = Path(__file__).resolve().parent
CHART = HERE / "kraft"
REPO = HERE.parent.parent
CONFIG_RS = REPO / "server" / "src" / "config.rs"

# The values every render and install starts from: the one thing the chart cannot default.
BASE = {"database": {"existingSecret": "kraft-database"}}

# Settings whose chart default differs from KRaft's, on purpose (values.yaml says why).
CHART_DEFAULTS = {
    "KRAFT_ADDR": "0.0.0.0:3000",
    "KRAFT_DATA_DIR": "/data",
    "KRAFT_SITE_ROOT": "/app/site",
    "KRAFT_LOG_FORMAT": "json",
    "KRAFT_HOST_IN_CLUSTER": "true",
    # With rbac.create, KRaft binds itself to the chart's tenant role in each cluster namespace.
    "KRAFT_TENANT_ROLE": "kraft-kraft-system-tenant",
    # /metrics on a port of its own, which the Ingress never routes to.
    "KRAFT_METRICS_ADDR": "0.0.0.0:9090",
    # Serve on, not ready, for 5 s after SIGTERM while the endpoints drop the pod.
    "KRAFT_SHUTDOWN_DELAY": "5s",
}

passed = 0
failed = 0


def check(name: str, condition: bool, detail: object = "") -> bool:
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   - {name}")
    else:
        failed += 1
        print(f"FAIL - {name}")
        if detail:
            print("       " + str(detail).replace("\n", "\n       ")[:4000])
    return condition


def merged(*layers: dict) -> dict:
    out: dict = {}
    for layer in layers:
        _merge(out, json.loads(json.dumps(layer)))
    return out


def _merge(into: dict, layer: dict) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def objects(manifests: dict[str, str]) -> list[dict]:
    """The rendered Kubernetes objects, each document parsed by Helm's own YAML reader."""
    out = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in re.split(r"^---\s*$", text, flags=re.M):
            if doc.strip() and not all(l.strip().startswith("#") or not l.strip() for l in doc.splitlines()):
                out.append(helm.values_from_yaml(doc))
    return out


def by_kind(objs: list[dict]) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for o in objs:
        kinds.setdefault(o["kind"], []).append(o)
    return kinds


def render(values: dict, name: str = "kraft", namespace: str = "kraft-system") -> dict[str, str]:
    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(values, name=name, namespace=namespace, is_install=True)


def env_of(deployment: dict) -> dict[str, object]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- kubectl -----------------------------------------------------------------------------------

KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl"
KUBECONFIG: str | None = None


def kubectl(*args: str, stdin: str | None = None, ok: bool = True) -> str:
    env = dict(os.environ)
    if KUBECONFIG:
        env["KUBECONFIG"] = KUBECONFIG
    result = subprocess.run(
        [KUBECTL, "--cache-dir", str(WORK / "cache"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if ok and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout if ok else result.stdout + result.stderr


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json"))


# --- what config.rs says -------------------------------------------------------------------------


def kraft_defaults() -> dict[str, str | None]:
    """Every environment variable of `kraft serve` with its default as KRaft prints it (`None`:
    no default), read from the clap attributes in server/src/config.rs."""
    source = CONFIG_RS.read_text()
    settings: dict[str, str | None] = {}
    for attr in re.findall(r"#\[arg\((.*?)\)\]\s*pub \w+:", source, re.S):
        env = re.search(r'env = "([A-Z0-9_]+)"', attr)
        if not env:
            continue
        default = re.search(r'default_value = "([^"]*)"', attr)
        default_t = re.search(r"default_value_t = ([^,\n]+)", attr)
        if default:
            value: str | None = default.group(1)
        elif default_t:
            raw = default_t.group(1).strip()
            # `SignupMode::Open` → open, `TlsArg::SelfSigned` → self-signed (clap's ValueEnum).
            variant = raw.split("::")[-1]
            value = (
                re.sub(r"(?<!^)(?=[A-Z])", "-", variant).lower() if "::" in raw else raw.lower()
            )
        else:
            value = None
        # An empty default is no setting at all, as the chart's empty values are.
        settings[env.group(1)] = value or None
    return settings


# --- the checks ----------------------------------------------------------------------------------


def lint_checks() -> None:
    for label, values in [("its defaults", None), ("an ingress, a ServiceMonitor and a created secret", EDGE)]:
        report = helm.lint(str(CHART), values, strict=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        check(f"helm lint --strict passes with {label}", not problems, problems)


def schema_checks() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        try:
            chart.validate_schema(merged(BASE, EDGE))
            check("values.schema.json accepts the chart's defaults and the edge values", True)
        except helm.HelmError as e:
            check("values.schema.json accepts the chart's defaults and the edge values", False, e)
        bad = [
            ("replicaCount: \"two\"", {"replicaCount": "two"}, "replicaCount"),
            ("an unknown top-level key", {"replicas": 3}, "replicas"),
            ("an unknown config key", {"config": {"signupLimit": 3}}, "signupLimit"),
            ("config.tls: on", {"config": {"tls": "on"}}, "tls"),
            ("config.signupMode: everyone", {"config": {"signupMode": "everyone"}}, "signupMode"),
            ("config.sessionIdle: 0s", {"config": {"sessionIdle": "0s"}}, "sessionIdle"),
            ("config.podSecurity: restricted (KRaft refuses to start)", {"config": {"podSecurity": "restricted"}}, "podSecurity"),
            ("config.publicUrl without a scheme", {"config": {"publicUrl": "kraft.example"}}, "publicUrl"),
            ("config.clusterModes: hcp", {"config": {"clusterModes": "hcp"}}, "clusterModes"),
            ("a MySQL database.url", {"database": {"url": "mysql://x@db/kraft"}}, "url"),
            ("service.port 0", {"service": {"port": 0}}, "port"),
            ("config.maxLogViewsPerUser 0", {"config": {"maxLogViewsPerUser": 0}}, "maxLogViewsPerUser"),
        ]
        for label, values, key in bad:
            try:
                chart.validate_schema(merged(chart.values, values))
                check(f"values.schema.json refuses {label}", False, "accepted")
            except helm.HelmValuesError as e:
                check(f"values.schema.json refuses {label}", key in str(e), e)
    # What an operator sees: the same refusal from an install, before anything is sent (a client
    # dry run against an address where nothing listens).
    nowhere = (
        "apiVersion: v1\nkind: Config\ncurrent-context: none\n"
        "clusters: [{name: none, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: none, context: {cluster: none, user: none}}]\nusers: [{name: none, user: {}}]\n"
    )
    try:
        with helm.Config(kubeconfig_content=nowhere, namespace="default") as cfg:
            cfg.install(str(CHART), "refused", merged(BASE, {"replicaCount": "two"}), dry_run="client")
        check("helm install refuses replicaCount: \"two\"", False, "installed")
    except helm.HelmError as e:
        check("helm install refuses replicaCount: \"two\"", "replicaCount" in str(e), e)


def default_render_checks() -> None:
    manifests = render(BASE)
    objs = objects(manifests)
    kinds = by_kind(objs)
    check(
        "the defaults render a ServiceAccount, Service, Deployment, PDB, ClusterRole(Binding), Role(Binding)",
        sorted(kinds) == sorted([
            "ServiceAccount", "Service", "Deployment", "PodDisruptionBudget", "ClusterRole",
            "ClusterRoleBinding", "Role", "RoleBinding",
        ]),
        sorted(kinds),
    )
    deploy = kinds["Deployment"][0]
    pod = deploy["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check("two replicas by default", deploy["spec"]["replicas"] == 2, deploy["spec"]["replicas"])
    check("the image is the Dockerfile's, tagged with the appVersion", c["image"] == "kraft:0.1.0", c["image"])
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    term = (anti.get("preferredDuringSchedulingIgnoredDuringExecution") or [{}])[0].get("podAffinityTerm", {})
    check(
        "replicas prefer different nodes (pod anti-affinity on the hostname)",
        term.get("topologyKey") == "kubernetes.io/hostname"
        and term.get("labelSelector", {}).get("matchLabels") == deploy["spec"]["selector"]["matchLabels"],
        anti,
    )
    check(
        "probes: startup and liveness on /healthz, readiness on /readyz, on the named port",
        c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        and c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        and c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"},
        c,
    )
    sc, psc = c["securityContext"], pod["securityContext"]
    check(
        "restricted: non-root uid 10001, no privilege escalation, no capabilities, RuntimeDefault seccomp",
        psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 10001
        and sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities") == {"drop": ["ALL"]}
        and psc.get("seccompProfile") == {"type": "RuntimeDefault"},
        (psc, sc),
    )
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    check(
        "read-only root filesystem, with the data dir and /tmp on emptyDirs",
        sc.get("readOnlyRootFilesystem") is True
        and "emptyDir" in volumes[mounts["/data"]] and "emptyDir" in volumes[mounts["/tmp"]],
        (sc, mounts),
    )
    env = env_of(deploy)
    check(
        "DATABASE_URL comes from the existing Secret",
        env["DATABASE_URL"] == {"secretKeyRef": {"name": "kraft-database", "key": "url"}},
        env.get("DATABASE_URL"),
    )
    check("no Ingress: KRaft answers TLS itself (KRAFT_TLS=self-signed)", env["KRAFT_TLS"] == "self-signed", env["KRAFT_TLS"])
    check(
        "KRaft uses the pod's service account (KRAFT_HOST_IN_CLUSTER) and listens on 0.0.0.0:3000",
        env["KRAFT_HOST_IN_CLUSTER"] == "true" and env["KRAFT_ADDR"] == "0.0.0.0:3000"
        and c["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"},
                           {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
        (env, c["ports"]),
    )
    ann = deploy["spec"]["template"]["metadata"]["annotations"]
    check(
        "pods carry the prometheus.io scrape annotations for /metrics on its own port 9090",
        ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9090"
        and ann.get("prometheus.io/path") == "/metrics",
        ann,
    )
    pdb = kinds["PodDisruptionBudget"][0]
    check(
        "the PodDisruptionBudget lets a drain take one pod at a time",
        pdb["spec"] == {"maxUnavailable": 1, "selector": deploy["spec"]["selector"]},
        pdb["spec"],
    )
    sa = kinds["ServiceAccount"][0]["metadata"]["name"]
    check("the pods run as the chart's ServiceAccount", pod["serviceAccountName"] == sa, pod["serviceAccountName"])
    svc = kinds["Service"][0]["spec"]
    check(
        "the Service sends port 3000 to the pods' http port and 9090 to their metrics port",
        svc["ports"][0]["port"] == 3000 and svc["ports"][0]["targetPort"] == "http"
        and svc["ports"][1] == {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
        and svc["selector"] == deploy["spec"]["selector"]["matchLabels"],
        svc,
    )
    rbac_checks(kinds, sa)

    # Every KRAFT_* setting of config.rs is a value, with KRaft's own default.
    defaults = kraft_defaults()
    check("config.rs lists the settings (the parser found them)", len(defaults) > 40, len(defaults))
    wrong = {
        name: (env.get(name), CHART_DEFAULTS.get(name, kraft))
        for name, kraft in defaults.items()
        if name not in ("KRAFT_TLS", "DATABASE_URL")
        and env.get(name) != CHART_DEFAULTS.get(name, kraft)
    }
    check("every KRAFT_* setting has KRaft's default (or the chart's documented one)", not wrong, wrong)
    # Set every setting that defaults to unset: each must reach the container.
    with helm.Chart.load(str(CHART)) as chart:
        config = chart.values["config"]
    filled = {
        "hostKubeconfig": "/etc/kraft/host.kubeconfig", "publicUrl": "https://kraft.example",
        "publicCaFile": "/etc/kraft/ca.crt", "trustedProxies": "10.42.0.0/16",
        "adminBootstrap": "token", "reservedHostnames": "kraft.example",
        "virtualRuntimeClass": "gvisor", "virtualNodeSelector": "kraft.dev/virtual=true",
        "ingressAddress": "203.0.113.7:443", "rustLog": "kraft=debug", "tls": "off",
        "leaseNamespace": "kraft-system", "tenantRole": "kraft-tenant",
        "oidcIssuer": "https://idp.example", "oidcClientId": "kraft",
        "oidcClientSecretFile": "/etc/kraft/oidc/client-secret", "oidcAdminGroup": "kraft-admins",
        "oidcOrganizerGroup": "teachers", "oidcRedirectUrl": "https://kraft.example/auth/oidc/callback",
        "oidcCaFile": "/etc/kraft/oidc/ca.crt",
    }
    check(
        "the settings without a default are exactly the empty values",
        sorted(k for k, v in config.items() if v == "") == sorted(filled),
        sorted(k for k, v in config.items() if v == ""),
    )
    full_env = env_of(by_kind(objects(render(merged(BASE, {"config": filled}))))["Deployment"][0])
    missing = sorted(set(defaults) - set(full_env))
    extra = sorted(n for n in full_env if n.startswith("KRAFT_") and n not in defaults)
    check("every KRAFT_* variable of config.rs reaches the container, and no other", not missing and not extra, (missing, extra))


def rbac_checks(kinds: dict[str, list[dict]], sa: str) -> None:
    def table(role: dict) -> dict:
        return {
            (tuple(r.get("apiGroups", [])), tuple(r.get("resources", [])) or tuple(r.get("nonResourceURLs", [])),
             tuple(r.get("resourceNames", []))): sorted(r["verbs"])
            for r in role["rules"]
        }
    roles = {r["metadata"]["name"]: r for r in kinds["ClusterRole"]}
    role, tenant = roles.get("kraft-kraft-system"), roles.get("kraft-kraft-system-tenant")
    if not check("two ClusterRoles: KRaft's host-wide one and the tenant one", bool(role and tenant), sorted(roles)):
        return
    want = {
        (("k3k.io",), ("virtualclusterpolicies",), ()): ["create", "delete", "list", "patch"],
        (("k3k.io",), ("clusters",), ()): ["list", "watch"],
        (("",), ("namespaces",), ()): ["create", "delete", "get", "list", "patch"],
        (("rbac.authorization.k8s.io",), ("rolebindings",), ()): ["create", "list", "patch"],
        (("rbac.authorization.k8s.io",), ("clusterroles",), ("kraft-kraft-system-tenant",)): ["bind"],
        (("networking.k8s.io",), ("networkpolicies",), ()): ["list"],
        (("",), ("nodes",), ()): ["list"],
        (("",), ("resourcequotas",), ()): ["list"],
        (("metrics.k8s.io",), ("pods",), ()): ["list"],
        (("authentication.k8s.io",), ("selfsubjectreviews",), ()): ["create"],
        ((), ("/version",), ()): ["get"],
    }
    check("the ClusterRole grants exactly the host-wide calls KRaft makes, and no Secret", table(role) == want, table(role))
    want_tenant = {
        (("k3k.io",), ("clusters",), ()): ["create", "delete", "patch"],
        (("networking.k8s.io",), ("networkpolicies",), ()): ["create", "patch"],
        (("",), ("secrets",), ()): ["get"],
        (("",), ("events",), ()): ["list"],
        (("",), ("pods",), ()): ["list"],
        (("",), ("pods/log",), ()): ["get"],
    }
    check("the tenant ClusterRole grants what KRaft does in a cluster namespace", table(tenant) == want_tenant, table(tenant))
    env = {e["name"]: e.get("value") for e in kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    check("KRaft is told the tenant role's name", env.get("KRAFT_TENANT_ROLE") == "kraft-kraft-system-tenant", env.get("KRAFT_TENANT_ROLE"))
    check("nothing binds the tenant role host-wide",
          all(b["roleRef"]["name"] != "kraft-kraft-system-tenant" for b in kinds["ClusterRoleBinding"]), kinds["ClusterRoleBinding"])
    binding = kinds["ClusterRoleBinding"][0]
    lease = kinds["Role"][0]
    check(
        "a Role in its own namespace lets it get, create and update leader-election Leases",
        lease["metadata"]["namespace"] == "kraft-system"
        and lease["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}],
        lease,
    )


EDGE = {
    "replicaCount": 1,
    "database": {"url": "postgres://kraft:secret@db.example:5432/kraft"},
    "config": {"publicUrl": "https://kraft.example", "secureCookies": True, "trustedProxies": "10.42.0.0/16"},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "host": "kraft.example",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"},
        "tls": [{"secretName": "kraft-tls", "hosts": ["kraft.example"]}],
    },
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "selfSignedCa": {"existingSecret": "kraft-ca"},
}


def edge_render_checks() -> None:
    manifests = render(merged(BASE, EDGE), name="edge", namespace="edge")
    kinds = by_kind(objects(manifests))
    check(
        "with one replica there is no PodDisruptionBudget; the Ingress, ServiceMonitor and Secret are there",
        "PodDisruptionBudget" not in kinds and {"Ingress", "ServiceMonitor", "Secret"} <= set(kinds),
        sorted(kinds),
    )
    ing = kinds["Ingress"][0]
    rule = ing["spec"]["rules"][0]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    check(
        "the Ingress: its class, TLS secret, host and annotations, to the Service's http port",
        ing["spec"]["ingressClassName"] == "nginx"
        and ing["spec"]["tls"] == [{"secretName": "kraft-tls", "hosts": ["kraft.example"]}]
        and rule["host"] == "kraft.example"
        and backend == {"name": "edge-kraft", "port": {"name": "http"}}
        and ing["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"},
        ing,
    )
    deploy = kinds["Deployment"][0]
    env = env_of(deploy)
    check(
        "behind the Ingress KRaft speaks plain HTTP (KRAFT_TLS=off) and names the public URL",
        env["KRAFT_TLS"] == "off" and env["KRAFT_PUBLIC_URL"] == "https://kraft.example"
        and env["KRAFT_SECURE_COOKIES"] == "true" and env["KRAFT_TRUSTED_PROXIES"] == "10.42.0.0/16",
        env,
    )
    secret = kinds["Secret"][0]
    check(
        "database.url becomes a Secret that DATABASE_URL reads",
        base64.b64decode(secret["data"]["url"]).decode() == EDGE["database"]["url"]
        and env["DATABASE_URL"] == {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "url"}},
        (secret["metadata"], env["DATABASE_URL"]),
    )
    sm = kinds["ServiceMonitor"][0]
    check(
        "the ServiceMonitor scrapes /metrics on the Service's metrics port, with the given labels",
        sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s", "scrapeTimeout": "10s"}]
        and sm["metadata"]["labels"].get("release") == "prometheus"
        and sm["spec"]["selector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"],
        sm,
    )
    pod = deploy["spec"]["template"]["spec"]
    ca = next((v for v in pod["volumes"] if v["name"] == "ca"), None)
    mount = next((m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "ca"), None)
    check(
        "selfSignedCa mounts one CA for every replica at <data dir>/tls",
        ca is not None and ca["secret"]["secretName"] == "kraft-ca"
        and [i["path"] for i in ca["secret"]["items"]] == ["kraft-ca.crt", "kraft-ca.key"]
        and mount == {"name": "ca", "mountPath": "/data/tls", "readOnly": True},
        (ca, mount),
    )
    notes = manifests.get("kraft/templates/NOTES.txt", "")
    check(
        "NOTES name the public URL and how to create the first admin",
        "https://kraft.example" in notes and "kraft admin create-user" in notes and "setup_token" in notes,
        notes,
    )
    default_notes = render(BASE).get("kraft/templates/NOTES.txt", "")
    check(
        "without an Ingress NOTES say how to port-forward, and that publicUrl is unset",
        "port-forward svc/kraft 3000:3000" in default_notes and "config.publicUrl=https://127.0.0.1:3000" in default_notes,
        default_notes,
    )
    existing = by_kind(objects(render(merged(BASE, {"database": {"existingSecret": "my-db", "existingSecretKey": "dsn"}}))))
    check(
        "with an existing Secret the chart makes none and reads its key",
        "Secret" not in existing
        and env_of(existing["Deployment"][0])["DATABASE_URL"] == {"secretKeyRef": {"name": "my-db", "key": "dsn"}},
        sorted(existing),
    )
    for label, values, words in [
        ("an Ingress without config.publicUrl", {"ingress": {"enabled": True}}, "config.publicUrl"),
        ("no database at all", {"database": {"existingSecret": ""}}, "database.existingSecret"),
        ("neither the in-cluster account nor a kubeconfig", {"config": {"hostInCluster": False}}, "simulated host"),
    ]:
        try:
            render(merged(BASE, values))
            check(f"the chart refuses {label}", False, "rendered")
        except helm.HelmError as e:
            check(f"the chart refuses {label}", words in str(e), e)


# --- against hostsim ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hostsim(binary: str) -> subprocess.Popen:
    global KUBECONFIG
    KUBECONFIG = str(WORK / "kubeconfig")
    proc = subprocess.Popen(
        [binary, "serve", "--addr", f"127.0.0.1:{free_port()}", "--ingress-addr", f"127.0.0.1:{free_port()}",
         "--kubeconfig-out", KUBECONFIG],
        stdout=open(WORK / "hostsim.out", "w"),
        stderr=open(WORK / "hostsim.err", "w"),
    )
    for _ in range(200):
        if Path(KUBECONFIG).exists() and Path(KUBECONFIG).stat().st_size > 0:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("hostsim did not start: " + (WORK / "hostsim.err").read_text())


RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}


def restricted_namespace(name: str) -> None:
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, *[f"{k}={v}" for k, v in RESTRICTED.items()])


NAMESPACED = ["deployments.apps", "services", "serviceaccounts", "secrets", "roles.rbac.authorization.k8s.io",
              "rolebindings.rbac.authorization.k8s.io", "poddisruptionbudgets.policy",
              "ingresses.networking.k8s.io", "servicemonitors.monitoring.coreos.com"]
CLUSTER = ["clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io"]


def release_objects(release: str, namespace: str) -> list[str]:
    """Everything on the host that belongs to the release, its own record included."""
    found = []
    selector = f"app.kubernetes.io/instance={release}"
    for kind in NAMESPACED:
        for item in kubectl_json("get", kind, "-n", namespace, "-l", selector)["items"]:
            found.append(f"{kind}/{item['metadata']['name']}")
    for kind in CLUSTER:
        for item in kubectl_json("get", kind, "-l", selector)["items"]:
            found.append(f"{kind}/{item['metadata']['name']}")
    for item in kubectl_json("get", "secrets", "-n", namespace, "-l", f"owner=helm,name={release}")["items"]:
        found.append(f"secrets/{item['metadata']['name']}")
    return sorted(found)


def server_dry_run_warnings(deployment: dict) -> str:
    """What the API server warns about the Deployment, created again under another name
    (`kubectl create --dry-run=server` prints the `Warning:` headers on stderr)."""
    copy = json.loads(json.dumps(deployment))
    copy["metadata"] = {"name": "warn-check", "namespace": deployment["metadata"]["namespace"]}
    result = subprocess.run(
        [KUBECTL, "--cache-dir", str(WORK / "cache"), "create", "--dry-run=server", "-f", "-"],
        input=json.dumps(copy), capture_output=True, text=True,
        env={**os.environ, "KUBECONFIG": KUBECONFIG or ""}, timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"server dry run: {result.stderr.strip()}")
    return result.stderr.strip()


def pod_from_template(deployment: dict, name: str) -> dict:
    """The pod the ReplicaSet controller would create from the Deployment's template
    (kubernetes pkg/controller/controller_utils.go GetPodFromTemplate: the template's labels,
    annotations and spec, owned by the ReplicaSet)."""
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": deployment["metadata"]["namespace"],
            "labels": template["metadata"].get("labels", {}),
            "annotations": template["metadata"].get("annotations", {}),
        },
        "spec": template["spec"],
    }


def install_checks(binary: str) -> None:
    proc = start_hostsim(binary)
    try:
        with helm.Config(kubeconfig_path=KUBECONFIG, namespace="kraft-system") as cfg:
            cfg.check_reachable()
            check("Helm reaches hostsim with its kubeconfig", True)
            restricted_namespace("kraft-system")
            restricted_namespace("edge")
            kubectl("create", "secret", "generic", "kraft-database", "-n", "kraft-system",
                    "--from-literal=url=postgres://kraft:secret@db.example:5432/kraft")
            # The operator's CRD, as installing the Prometheus Operator would bring it.
            kubectl("apply", "-f", str(HERE / "testdata" / "servicemonitor-crd.yaml"))

            started = time.monotonic()
            release = cfg.install(str(CHART), "kraft", BASE, namespace="kraft-system", timeout=60)
            check(
                "helm install of the defaults into a restricted namespace succeeds",
                release["status"] == "deployed" and release["revision"] == 1,
                {k: release.get(k) for k in ("status", "revision")},
            )
            edge = cfg.install(str(CHART), "edge", merged(BASE, EDGE), namespace="edge", timeout=60)
            check(
                "helm install with an Ingress, TLS, a ServiceMonitor and a created Secret succeeds",
                edge["status"] == "deployed" and "https://kraft.example" in edge["notes"],
                {k: edge.get(k) for k in ("status", "revision")},
            )
            print(f"       (two installs took {time.monotonic() - started:.1f}s)")

            have = release_objects("kraft", "kraft-system")
            want = sorted([
                "deployments.apps/kraft", "services/kraft", "serviceaccounts/kraft",
                "roles.rbac.authorization.k8s.io/kraft-leader-election",
                "rolebindings.rbac.authorization.k8s.io/kraft-leader-election",
                "poddisruptionbudgets.policy/kraft",
                "clusterroles.rbac.authorization.k8s.io/kraft-kraft-system",
                "clusterroles.rbac.authorization.k8s.io/kraft-kraft-system-tenant",
                "clusterrolebindings.rbac.authorization.k8s.io/kraft-kraft-system",
                "secrets/sh.helm.release.v1.kraft.v1",
            ])
            check("the release's objects are on the host, with Helm's release record", have == want, have)
            have = release_objects("edge", "edge")
            check(
                "the edge release has its Ingress, ServiceMonitor and Secret on the host",
                {"ingresses.networking.k8s.io/edge-kraft", "servicemonitors.monitoring.coreos.com/edge-kraft",
                 "secrets/edge-kraft-database", "secrets/sh.helm.release.v1.edge.v1"} <= set(have)
                and "poddisruptionbudgets.policy/edge-kraft" not in have,
                have,
            )
            listed = {r["name"]: r for r in cfg.list(all_namespaces=True)}
            check("helm list shows both releases deployed", sorted(listed) == ["edge", "kraft"], listed)

            deploy = kubectl_json("get", "deployment", "kraft", "-n", "kraft-system")
            # PodSecurity never refuses a Deployment, it warns (against the namespace's warn level).
            warnings = server_dry_run_warnings(deploy)
            check("the Deployment draws no PodSecurity warning in a restricted namespace", warnings == "", warnings)
            weak = json.loads(json.dumps(deploy))
            del weak["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]
            warnings = server_dry_run_warnings(weak)
            check(
                "(a Deployment whose pods keep their capabilities does draw one)",
                'would violate PodSecurity "restricted:latest": unrestricted capabilities' in warnings,
                warnings,
            )
            pod = pod_from_template(deploy, "kraft-template-check")
            out = kubectl("create", "-f", "-", stdin=json.dumps(pod), ok=False)
            check("a pod made from the Deployment's template is admitted under restricted", "created" in out, out)
            weak = json.loads(json.dumps(pod))
            weak["metadata"]["name"] = "kraft-weakened-check"
            del weak["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
            del weak["spec"]["containers"][0]["securityContext"]["capabilities"]
            out = kubectl("create", "-f", "-", stdin=json.dumps(weak), ok=False)
            check(
                "(and the namespace does enforce: without them the same pod is refused)",
                'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false' in out
                and "unrestricted capabilities" in out,
                out,
            )
            kubectl("delete", "pod", "kraft-template-check", "-n", "kraft-system", "--wait=false")

            upgraded = cfg.upgrade(str(CHART), "kraft", merged(BASE, {"replicaCount": 3}), namespace="kraft-system", timeout=60)
            replicas = kubectl_json("get", "deployment", "kraft", "-n", "kraft-system")["spec"]["replicas"]
            check(
                "helm upgrade to three replicas applies (revision 2)",
                replicas == 3 and upgraded["revision"] == 2 and upgraded["status"] == "deployed",
                (replicas, {k: upgraded.get(k) for k in ("status", "revision")}),
            )

            for name, namespace in [("kraft", "kraft-system"), ("edge", "edge")]:
                cfg_ns = helm.Config(kubeconfig_path=KUBECONFIG, namespace=namespace)
                with cfg_ns:
                    cfg_ns.uninstall(name, timeout=60)
                left = []
                for _ in range(50):
                    left = release_objects(name, namespace)
                    if not left:
                        break
                    time.sleep(0.1)
                check(f"helm uninstall {name} leaves nothing behind (release record included)", not left, left)
            with helm.Config(kubeconfig_path=KUBECONFIG, namespace="kraft-system") as after:
                check("helm list is empty afterwards", after.list(all_namespaces=True, all_states=True) == [],
                      after.list(all_namespaces=True, all_states=True))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = sys.argv[1]
    started = time.monotonic()
    print(f"Helm {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__}), chart {CHART}")
    try:
        lint_checks()
        schema_checks()
        default_render_checks()
        edge_render_checks()
        install_checks(binary)
    except Exception:  # noqa: BLE001 - a crash is one more failure, with its trace
        check("the checks ran to the end", False, traceback.format_exc())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print(f"({time.monotonic() - started:.1f}s)")
    print(f"helm chart: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
