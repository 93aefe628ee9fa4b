{{- /*
Helpers shared by the three promscaler subcharts (metrics-fetcher, decision, actuator).

The one copy: each subchart declares this library chart as a dependency
(repository: file://../../../promscaler-common) and includes these templates with its own
context, so .Chart and .Values are the subchart's. Component-specific parts (flags, RBAC, the
ServiceAccount) live in each subchart's own _<component>.tpl; each subchart has one entry
template, templates/<component>.yaml, that names its parts for promscaler.manifests.
*/ -}}

{{- /* Name prefix of every object: global.fullnameOverride or the release name. 36 characters
leave room for "-metrics-fetcher-headless" within the 63 allowed. */ -}}
{{- define "promscaler.prefix" -}}
{{- $g := .Values.global | default dict -}}
{{- default .Release.Name $g.fullnameOverride | trunc 36 | trimSuffix "-" -}}
{{- end -}}

{{- define "promscaler.fullname" -}}
{{- printf "%s-%s" (include "promscaler.prefix" .) .Chart.Name -}}
{{- end -}}

{{- /* The name of another component's objects: (dict "ctx" $ "component" "metrics-fetcher"). */ -}}
{{- define "promscaler.peerFullname" -}}
{{- printf "%s-%s" (include "promscaler.prefix" .ctx) .component -}}
{{- end -}}

{{- /* Selector labels of a component: (dict "ctx" $ "component" "actuator"). */ -}}
{{- define "promscaler.componentSelectorLabels" -}}
app.kubernetes.io/name: promscaler
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "promscaler.selectorLabels" -}}
{{ include "promscaler.componentSelectorLabels" (dict "ctx" . "component" .Chart.Name) }}
{{- end -}}

{{- define "promscaler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "promscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: promscaler
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with (.Values.global | default dict).commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "promscaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "promscaler.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /* registry/repository:tag, or registry/repository@digest. The tag defaults to
global.image.tag, then to the chart's appVersion. */ -}}
{{- define "promscaler.image" -}}
{{- $g := (.Values.global | default dict).image | default dict -}}
{{- $registry := .Values.image.registry | default $g.registry -}}
{{- $tag := .Values.image.tag | default $g.tag | default .Chart.AppVersion -}}
{{- $ref := .Values.image.repository -}}
{{- if $registry -}}{{- $ref = printf "%s/%s" $registry $ref -}}{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $ref .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (toString $tag) -}}
{{- end -}}
{{- end -}}

{{- /* A listen address: (dict "ctx" $ "port" 50051). IPv6 hosts get brackets. */ -}}
{{- define "promscaler.listenAddr" -}}
{{- $host := (.ctx.Values.global | default dict).listenHost | default "0.0.0.0" -}}
{{- if and (contains ":" $host) (not (hasPrefix "[" $host)) -}}{{- $host = printf "[%s]" $host -}}{{- end -}}
{{- printf "%s:%v" $host .port -}}
{{- end -}}

{{- define "promscaler.clusterDomain" -}}
{{- (.Values.global | default dict).clusterDomain | default "cluster.local" -}}
{{- end -}}

{{- /* gRPC TLS (global.grpcTls): where the Secret is mounted, and its name: the one shared
Secret when global.grpcTls.secretName is set, else the component's own <prefix>-<component>-grpc-tls
(each component has its own certificate, so the fetcher can tell the actuator from the others). */ -}}
{{- define "promscaler.grpcTlsDir" -}}/etc/promscaler/grpc-tls{{- end -}}

{{- define "promscaler.grpcTlsSecret" -}}
{{- $tls := (.Values.global | default dict).grpcTls | default dict -}}
{{- $tls.secretName | default (printf "%s-%s-grpc-tls" (include "promscaler.prefix" .) .Chart.Name) -}}
{{- end -}}

{{- /* The client identities a gRPC server pins with --allowed-client-identities when mutual TLS
is on: global.grpcTls.allowedClientIdentities, or the actuator's Service name
(<prefix>-actuator.<namespace>.svc), which only the actuator's certificate carries. Empty when
pinning is off. Comma-separated. */ -}}
{{- define "promscaler.pinnedClientIdentities" -}}
{{- $tls := (.Values.global | default dict).grpcTls | default dict -}}
{{- if and $tls.enabled $tls.requireClientCert (ne (toString $tls.pinActuatorIdentity) "false") -}}
{{- $ids := $tls.allowedClientIdentities | default (list (printf "%s-actuator.%s.svc" (include "promscaler.prefix" .) .Release.Namespace)) -}}
{{- join "," $ids -}}
{{- end -}}
{{- end -}}

