#!/usr/bin/env python3
"""Writes the values.schema.json files of the promscaler chart and its three subcharts.

The three subcharts share most of their values (image, probes, security contexts, Services,
PDB, NetworkPolicy, ...), so their schemas are built here from one description instead of
being kept in sync by hand. `charts/tests/test_chart.py` fails when a committed schema differs
from what this script produces.

    python3 charts/tools/values_schema.py          # rewrite the four files
    python3 charts/tools/values_schema.py --check  # exit 1 when one is out of date

Only the standard library: it runs with any python3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHART = Path(__file__).resolve().parent.parent / "promscaler"
# The library chart the three subcharts depend on (charts/promscaler-common).
LIBRARY = "promscaler-common"
DRAFT = "http://json-schema.org/draft-07/schema#"


def obj(props: dict, required: list[str] | None = None, desc: str | None = None) -> dict:
    """A closed object: unknown keys (typos) fail the install."""
    schema: dict = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        schema["required"] = required
    if desc:
        schema["description"] = desc
    return schema


def s(desc: str | None = None, **extra) -> dict:
    schema: dict = {"type": "string", **extra}
    if desc:
        schema["description"] = desc
    return schema


def b(desc: str | None = None) -> dict:
    schema: dict = {"type": "boolean"}
    if desc:
        schema["description"] = desc
    return schema


def i(desc: str | None = None, minimum: int | None = 0, **extra) -> dict:
    schema: dict = {"type": "integer", **extra}
    if minimum is not None:
        schema["minimum"] = minimum
    if desc:
        schema["description"] = desc
    return schema


# Kubernetes structures are passed through to the manifest: kubernetes-validate checks them in
# the tests and the API server at install, so here they are only typed.
K8S_OBJECT = {"type": "object"}
K8S_LIST = {"type": "array", "items": {"type": "object"}}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
DURATION = {"type": "string", "pattern": "^([0-9]+(ns|us|µs|ms|s|m|h|d))+$"}
LOG_FORMAT = {"type": "string", "enum": ["", "plain", "json"]}
PERCENT_OR_NULL = {"type": ["integer", "null"], "minimum": 1, "maximum": 100}
INT_OR_PERCENT = {"type": ["integer", "string", "null"], "pattern": "^[0-9]+%$"}

GLOBAL = obj(
    {
        "fullnameOverride": s("Object name prefix; empty = the release name."),
        "image": obj(
            {
                "registry": s("Registry of the three images."),
                "tag": s("Tag of the three images; empty = the chart's appVersion."),
            }
        ),
        "imagePullSecrets": K8S_LIST,
        "listenHost": s("Listen host of the gRPC and admin servers.", minLength=1),
        "logLevel": s("Default --log-level (EnvFilter syntax)."),
        "logFormat": LOG_FORMAT,
        "clusterDomain": s("Cluster DNS domain.", minLength=1),
        "otel": obj({"endpoint": s("OTEL_EXPORTER_OTLP_ENDPOINT; empty = no export.")}),
        "commonLabels": STRING_MAP,
        "grpcTls": obj(
            {
                "enabled": b("gRPC between the services over TLS."),
                "secretName": s("One kubernetes.io/tls Secret shared by the components; "
                                "empty = <prefix>-<component>-grpc-tls each."),
                "requireClientCert": b("Mutual TLS: the gRPC ports require a client certificate."),
                "pinActuatorIdentity": b("The fetcher answers only allowedClientIdentities "
                                         "(--allowed-client-identities)."),
                "allowedClientIdentities": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "pattern": "^[^,\\s*]+$"},
                    "description": "SAN DNS names or URIs the fetcher admits; empty = the "
                                   "actuator's Service name.",
                },
                "certManager": obj(
                    {
                        "enabled": b("Render a cert-manager Certificate for the Secret."),
                        "issuerRef": obj(
                            {
                                "name": s(),
                                "kind": s(enum=["Issuer", "ClusterIssuer"]),
                                "group": s(),
                            }
                        ),
                        "duration": s(),
                        "renewBefore": s(),
                    }
                ),
            }
        ),
    },
    desc="Shared by the three components.",
)


def component(grpc: int, admin: int, extra: dict, autoscaling: bool) -> dict:
    props = {
        "enabled": b("Installed by the umbrella chart."),
        "global": GLOBAL,
        # Helm gives every dependency a values section, the library chart too: only the globals
        # it copies there. The library has no values of its own.
        LIBRARY: obj(
            {"global": {"type": "object"}},
            desc=f"Not a setting: the section Helm makes for the library chart {LIBRARY} "
            "(the shared templates), holding a copy of global.",
        ),
        "replicaCount": i("Replicas (per shard for the actuator)."),
        "revisionHistoryLimit": i(),
        "strategy": K8S_OBJECT,
        "image": obj(
            {
                "registry": s(),
                "repository": s(minLength=1),
                "tag": {"type": ["string", "number"]},
                "digest": s(pattern="^(sha256:[a-f0-9]{64})?$"),
                "pullPolicy": s(enum=["Always", "IfNotPresent", "Never"]),
            },
            required=["repository"],
        ),
        "imagePullSecrets": K8S_LIST,
        "serviceAccount": obj(
            {"create": b(), "name": s(), "annotations": STRING_MAP}, required=["create"]
        ),
        "ports": obj(
            {"grpc": {**PORT, "default": grpc}, "admin": {**PORT, "default": admin}},
            required=["grpc", "admin"],
        ),
        "logLevel": s("--log-level (EnvFilter syntax); empty = global.logLevel."),
        "logFormat": LOG_FORMAT,
        "shutdownGrace": {**DURATION, "description": "--shutdown-grace, e.g. 5s."},
        "terminationGracePeriodSeconds": i(),
        "extraArgs": {"type": "array", "items": {"type": "string"}},
        "extraEnv": K8S_LIST,
        "resources": K8S_OBJECT,
        "podSecurityContext": K8S_OBJECT,
        "securityContext": K8S_OBJECT,
        "livenessProbe": K8S_OBJECT,
        "readinessProbe": K8S_OBJECT,
        "podAnnotations": STRING_MAP,
        "podLabels": STRING_MAP,
        "priorityClassName": s(),
        "nodeSelector": STRING_MAP,
        "tolerations": K8S_LIST,
        "affinity": K8S_OBJECT,
        "spreadAcrossNodes": b("A soft topologySpreadConstraint over nodes."),
        "topologySpreadConstraints": K8S_LIST,
        "service": obj(
            {
                "type": s(enum=["ClusterIP", "NodePort", "LoadBalancer"]),
                "annotations": STRING_MAP,
            }
        ),
        "podDisruptionBudget": obj(
            {"enabled": b(), "maxUnavailable": INT_OR_PERCENT, "minAvailable": INT_OR_PERCENT}
        ),
        "serviceMonitor": obj(
            {
                "enabled": b(),
                "namespace": s(),
                "interval": DURATION,
                "scrapeTimeout": DURATION,
                "labels": STRING_MAP,
                "relabelings": K8S_LIST,
                "metricRelabelings": K8S_LIST,
            }
        ),
        "networkPolicy": obj(
            {
                "enabled": b(),
                "clientPodLabels": {**STRING_MAP, "minProperties": 1},
                "clientNamespaceSelector": {"type": ["object", "null"]},
                "adminFrom": K8S_LIST,
                "extraIngress": K8S_LIST,
            }
        ),
    }
    if autoscaling:
        props["autoscaling"] = obj(
            {
                "enabled": b("A HorizontalPodAutoscaler for this stateless service."),
                "minReplicas": i(minimum=1),
                "maxReplicas": i(minimum=1),
                "targetCPUUtilizationPercentage": PERCENT_OR_NULL,
                "targetMemoryUtilizationPercentage": PERCENT_OR_NULL,
                "behavior": K8S_OBJECT,
            }
        )
    props.update(extra)
    return {"$schema": DRAFT, **obj(props)}


IRSA = obj(
    {
        "enabled": b("Annotate the fetcher's ServiceAccount for IRSA."),
        "audience": s("eks.amazonaws.com/audience"),
        "roleArn": s(
            "eks.amazonaws.com/role-arn",
            pattern="^(arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/.+)?$",
        ),
        "stsRegionalEndpoints": {
            "type": ["string", "boolean"],
            "description": "eks.amazonaws.com/sts-regional-endpoints",
        },
        "tokenExpiration": i("eks.amazonaws.com/token-expiration, seconds.", minimum=600),
    },
    desc="KEDA's podIdentity.aws.irsa keys, on the metrics-fetcher's ServiceAccount.",
)

FETCHER = component(
    50051,
    9091,
    {
        "podIdentity": obj({"aws": obj({"irsa": IRSA})}),
        "aws": obj({"region": s("AWS_REGION of the fetcher.")}),
        "allowedServers": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "pattern": "^[^,\\s]+$"},
            "description": "--allowed-servers host patterns; empty = any host.",
        },
        "operatorIdentityNamespaces": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1, "pattern": "^[^,\\s]+$"},
            "description": "--operator-identity-namespaces; [\"*\"] = all.",
        },
        "namespacePolicy": {
            "type": "object",
            "description": "--namespace-policy-file: per namespace, the roleArns and AMP "
                           "workspaces it may use with the fetcher's identity.",
            "propertyNames": {"pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
            "additionalProperties": obj(
                {
                    "roleArns": {
                        "type": "array",
                        "items": {"type": "string", "pattern": "^(\\*|arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/.+)$"},
                    },
                    "workspaces": {
                        "type": "array",
                        "items": {"type": "string", "pattern": "^(\\*|ws-[A-Za-z0-9-]+)$"},
                    },
                }
            ),
        },
        "acceptOpenPolicy": b("Install an open policy with IRSA anyway."),
        "allowLinkLocal": b("--allow-link-local."),
        "stsSessionTags": b("--sts-session-tags: tag assumed roles' sessions with the namespace."),
        "queryStats": b("--query-stats: ask for the samples each query processed (cost)."),
        "upstreamBudget": obj(
            {
                "qps": {
                    "description": "--upstream-qps: requests per second per server address; null = unlimited.",
                    "type": ["number", "null"],
                    "exclusiveMinimum": 0,
                },
                "burst": {
                    "description": "--upstream-burst; null = one second's worth.",
                    "type": ["integer", "null"],
                    "minimum": 1,
                },
                "maxQueueWait": DURATION,
            }
        ),
        "limits": obj(
            {
                "perServerConcurrency": i("--per-server-concurrency", minimum=1),
                "maxResponseBytes": i("--max-response-bytes", minimum=1024),
                "maxQueryTimeout": DURATION,
                "maxRetryAfter": DURATION,
                "cacheRetention": DURATION,
                "cacheMaxBytes": i("--cache-max-bytes", minimum=0),
                "maxBatch": i("--max-batch", minimum=1),
            }
        ),
    },
    autoscaling=True,
)

DECISION = component(50052, 9092, {}, autoscaling=True)

ACTUATOR = component(
    50053,
    9093,
    {
        "grpcAuthz": obj(
            {
                "enabled": b("--grpc-authz: authorize ActuatorService callers."),
                "cacheTtl": DURATION,
            }
        ),
        "secretCacheSize": i("--secret-cache-size", minimum=1),
        "watchNamespace": s("--watch-namespace; empty = all namespaces."),
        "peers": obj(
            {
                "fetcherAddr": s("--fetcher-addr; empty = this release's fetcher (dns:///)."),
                "fetcherPort": PORT,
                "decisionAddr": s("--decision-addr; empty = this release's decision (dns:///)."),
                "decisionPort": PORT,
            }
        ),
        "leaderElection": obj({"enabled": b(), "leaseName": s(), "leaseNamespace": s()}),
        "sharding": obj({"shardCount": i("--shard-count; 1 = no sharding.", minimum=1)}),
        "kube": obj(
            {
                "qps": {"type": "number", "exclusiveMinimum": 0},
                "burst": i(minimum=1),
            }
        ),
        "rbac": obj(
            {
                "create": b(),
                "scaleTargets": {
                    "type": "array",
                    "minItems": 1,
                    "items": obj(
                        {
                            "apiGroup": s(pattern="^[^*]*$"),
                            "resources": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "string", "pattern": "^[a-z0-9.-]+$"},
                            },
                        },
                        required=["apiGroup", "resources"],
                    ),
                },
            }
        ),
    },
    autoscaling=False,
)

UMBRELLA = {
    "$schema": DRAFT,
    **obj(
        {
            "global": GLOBAL,
            "monitoring": obj(
                {
                    "dashboard": obj(
                        {
                            "enabled": b("Ship the Grafana dashboard ConfigMap."),
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                            "namespace": s("Namespace of the ConfigMap; empty = the release's."),
                        }
                    ),
                    "prometheusRule": obj(
                        {
                            "enabled": b("Ship the alerts as a PrometheusRule."),
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "additionalLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "for": {"type": "object", "additionalProperties": DURATION},
                            "disabled": {"type": "array", "items": {"type": "string"}},
                            "runbookBaseUrl": s("Base of every alert's runbook_url."),
                        }
                    ),
                }
            ),
            # The subcharts validate their own sections with their own schemas.
            "metrics-fetcher": {"type": "object"},
            "decision": {"type": "object"},
            "actuator": {"type": "object"},
            "podIdentity": {
                "description": "Not used here: KEDA's top-level podIdentity belongs under "
                "metrics-fetcher (templates/validate.yaml fails with that hint).",
            },
        }
    ),
}

FILES = {
    CHART / "values.schema.json": UMBRELLA,
    CHART / "charts/metrics-fetcher/values.schema.json": FETCHER,
    CHART / "charts/decision/values.schema.json": DECISION,
    CHART / "charts/actuator/values.schema.json": ACTUATOR,
}


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for path, schema in FILES.items():
        text = render(schema)
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(path)
            if not check:
                path.write_text(text)
    if check and stale:
        for path in stale:
            print(f"{path} is out of date: run python3 charts/tools/values_schema.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
