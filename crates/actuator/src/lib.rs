//! The actuator service: the PromScaler controller and ActuatorService
