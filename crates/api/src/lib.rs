//! PromScaler and PromScalerAuthentication CRD types, trigger metadata parsing and validation, KEDA import
