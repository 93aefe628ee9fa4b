//! Domain types and the decision algorithm (KEDA ScaledObject + Kubernetes HPA rules) as pure functions; no I/O
