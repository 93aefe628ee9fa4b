//! Shared plumbing of the three services: flags, logging, OTLP traces, trace-context propagation, admin server, gRPC health and reflection, shutdown
