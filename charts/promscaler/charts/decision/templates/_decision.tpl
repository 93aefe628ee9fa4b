{{- /* The decision service's own parts; the shared ones are in the library chart promscaler-common. */ -}}

{{- define "promscaler.decision.deployment" -}}
{{ include "promscaler.deployment" (dict
  "ctx" .
  "name" (include "promscaler.fullname" .)
  "args" list
  "automountToken" false
  "autoscaled" .Values.autoscaling.enabled) }}
{{- end -}}

{{- define "promscaler.decision.serviceAccount" -}}
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
# The decision service is a pure function: no Kubernetes API access at all.
automountServiceAccountToken: false
{{- end }}
{{- end -}}
