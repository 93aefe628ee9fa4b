{{- /* The actuator's own helpers. */ -}}

{{- /* --fetcher-addr / --decision-addr default: dns:/// over the peer's headless Service, which
resolves to every ready pod so the actuator balances its HTTP/2 connections. */ -}}
{{- define "promscaler.actuator.peerAddr" -}}
{{- $ := .ctx -}}
{{- if .addr -}}
{{- .addr -}}
{{- else -}}
{{- printf "dns:///%s-headless.%s.svc.%s:%v" (include "promscaler.peerFullname" (dict "ctx" $ "component" .component)) $.Release.Namespace (include "promscaler.clusterDomain" $) .port -}}
{{- end -}}
{{- end -}}

{{- define "promscaler.actuator.leaseNamespace" -}}
{{- .Values.leaderElection.leaseNamespace | default .Release.Namespace -}}
{{- end -}}

{{- define "promscaler.actuator.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "promscaler.fullname" .) -}}
{{- end -}}

{{- /* The actuator's rules (a ClusterRole, or a Role in the watched namespace): they follow
what it watches, over the same scope (crates/actuator/src/controller: reflectors on
PromScalers, PromScalerAuthentications, Secrets, Deployments, StatefulSets). */ -}}
{{- define "promscaler.actuator.watchRules" -}}
# PromScalers and PromScalerAuthentications: the actuator's input.
- apiGroups: ["promscaler.io"]
  resources: ["promscalers", "promscalerauthentications"]
  verbs: ["get", "list", "watch"]
# Finalizers live in metadata: adding/removing one is a patch of the PromScaler itself.
- apiGroups: ["promscaler.io"]
  resources: ["promscalers"]
  verbs: ["patch", "update"]
- apiGroups: ["promscaler.io"]
  resources: ["promscalers/status", "promscalers/finalizers"]
  verbs: ["get", "update", "patch"]
# Deployments and StatefulSets: watched for replicas (the actuator's reflectors), never written.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch"]
{{- range .Values.rbac.scaleTargets }}
# Scale targets ({{ .apiGroup | default "core" }}): replicas are read and written through /scale only.
- apiGroups: [{{ .apiGroup | quote }}]
  resources:
    {{- range .resources }}
    - {{ printf "%s/scale" . | quote }}
    {{- end }}
  verbs: ["get", "update", "patch"]
{{- end }}
# Events on PromScalers (scaling, errors), through both Event APIs.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Secrets referenced by PromScalerAuthentications (secretTargetRef), read only. The actuator
# lists and watches Secrets as metadata only (RBAC cannot tell that apart from a full read) and
# GETs only the Secrets a PromScalerAuthentication in use refers to; their values travel to the
# fetcher inside the request and are never logged. Install with watchNamespace to confine this
# (and everything above) to one namespace.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# ServiceAccounts, read only: for identityOwner: workload, the eks.amazonaws.com/role-arn
# annotation of the ServiceAccount a scale target's pods run as names the role the fetcher
# assumes (only that annotation is kept in memory).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch"]
{{- end -}}
