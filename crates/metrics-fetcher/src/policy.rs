//! The fetcher's policy against a confused deputy (docs/fetcher.md, "Policy (confused deputy)"): which servers may be queried
//! (`--allowed-servers`) and which callers' namespaces may use the fetcher's own AWS identity
//! (`--operator-identity-namespaces`). Denials are `DENIED_BY_POLICY` and logged.
//!
//! Host patterns are case-insensitive and match the host name (a `:port` in the pattern must
//! match the URL's port too):
//! - `prometheus.monitoring.svc` — exactly that host;
//! - `*.amazonaws.com` — a leading `*.` matches one or more labels;
//! - `aps-workspaces.*.amazonaws.com` — `*` inside matches within one label;
//! - `*` — any host.
//!
//! No `--allowed-servers` means every server is allowed; no
//! `--operator-identity-namespaces` means every namespace may use the fetcher's identity
//! (KEDA's behaviour) — both are logged at start-up so an open policy is a visible choice.

use crate::Error;
use crate::source::{Auth, Caller, Source};

/// A host pattern of `--allowed-servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    labels: Vec<String>,
    port: Option<u16>,
    any_prefix: bool,
}

impl std::str::FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        if s.is_empty() {
            return Err("empty host pattern".into());
        }
        if s.contains('/') {
            return Err(format!("{s:?}: give a host pattern, not a URL"));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                Some(p.parse::<u16>().map_err(|_| format!("{s:?}: bad port"))?),
            ),
            None => (s.clone(), None),
        };
        if host == "*" {
            return Ok(Self {
                labels: Vec::new(),
                port,
                any_prefix: true,
            });
        }
        let (any_prefix, rest) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host.as_str()),
        };
        let labels: Vec<String> = rest.split('.').map(str::to_owned).collect();
        if labels.iter().any(String::is_empty) {
            return Err(format!("{s:?}: empty label"));
        }
        Ok(Self {
            labels,
            port,
            any_prefix,
        })
    }
}

impl HostPattern {
    /// Whether `host` (and `port`, when the pattern names one) matches.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        if self.port.is_some() && self.port != port {
            return false;
        }
        let host = host.to_ascii_lowercase();
        let labels: Vec<&str> = host.split('.').collect();
        if self.any_prefix {
            if labels.len() <= self.labels.len() && !self.labels.is_empty() {
                return false;
            }
            let tail = &labels[labels.len() - self.labels.len()..];
            tail.iter().zip(&self.labels).all(|(l, p)| glob(p, l))
        } else {
            labels.len() == self.labels.len()
                && labels.iter().zip(&self.labels).all(|(l, p)| glob(p, l))
        }
    }
}

/// `*` matches any run of characters within one label.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Empty = any server.
    pub allowed_servers: Vec<HostPattern>,
    /// `None` = any namespace may use the fetcher's own identity.
    pub operator_identity_namespaces: Option<Vec<String>>,
    /// Link-local and cloud metadata addresses may be queried (`--allow-link-local`).
    pub allow_link_local: bool,
}

impl Policy {
    /// Checks a query's source against the policy for `caller`.
    pub fn check(&self, source: &Source, caller: &Caller) -> Result<(), Error> {
        let result = self.evaluate(source, caller);
        if let Err(err) = &result {
            tracing::warn!(
                namespace = %caller.namespace,
                name = %caller.name,
                server = %source.host,
                error = %err,
                "query denied by policy"
            );
        }
        result
    }

