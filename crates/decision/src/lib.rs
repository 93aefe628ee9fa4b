//! The decision service: DecisionService over gRPC around promscaler-core
