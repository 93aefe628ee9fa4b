//! End-to-end tests over real processes: Prometheus, STS, SigV4 gateway, Kubernetes API emulator, the three services
