//! The local, self-contained promscaler environment: emulator, Prometheus, the three services, a load curve
