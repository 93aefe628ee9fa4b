{{- define "promscaler-chart.prefix" -}}
{{- default .Release.Name .Values.global.fullnameOverride | trunc 36 | trimSuffix "-" -}}
{{- end -}}