{{- /* The flags every service takes (runtime's ServerArgs), as YAML list items. */ -}}
{{- define "promscaler.commonArgs" -}}
{{- $g := .Values.global | default dict -}}
{{- $tls := $g.grpcTls | default dict -}}
- {{ printf "--grpc-addr=%s" (include "promscaler.listenAddr" (dict "ctx" . "port" .Values.ports.grpc)) | quote }}
- {{ printf "--admin-addr=%s" (include "promscaler.listenAddr" (dict "ctx" . "port" .Values.ports.admin)) | quote }}
- {{ printf "--log-level=%s" (.Values.logLevel | default $g.logLevel | default "info") | quote }}
- {{ printf "--log-format=%s" (.Values.logFormat | default $g.logFormat | default "json") | quote }}
- {{ printf "--shutdown-grace=%s" .Values.shutdownGrace | quote }}
{{- if $tls.enabled }}
- {{ printf "--grpc-tls-cert=%s/tls.crt" (include "promscaler.grpcTlsDir" .) | quote }}
- {{ printf "--grpc-tls-key=%s/tls.key" (include "promscaler.grpcTlsDir" .) | quote }}
{{- if $tls.requireClientCert }}
- {{ printf "--grpc-tls-client-ca=%s/ca.crt" (include "promscaler.grpcTlsDir" .) | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- /*
The Deployment of a component. Arguments (a dict):
  ctx            the root context
  name           the Deployment's name
  args           component flags (strings) after the common ones
  env            extra env entries (list of EnvVar)
  extraLabels    labels added to metadata, selector and pod (e.g. the actuator's shard)
  automountToken whether the pod mounts a Kubernetes API token
  autoscaled     true when an HPA owns .spec.replicas
  extraVolumes   pod volumes (list), e.g. a ConfigMap
  extraMounts    the container's mounts of them (list)
  podAnnotations annotations added to the pod template (e.g. a checksum of a ConfigMap)
*/ -}}
{{- define "promscaler.deployment" -}}
{{- $ := .ctx -}}
{{- $v := $.Values -}}
{{- $g := $v.global | default dict -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "promscaler.labels" $ | nindent 4 }}
    {{- with .extraLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ $v.revisionHistoryLimit }}
  {{- with $v.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "promscaler.selectorLabels" $ | nindent 6 }}
      {{- with .extraLabels }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
  template:
    metadata:
      {{- with (merge (dict) (.podAnnotations | default dict) ($v.podAnnotations | default dict)) }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      labels:
        {{- include "promscaler.labels" $ | nindent 8 }}
        {{- with .extraLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "promscaler.serviceAccountName" $ }}
      automountServiceAccountToken: {{ .automountToken }}
      enableServiceLinks: false
      {{- with (concat ($g.imagePullSecrets | default list) ($v.imagePullSecrets | default list)) }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ $.Chart.Name }}
          image: {{ include "promscaler.image" $ | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args:
            {{- include "promscaler.commonArgs" $ | nindent 12 }}
            {{- range .args }}
            - {{ . | quote }}
            {{- end }}
            {{- range $v.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          {{- $env := .env | default list }}
          {{- with ($g.otel | default dict).endpoint }}
          {{- $env = append $env (dict "name" "OTEL_EXPORTER_OTLP_ENDPOINT" "value" .) }}
          {{- end }}
          {{- $env = concat $env ($v.extraEnv | default list) }}
          {{- with $env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: grpc
              containerPort: {{ $v.ports.grpc }}
              protocol: TCP
            - name: admin
              containerPort: {{ $v.ports.admin }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /live
              port: admin
            {{- toYaml $v.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /ready
              port: admin
            {{- toYaml $v.readinessProbe | nindent 12 }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if ($g.grpcTls | default dict).enabled }}
            - name: grpc-tls
              mountPath: {{ include "promscaler.grpcTlsDir" $ }}
              readOnly: true
            {{- end }}
            {{- with .extraMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- if ($g.grpcTls | default dict).enabled }}
        - name: grpc-tls
          secret:
            secretName: {{ include "promscaler.grpcTlsSecret" $ }}
        {{- end }}
        {{- with .extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if or $v.topologySpreadConstraints $v.spreadAcrossNodes }}
      topologySpreadConstraints:
        {{- if $v.spreadAcrossNodes }}
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "promscaler.selectorLabels" $ | nindent 14 }}
              {{- with .extraLabels }}
              {{- toYaml . | nindent 14 }}
              {{- end }}
        {{- end }}
        {{- with $v.topologySpreadConstraints }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
{{- end -}}

{{- /* The ClusterIP Service (gRPC and admin) and the headless Service (gRPC only) that the
actuator resolves with dns:/// to balance over every ready pod: gRPC keeps one HTTP/2
connection per backend, so a ClusterIP would pin each client to one pod. */ -}}
{{- define "promscaler.services" -}}
{{- $v := .Values -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "promscaler.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
  {{- with $v.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $v.service.type }}
  selector:
    {{- include "promscaler.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $v.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
    - name: admin
      port: {{ $v.ports.admin }}
      targetPort: admin
      protocol: TCP
      appProtocol: http
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "promscaler.fullname" . }}-headless
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
    promscaler.io/service-kind: headless
spec:
  type: ClusterIP
  clusterIP: None
  publishNotReadyAddresses: false
  selector:
    {{- include "promscaler.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $v.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
{{- end -}}

{{- /* A PodDisruptionBudget: (dict "ctx" $ "name" ... "extraLabels" ...). */ -}}
{{- define "promscaler.pdb" -}}
{{- $ := .ctx -}}
{{- $pdb := $.Values.podDisruptionBudget -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "promscaler.labels" $ | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "promscaler.selectorLabels" $ | nindent 6 }}
      {{- with .extraLabels }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
{{- end -}}

{{- /* The HorizontalPodAutoscaler of a stateless component (fetcher, decision). */ -}}
{{- define "promscaler.hpa" -}}
{{- $a := .Values.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "promscaler.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "promscaler.fullname" . }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    {{- with $a.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $a.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- /* A prometheus-operator ServiceMonitor on the admin port's /metrics. */ -}}
{{- define "promscaler.serviceMonitor" -}}
{{- $sm := .Values.serviceMonitor -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "promscaler.fullname" . }}
  namespace: {{ $sm.namespace | default .Release.Namespace }}
  labels:
    {{- include "promscaler.labels" . | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  namespaceSelector:
    matchNames:
      - {{ .Release.Namespace }}
  selector:
    matchLabels:
      {{- include "promscaler.selectorLabels" . | nindent 6 }}
    matchExpressions:
      - key: promscaler.io/service-kind
        operator: DoesNotExist
  endpoints:
    - port: admin
      path: /metrics
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
      {{- with $sm.relabelings }}
      relabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $sm.metricRelabelings }}
      metricRelabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{- /*
The NetworkPolicy of a component: ingress to the gRPC port only from `.grpcFrom` (peers built by
the caller, e.g. the actuator's pods) and from pods carrying networkPolicy.clientPodLabels
(default promscaler.io/client: "true") in the release namespace, or in the namespaces matched
by networkPolicy.clientNamespaceSelector when set. The admin port (/live, /ready, /metrics) is
open to networkPolicy.adminFrom, or to everyone when that list is empty (kubelet probes and
Prometheus scrapes). Egress is not restricted: the fetcher reaches arbitrary Prometheus
endpoints and STS, the actuator the API server.
Arguments: (dict "ctx" $ "grpcFrom" list-of-NetworkPolicyPeer).
*/ -}}
{{- define "promscaler.networkPolicy" -}}
{{- $ := .ctx -}}
{{- $np := $.Values.networkPolicy -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "promscaler.fullname" $ }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "promscaler.labels" $ | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "promscaler.selectorLabels" $ | nindent 6 }}
  policyTypes:
    - Ingress
  ingress:
    - ports:
        - port: {{ $.Values.ports.grpc }}
          protocol: TCP
      from:
        {{- with .grpcFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        - podSelector:
            matchLabels:
              {{- toYaml $np.clientPodLabels | nindent 14 }}
        {{- if not (kindIs "invalid" $np.clientNamespaceSelector) }}
        - namespaceSelector:
            {{- toYaml $np.clientNamespaceSelector | nindent 12 }}
          podSelector:
            matchLabels:
              {{- toYaml $np.clientPodLabels | nindent 14 }}
        {{- end }}
    - ports:
        - port: {{ $.Values.ports.admin }}
          protocol: TCP
      {{- with $np.adminFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- with $np.extraIngress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- /* Every manifest of a component: (dict "ctx" $ "parts" (list "promscaler.services" ...)),
each part a named template rendered with the subchart's context, one after the other as YAML
documents. A part whose feature is off renders nothing and leaves no document; a part that
renders several documents (the actuator's shards) starts with its own separator. */ -}}
{{- define "promscaler.manifests" -}}
{{- range .parts }}
{{- $part := include . $.ctx | trim | trimPrefix "---" | trim }}
{{- if $part }}
---
{{ $part }}
{{- end }}
{{- end }}
{{- end -}}

{{- /* The parts that switch themselves on from the component's values. */ -}}
{{- define "promscaler.part.serviceMonitor" -}}
{{- if .Values.serviceMonitor.enabled }}
{{ include "promscaler.serviceMonitor" . }}
{{- end }}
{{- end -}}

{{- define "promscaler.part.hpa" -}}
{{- if .Values.autoscaling.enabled }}
{{ include "promscaler.hpa" . }}
{{- end }}
{{- end -}}

{{- /* One PodDisruptionBudget over the component's pods (the actuator's shards have their own). */ -}}
{{- define "promscaler.part.pdb" -}}
{{- if .Values.podDisruptionBudget.enabled }}
{{ include "promscaler.pdb" (dict "ctx" . "name" (include "promscaler.fullname" .)) }}
{{- end }}
{{- end -}}

{{- /* gRPC from this release's actuator pods (and labelled clients): the fetcher and the
decision service are called by the actuator only. */ -}}
{{- define "promscaler.part.networkPolicyFromActuator" -}}
{{- if .Values.networkPolicy.enabled }}
{{- $actuator := dict "podSelector" (dict "matchLabels" (include "promscaler.componentSelectorLabels" (dict "ctx" . "component" "actuator") | fromYaml)) }}
{{ include "promscaler.networkPolicy" (dict "ctx" . "grpcFrom" (list $actuator)) }}
{{- end }}
{{- end -}}
