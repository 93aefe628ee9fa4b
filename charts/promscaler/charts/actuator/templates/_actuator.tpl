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

{{- define "promscaler.actuator.deployment" -}}
{{- $shards := int .Values.sharding.shardCount }}
{{- if lt $shards 1 }}{{ fail "actuator.sharding.shardCount must be at least 1" }}{{ end }}
{{- $common := list
  (printf "--fetcher-addr=%s" (include "promscaler.actuator.peerAddr" (dict "ctx" . "component" "metrics-fetcher" "addr" .Values.peers.fetcherAddr "port" .Values.peers.fetcherPort)))
  (printf "--decision-addr=%s" (include "promscaler.actuator.peerAddr" (dict "ctx" . "component" "decision" "addr" .Values.peers.decisionAddr "port" .Values.peers.decisionPort)))
  (printf "--leader-elect=%t" .Values.leaderElection.enabled)
  (printf "--lease-namespace=%s" (include "promscaler.actuator.leaseNamespace" .))
  (printf "--kube-qps=%v" .Values.kube.qps)
  (printf "--kube-burst=%v" .Values.kube.burst)
  (printf "--grpc-authz=%t" .Values.grpcAuthz.enabled)
  (printf "--authz-cache-ttl=%s" .Values.grpcAuthz.cacheTtl)
  (printf "--secret-cache-size=%v" (int .Values.secretCacheSize)) }}
{{- with .Values.watchNamespace }}
{{- $common = append $common (printf "--watch-namespace=%s" .) }}
{{- end }}
{{- /* With gRPC TLS the actuator verifies its peers against the Secret's CA and presents the
same certificate as its client certificate (the Certificate carries both usages). */}}
{{- if ((.Values.global | default dict).grpcTls | default dict).enabled }}
{{- $dir := include "promscaler.grpcTlsDir" . }}
{{- $common = concat $common (list
  (printf "--peer-tls-ca=%s/ca.crt" $dir)
  (printf "--peer-tls-cert=%s/tls.crt" $dir)
  (printf "--peer-tls-key=%s/tls.key" $dir)) }}
{{- end }}
{{- /* The Lease holder identity is the pod name. */}}
{{- $env := list
  (dict "name" "POD_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.name")))
  (dict "name" "POD_NAMESPACE" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.namespace"))) }}
{{- if eq $shards 1 }}
{{ include "promscaler.deployment" (dict
  "ctx" .
  "name" (include "promscaler.fullname" .)
  "args" (append $common (printf "--lease-name=%s" (include "promscaler.actuator.leaseName" .)))
  "env" $env
  "automountToken" true
  "autoscaled" false) }}
{{- else }}
{{- /* One Deployment per shard: each has its own Lease (active/standby within the shard; the
actuator appends "-shard-<index>" to --lease-name) and its own selector, so the shards'
ReplicaSets never adopt each other's pods. */}}
{{- range $index := until $shards }}
---
{{ include "promscaler.deployment" (dict
  "ctx" $
  "name" (printf "%s-shard-%d" (include "promscaler.fullname" $) $index)
  "args" (concat $common (list
    (printf "--lease-name=%s" (include "promscaler.actuator.leaseName" $))
    (printf "--shard-index=%d" $index)
    (printf "--shard-count=%d" $shards)))
  "env" $env
  "extraLabels" (dict "promscaler.io/shard" (toString $index))
  "automountToken" true
  "autoscaled" false) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "promscaler.actuator.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "promscaler.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# The actuator is the one component that talks to the Kubernetes API.
automountServiceAccountToken: true
{{- end }}
{{- end -}}

{{- define "promscaler.actuator.rbac" -}}
{{- if .Values.rbac.create }}
{{- $fullname := include "promscaler.fullname" . }}
{{- $sa := include "promscaler.serviceAccountName" . }}
{{- if not .Values.watchNamespace }}
{{- /* Cluster-wide install: one ClusterRole. */}}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
rules:
  {{- include "promscaler.actuator.watchRules" . | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $fullname }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .Release.Namespace }}
{{- else }}
{{- /* Namespace-scoped install: the same rules as a Role in the watched namespace only. */}}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $fullname }}
  namespace: {{ .Values.watchNamespace }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
rules:
  {{- include "promscaler.actuator.watchRules" . | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $fullname }}
  namespace: {{ .Values.watchNamespace }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $fullname }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .Release.Namespace }}
{{- end }}
---
# ActuatorService authorizes each caller as the API server would: it creates TokenReviews and
# SubjectAccessReviews, which the built-in ClusterRole system:auth-delegator allows (and nothing
# else). Reviews are cluster-scoped, so this binding is cluster-scoped in a namespaced install too.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $fullname }}-auth-delegator
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:auth-delegator
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .Release.Namespace }}
---
# Leader election: Leases in the actuator's own namespace only (get, create, and update to
# renew, take over and release; the elector never lists or watches).
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $fullname }}-leader-election
  namespace: {{ include "promscaler.actuator.leaseNamespace" . }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create", "update", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $fullname }}-leader-election
  namespace: {{ include "promscaler.actuator.leaseNamespace" . }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $fullname }}-leader-election
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .Release.Namespace }}
{{- end }}
{{- end -}}

{{- define "promscaler.actuator.pdb" -}}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $shards := int .Values.sharding.shardCount }}
{{- if le $shards 1 }}
{{ include "promscaler.pdb" (dict "ctx" . "name" (include "promscaler.fullname" .)) }}
{{- else }}
{{- range $index := until $shards }}
---
{{ include "promscaler.pdb" (dict "ctx" $ "name" (printf "%s-shard-%d" (include "promscaler.fullname" $) $index) "extraLabels" (dict "promscaler.io/shard" (toString $index))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "promscaler.actuator.networkPolicy" -}}
{{- if .Values.networkPolicy.enabled }}
{{- /* ActuatorService (Pause, Resume, Reconcile): only labelled clients. */}}
{{ include "promscaler.networkPolicy" (dict "ctx" . "grpcFrom" list) }}
{{- end }}
{{- end -}}
