{{- /* The metrics-fetcher's own parts; the shared ones are in the library chart promscaler-common. */ -}}

{{- define "promscaler.fetcher.deployment" -}}
{{- $args := list }}
{{- with .Values.allowedServers }}
{{- $args = append $args (printf "--allowed-servers=%s" (join "," .)) }}
{{- end }}
{{- $args = append $args (printf "--operator-identity-namespaces=%s" (join "," .Values.operatorIdentityNamespaces)) }}
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
  "autoscaled" .Values.autoscaling.enabled) }}
{{- end -}}

{{- define "promscaler.fetcher.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}
{{- $irsa := .Values.podIdentity.aws.irsa }}
{{- if and $irsa.enabled (not $irsa.roleArn) }}
{{- fail "metrics-fetcher.podIdentity.aws.irsa.enabled is true but roleArn is empty: set it to the ARN of the IAM role the fetcher assumes (see the chart README)" }}
{{- end }}
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