    fn evaluate(&self, source: &Source, caller: &Caller) -> Result<(), Error> {
        // IP literals: names are checked once resolved (`crate::auth::CheckedResolver`).
        let literal = match source.base.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) | None => None,
        };
        if !self.allow_link_local
            && let Some(ip) = literal
            && crate::auth::is_link_local_or_metadata(ip)
        {
            return Err(Error::DeniedByPolicy {
                reason: format!(
                    "{ip} is a link-local or cloud metadata address; the fetcher refuses those \
                     unless started with --allow-link-local"
                ),
            });
        }
        if !self.allowed_servers.is_empty() {
            let host = source.host_name();
            let port = source.base.port_or_known_default();
            if !self.allowed_servers.iter().any(|p| p.matches(host, port)) {
                return Err(Error::DeniedByPolicy {
                    reason: format!(
                        "server {} is not in --allowed-servers; ask the operator to allow it",
                        source.host
                    ),
                });
            }
        }
        let uses_own_identity = matches!(&source.auth, Auth::Aws(aws) if aws.static_keys.is_none());
        if uses_own_identity
            && let Some(allowed) = &self.operator_identity_namespaces
            && !allowed
                .iter()
                .any(|ns| ns == "*" || *ns == caller.namespace)
        {
            return Err(Error::DeniedByPolicy {
                reason: format!(
                    "namespace {:?} may not use the fetcher's own AWS identity \
                     (identityOwner: operator); it is not in --operator-identity-namespaces — \
                     use a PromScalerAuthentication with keys or ask the operator",
                    caller.namespace
                ),
            });
        }
        Ok(())
    }

    /// One line describing the policy, for the start-up log.
    pub fn describe(&self) -> String {
        let servers = if self.allowed_servers.is_empty() {
            "any server".to_owned()
        } else {
            format!("{} server pattern(s)", self.allowed_servers.len())
        };
        let identity = match &self.operator_identity_namespaces {
            None => "any namespace may use the fetcher's AWS identity".to_owned(),
            Some(ns) => format!("the fetcher's AWS identity is limited to {ns:?}"),
        };
        let link_local = if self.allow_link_local {
            "link-local and metadata addresses allowed"
        } else {
            "link-local and metadata addresses refused"
        };
        format!("{servers}; {identity}; {link_local}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::source::{AwsAuth, HeaderAuth, Secret};

    fn pattern(s: &str) -> HostPattern {
        s.parse().unwrap()
    }

    #[test]
    fn host_patterns_match_as_documented() {
        let table = [
            (
                "prometheus.monitoring.svc",
                "prometheus.monitoring.svc",
                true,
            ),
            ("prometheus.monitoring.svc", "prometheus.other.svc", false),
            (
                "*.amazonaws.com",
                "aps-workspaces.us-east-1.amazonaws.com",
                true,
            ),
            ("*.amazonaws.com", "amazonaws.com", false),
            ("*.amazonaws.com", "amazonaws.com.evil.io", false),
            (
                "aps-workspaces.*.amazonaws.com",
                "aps-workspaces.eu-west-1.amazonaws.com",
                true,
            ),
            (
                "aps-workspaces.*.amazonaws.com",
                "aps-workspaces.a.b.amazonaws.com",
                false,
            ),
            ("prom-*.example.com", "prom-eu.example.com", true),
            ("prom-*.example.com", "thanos.example.com", false),
            ("*", "anything.at.all", true),
            ("PROMETHEUS", "prometheus", true),
        ];
        for (p, host, want) in table {
            assert_eq!(pattern(p).matches(host, None), want, "{p} vs {host}");
        }
        assert!(pattern("127.0.0.1:9090").matches("127.0.0.1", Some(9090)));
        assert!(!pattern("127.0.0.1:9090").matches("127.0.0.1", Some(9091)));
        assert!("http://x".parse::<HostPattern>().is_err());
    }

    fn source(url: &str, auth: Auth) -> Source {
        let (base, host) = Source::parse_base(url).unwrap();
        Source {
            base,
            host,
            custom_headers: vec![],
            query_parameters: vec![],
            namespace: None,
            unsafe_ssl: false,
            timeout: Duration::from_secs(3),
            auth,
        }
    }

    fn caller(ns: &str) -> Caller {
        Caller {
            namespace: ns.into(),
            name: "s".into(),
        }
    }

    fn own_identity() -> Auth {
        Auth::Aws(AwsAuth {
            region: None,
            role_arn: None,
            static_keys: None,
            service: "aps".into(),
        })
    }

    #[test]
    fn servers_outside_the_allow_list_are_denied() {
        let policy = Policy {
            allowed_servers: vec![pattern("*.amazonaws.com")],
            operator_identity_namespaces: None,
            allow_link_local: false,
        };
        let ok = source(
            "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws",
            Auth::None,
        );
        assert!(policy.check(&ok, &caller("a")).is_ok());
        let bad = source("http://169.254.169.254/latest", Auth::None);
        let err = policy.check(&bad, &caller("a")).unwrap_err();
        assert_eq!(
            err.kind(),
            promscaler_proto::v1::QueryErrorKind::DeniedByPolicy
        );
    }

    #[test]
    fn link_local_and_metadata_addresses_are_refused_by_default() {
        let open = Policy::default();
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://169.254.170.2",
            "http://[fd00:ec2::254]",
            "http://[fe80::1]:9090",
            "http://[::ffff:169.254.169.254]",
        ] {
            let err = open
                .check(&source(url, Auth::None), &caller("a"))
                .unwrap_err();
            assert!(
                err.to_string().contains("--allow-link-local"),
                "{url}: {err}"
            );
        }
        assert!(
            open.check(&source("http://10.0.0.1:9090", Auth::None), &caller("a"))
                .is_ok()
        );
        let allowing = Policy {
            allow_link_local: true,
            ..Policy::default()
        };
        let metadata = source("http://169.254.169.254", Auth::None);
        assert!(allowing.check(&metadata, &caller("a")).is_ok());
    }

    #[test]
    fn only_listed_namespaces_use_the_fetchers_identity() {
        let policy = Policy {
            allowed_servers: vec![],
            operator_identity_namespaces: Some(vec!["team-a".into()]),
            allow_link_local: false,
        };
        let amp = source(
            "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws",
            own_identity(),
        );
        assert!(policy.check(&amp, &caller("team-a")).is_ok());
        let err = policy.check(&amp, &caller("team-b")).unwrap_err();
        assert!(err.to_string().contains("team-b"), "{err}");
        // Other auth methods are not the fetcher's identity.
        let bearer = source(
            "https://prom",
            Auth::Header(HeaderAuth {
                name: http::header::AUTHORIZATION,
                value: Secret::new("Bearer x"),
            }),
        );
        assert!(policy.check(&bearer, &caller("team-b")).is_ok());
    }
}
