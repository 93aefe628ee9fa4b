//! The seed: the `sample-app` Deployment and the PromScaler that scales it on its connections
//! (AverageValue 50 per replica, activation 0, min 1, max 5), written once for the sandbox, the
//! end-to-end tests and the soak; and the replicas that arithmetic gives.

/// The namespace everything runs in.
pub const NAMESPACE: &str = "default";
/// The PromScaler's name.
pub const SCALER: &str = "sample-app-prometheus-scaler";
/// The seed's target value per replica.
pub const THRESHOLD: f64 = 50.0;
/// The seed's replica bounds.
pub const MIN_REPLICAS: i32 = 1;
/// The seed's replica bounds.
pub const MAX_REPLICAS: i32 = 5;

/// The seed's `sample-app` Deployment in `namespace`.
pub fn sample_app_deployment(namespace: &str, replicas: i32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: sample-app
  namespace: {namespace}
  labels:
    app.kubernetes.io/name: sample-app
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app.kubernetes.io/name: sample-app
  template:
    metadata:
      labels:
        app.kubernetes.io/name: sample-app
    spec:
      containers:
        - name: app
          image: sample-app:1.0
"#
    )
}

/// The seed's PromScaler, with what the sandbox and the tests vary about it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedScaler<'a> {
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// The trigger's `serverAddress`.
    pub server: &'a str,
    /// The trigger's `query`.
    pub query: &'a str,
    /// `minReplicaCount` (the seed's 1; 0 lets the app scale to zero after the cooldown).
    pub min_replicas: i32,
    /// `pollingInterval` (seconds).
    pub polling_interval: u32,
    /// `cooldownPeriod` (seconds).
    pub cooldown_period: u32,
    /// Scale-down `stabilizationWindowSeconds`.
    pub scale_down_stabilization: u32,
    /// `fallback` as (`failureThreshold`, `replicas`); the seed has none.
    pub fallback: Option<(u32, i32)>,
    /// With `identityOwner: operator` and this `awsRegion` (SigV4 with the fetcher's IRSA
    /// credentials).
    pub aws_region: Option<&'a str>,
}

impl SeedScaler<'_> {
    /// The PromScaler manifest.
    pub fn yaml(&self) -> String {
        let aws = match self.aws_region {
            Some(region) => {
                format!("\n        identityOwner: operator\n        awsRegion: {region}")
            }
            None => String::new(),
        };
        let fallback = match self.fallback {
            Some((failure_threshold, replicas)) => format!(
                "\n  fallback:\n    failureThreshold: {failure_threshold}\n    replicas: {replicas}"
            ),
            None => String::new(),
        };
        format!(
            r#"apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata:
  name: {SCALER}
  namespace: {namespace}
spec:
  scaleTargetRef:
    name: sample-app
  minReplicaCount: {min}
  maxReplicaCount: {MAX_REPLICAS}
  pollingInterval: {polling}
  cooldownPeriod: {cooldown}{fallback}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: {stabilization}
  triggers:
    - type: prometheus
      name: connections
      metadata:
        serverAddress: {server}
        query: '{query}'
        threshold: "{THRESHOLD}"
        activationThreshold: "0"{aws}
"#,
            namespace = self.namespace,
            min = self.min_replicas,
            polling = self.polling_interval,
            cooldown = self.cooldown_period,
            stabilization = self.scale_down_stabilization,
            server = self.server,
            query = self.query,
        )
    }
}

/// The replicas the seed computes for `connections`: ceil(c/50) within [min, max].
pub fn expected_replicas(connections: f64) -> i32 {
    ((connections / THRESHOLD).ceil() as i32).clamp(MIN_REPLICAS, MAX_REPLICAS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_numbers() {
        assert_eq!(expected_replicas(140.0), 3);
        assert_eq!(expected_replicas(300.0), 5);
        assert_eq!(expected_replicas(0.0), 1);
    }

    fn scaler() -> SeedScaler<'static> {
        SeedScaler {
            namespace: "ns",
            server: "http://127.0.0.1:9090",
            query: "sum(x)",
            min_replicas: 0,
            polling_interval: 1,
            cooldown_period: 2,
            scale_down_stabilization: 3,
            fallback: None,
            aws_region: None,
        }
    }

    #[test]
    fn the_seed_scaler_carries_what_varies() {
        let yaml = scaler().yaml();
        for line in [
            "  namespace: ns\n",
            "  minReplicaCount: 0\n",
            "  maxReplicaCount: 5\n",
            "  pollingInterval: 1\n",
            "  cooldownPeriod: 2\n",
            "          stabilizationWindowSeconds: 3\n",
            "        serverAddress: http://127.0.0.1:9090\n",
            "        query: 'sum(x)'\n",
            "        threshold: \"50\"\n",
        ] {
            assert!(yaml.contains(line), "{line:?} not in\n{yaml}");
        }
        assert!(
            !yaml.contains("fallback") && !yaml.contains("awsRegion"),
            "{yaml}"
        );
        let yaml = SeedScaler {
            fallback: Some((3, 4)),
            aws_region: Some("eu-west-1"),
            ..scaler()
        }
        .yaml();
        assert!(
            yaml.contains("  cooldownPeriod: 2\n  fallback:\n    failureThreshold: 3\n    replicas: 4\n  advanced:"),
            "{yaml}"
        );
        assert!(
            yaml.ends_with("activationThreshold: \"0\"\n        identityOwner: operator\n        awsRegion: eu-west-1\n"),
            "{yaml}"
        );
    }
}
