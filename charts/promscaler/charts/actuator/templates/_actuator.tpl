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

{{- /* Namespaces where Secrets may be read: rbac.secrets.namespaces, else the watched
namespace; empty = cluster-wide (in the ClusterRole). */ -}}
{{- define "promscaler.actuator.secretNamespaces" -}}
{{- $s := .Values.rbac.secrets -}}
{{- if $s.namespaces -}}
{{- toYaml $s.namespaces -}}
{{- else if .Values.watchNamespace -}}
{{- toYaml (list .Values.watchNamespace) -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{- /* The rules for PromScalers, scale targets and Events (ClusterRole, or Role in the watched
namespace). Secrets are separate: they may be narrower than the watch. */ -}}
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
{{- range .Values.rbac.scaleTargets }}
# Scale targets ({{ .apiGroup | default "core" }}): watched for replicas, written through /scale only.
- apiGroups: [{{ .apiGroup | quote }}]
  resources: {{ toJson .resources }}
  verbs: ["get", "list", "watch"]
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
{{- end -}}

{{- define "promscaler.actuator.secretRules" -}}
# Secrets referenced by PromScalerAuthentications (secretTargetRef); their values travel to the
# fetcher inside the request and are never logged.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end -}}
