//! promscalerctl: the gRPC client of the three promscaler services
