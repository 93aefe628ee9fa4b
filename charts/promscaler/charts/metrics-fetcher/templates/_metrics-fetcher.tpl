{{- /* The metrics-fetcher's own parts; the shared ones are in the library chart promscaler-common. */ -}}

{{- define "promscaler.fetcher.validateIrsa" -}}
{{- $irsa := .Values.podIdentity.aws.irsa }}
{{- if and $irsa.enabled (not $irsa.roleArn) }}
{{- fail "metrics-fetcher.podIdentity.aws.irsa.enabled is true but roleArn is empty: set it to the ARN of the IAM role the fetcher assumes (see the chart README)" }}
{{- end }}
{{- end -}}

{{- define "promscaler.fetcher.deployment" -}}
{{- /* A missing role ARN is the first thing to fix, before the policy the role would get. */}}
{{- include "promscaler.fetcher.validateIrsa" . }}
{{- include "promscaler.fetcher.validatePolicy" . }}
{{- $args := list }}
{{- with .Values.allowedServers }}
{{- $args = append $args (printf "--allowed-servers=%s" (join "," .)) }}
{{- end }}
{{- $args = append $args (printf "--operator-identity-namespaces=%s" (join "," .Values.operatorIdentityNamespaces)) }}
{{- $limits := .Values.limits }}
{{- $args = concat $args (list
  (printf "--per-server-concurrency=%v" (int $limits.perServerConcurrency))
  (printf "--max-response-bytes=%v" (int64 $limits.maxResponseBytes))
  (printf "--max-query-timeout=%s" $limits.maxQueryTimeout)
  (printf "--max-retry-after=%s" $limits.maxRetryAfter)
  (printf "--cache-retention=%s" $limits.cacheRetention)
  (printf "--cache-max-bytes=%v" (int64 $limits.cacheMaxBytes))
  (printf "--max-batch=%v" (int $limits.maxBatch))) }}
{{- $args = append $args (printf "--sts-session-tags=%t" .Values.stsSessionTags) }}
{{- $args = append $args (printf "--query-stats=%t" .Values.queryStats) }}
{{- with .Values.upstreamBudget }}
{{- if not (kindIs "invalid" .qps) }}
{{- $args = append $args (printf "--upstream-qps=%v" .qps) }}
{{- if not (kindIs "invalid" .burst) }}
{{- $args = append $args (printf "--upstream-burst=%v" (int .burst)) }}
{{- end }}
{{- $args = append $args (printf "--upstream-max-queue-wait=%s" .maxQueueWait) }}
{{- end }}
{{- end }}
{{- if .Values.allowLinkLocal }}
{{- $args = append $args "--allow-link-local" }}
{{- end }}
{{- /* Only the actuator may state a caller's namespace: with mutual TLS, pin its identity. */}}
{{- with include "promscaler.pinnedClientIdentities" . }}
{{- $args = append $args (printf "--allowed-client-identities=%s" .) }}
{{- end }}
{{- $volumes := list }}
{{- $mounts := list }}
{{- $annotations := dict }}
{{- if .Values.namespacePolicy }}
{{- $dir := "/etc/promscaler/policy" }}
{{- $args = append $args (printf "--namespace-policy-file=%s/namespaces.yaml" $dir) }}
{{- $volumes = append $volumes (dict "name" "namespace-policy" "configMap" (dict "name" (printf "%s-namespace-policy" (include "promscaler.fullname" .)))) }}
{{- $mounts = append $mounts (dict "name" "namespace-policy" "mountPath" $dir "readOnly" true) }}
{{- /* The file is read at start: a changed policy rolls the pods. */}}
{{- $annotations = dict "promscaler.io/namespace-policy-checksum" (include "promscaler.fetcher.namespacePolicyFile" . | sha256sum) }}
{{- end }}
{{- $env := list }}
{{- with .Values.aws.region }}
{{- $env = append $env (dict "name" "AWS_REGION" "value" .) }}
{{- end }}
{{ include "promscaler.deployment" (dict
  "ctx" .
  "name" (include "promscaler.fullname" .)
  "args" $args
  "env" $env
  "automountToken" false
  "autoscaled" .Values.autoscaling.enabled
  "extraVolumes" $volumes
  "extraMounts" $mounts
  "podAnnotations" $annotations) }}
{{- end -}}

{{- define "promscaler.fetcher.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}
{{- $irsa := .Values.podIdentity.aws.irsa }}
{{- include "promscaler.fetcher.validateIrsa" . }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "promscaler.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
  {{- if or $irsa.enabled .Values.serviceAccount.annotations }}
  annotations:
    {{- /* As KEDA's chart does on keda-operator's ServiceAccount. */}}
    {{- if $irsa.enabled }}
    {{- if $irsa.audience }}
    eks.amazonaws.com/audience: {{ $irsa.audience | quote }}
    {{- end }}
    eks.amazonaws.com/role-arn: {{ $irsa.roleArn | quote }}
    {{- if $irsa.stsRegionalEndpoints }}
    eks.amazonaws.com/sts-regional-endpoints: {{ $irsa.stsRegionalEndpoints | quote }}
    {{- end }}
    eks.amazonaws.com/token-expiration: {{ $irsa.tokenExpiration | quote }}
    {{- end }}
    {{- with .Values.serviceAccount.annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
# No Kubernetes API token: the fetcher never calls the API server. With IRSA the EKS pod
# identity webhook still projects the AWS web identity token (its own volume, audience above).
automountServiceAccountToken: false
{{- end }}
{{- end -}}
