//! In-memory Kubernetes API server for tests and the sandbox, with a workload simulator
