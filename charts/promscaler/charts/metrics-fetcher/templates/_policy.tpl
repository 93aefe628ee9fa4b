{{- /*
The fetcher's policy as the chart renders it (see docs/operations.md "Security model").

An open policy — any host (allowedServers empty), or the fetcher's AWS identity for every
namespace ("*" in operatorIdentityNamespaces without a namespacePolicy) — lets any PromScaler
author query anything with the fetcher's identity. With IRSA that identity is an IAM role, so
the render fails unless acceptOpenPolicy says the risk is accepted.
*/ -}}

{{- /* "true" when the fetcher's ServiceAccount gets an IAM role through IRSA. */ -}}
{{- define "promscaler.fetcher.irsa" -}}
{{- $irsa := .Values.podIdentity.aws.irsa -}}
{{- $annotated := hasKey (.Values.serviceAccount.annotations | default dict) "eks.amazonaws.com/role-arn" -}}
{{- if or $irsa.enabled $annotated }}true{{ end -}}
{{- end -}}

{{- /* What makes the policy open, one reason per line; empty when it is not. */ -}}
{{- define "promscaler.fetcher.openPolicyReasons" -}}
{{- if not .Values.allowedServers }}
- allowedServers is empty: the fetcher queries any host (set e.g. ["aps-workspaces.*.amazonaws.com"])
{{- end }}
{{- if and (has "*" .Values.operatorIdentityNamespaces) (not .Values.namespacePolicy) }}
- operatorIdentityNamespaces contains "*" and namespacePolicy is empty: a PromScaler in any namespace may use the fetcher's AWS identity, on any role it may assume and any workspace (list the namespaces, or give each its roleArns and workspaces in namespacePolicy)
{{- end }}
{{- end -}}

{{- define "promscaler.fetcher.validatePolicy" -}}
{{- $reasons := include "promscaler.fetcher.openPolicyReasons" . | trim -}}
{{- if and (include "promscaler.fetcher.irsa" .) $reasons (not .Values.acceptOpenPolicy) -}}
{{- fail (printf "metrics-fetcher: IRSA gives the fetcher an IAM role, and its policy is open:\n%s\nAnyone who can create a PromScaler could use that role. Close the policy (metrics-fetcher.allowedServers, metrics-fetcher.operatorIdentityNamespaces or metrics-fetcher.namespacePolicy), or set metrics-fetcher.acceptOpenPolicy=true to install it open, accepting that risk." $reasons) -}}
{{- end -}}
{{- end -}}

{{- /* The --namespace-policy-file the ConfigMap holds. */ -}}
{{- define "promscaler.fetcher.namespacePolicyFile" -}}
{{- $namespaces := dict -}}
{{- range $ns, $grant := .Values.namespacePolicy -}}
{{- $_ := set $namespaces $ns (dict "roleArns" ($grant.roleArns | default list) "workspaces" ($grant.workspaces | default list)) -}}
{{- end -}}
{{- toYaml (dict "namespaces" $namespaces) -}}
{{- end -}}
