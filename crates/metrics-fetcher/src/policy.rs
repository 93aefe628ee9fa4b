//! The fetcher's policy against a confused deputy (docs/fetcher.md, "Policy (confused deputy)"): which servers may be queried
//! (`--allowed-servers`) and which callers' namespaces may use the fetcher's own AWS identity
//! (`--operator-identity-namespaces`). Denials are `DENIED_BY_POLICY` and logged.
//!
//! Host patterns are case-insensitive and match the host name (a `:port` in the pattern must
//! match the URL's port too):
//! - `prometheus.monitoring.svc` — exactly that host;
//! - `*.example.com` — a leading `*.` matches one or more labels;
//! - `aps-workspaces.*.amazonaws.com` — `*` inside matches within one label (AMP in any
//!   region: the pattern to use for AMP; `*.amazonaws.com` would admit every AWS endpoint);
//! - `*` — any host.
//!
//! No `--allowed-servers` means every server is allowed; no
//! `--operator-identity-namespaces` means every namespace may use the fetcher's identity
//! (KEDA's behaviour) — both are logged at start-up so an open policy is a visible choice.
//!
//! `--namespace-policy-file` ([`NamespacePolicy`]) narrows what each namespace may do with the
//! fetcher's own AWS identity: which role ARNs it may assume with it and which AMP workspaces
//! it may query with it (directly or through such a role). A query outside its namespace's
//! entry is refused before any STS or upstream call. Queries signed with the caller's own
//! static keys are not limited by it: AWS authorizes those keys, not the fetcher's identity.
//!
//! The namespace is the one the request states (`caller.namespace`): only the actuator, which
//! reads it from the PromScaler, may call the fetcher (mutual TLS with
//! `--allowed-client-identities`, or a NetworkPolicy; see docs/operations.md).

use std::collections::BTreeMap;

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
    /// `None` = no per-namespace limits on the fetcher's identity (`--namespace-policy-file`).
    pub namespaces: Option<NamespacePolicy>,
}

/// What each namespace may do with the fetcher's own AWS identity (`--namespace-policy-file`).
/// A namespace without an entry may assume no role and query no AMP workspace with it.
///
/// ```yaml
/// namespaces:
///   team-a:
///     roleArns: ["arn:aws:iam::111122223333:role/team-a-amp-reader"]
///     workspaces: ["ws-0123abcd-4567-89ef-0123-456789abcdef"]
///   team-b:
///     workspaces: ["*"]   # any workspace, with the fetcher's identity itself
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespacePolicy {
    /// Entries by namespace name.
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceGrant>,
}

/// One namespace's entry of [`NamespacePolicy`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceGrant {
    /// Role ARNs it may assume with the fetcher's identity (exact ARNs; `"*"` = any).
    #[serde(default)]
    pub role_arns: Vec<String>,
    /// AMP workspace IDs (`ws-...`) it may query with the fetcher's identity or a role assumed
    /// with it, in any region; `"*"` = any.
    #[serde(default)]
    pub workspaces: Vec<String>,
}

/// Most namespaces, and entries per namespace, a policy file may hold (it is read into memory
/// once and searched per query).
const MAX_NAMESPACES: usize = 10_000;
const MAX_ENTRIES: usize = 1_000;

impl NamespacePolicy {
    /// Parses and checks a policy file's text (YAML or JSON); errors say what to fix.
    pub fn parse(text: &str) -> Result<Self, String> {
        let policy: Self = serde_yaml::from_str(text).map_err(|e| {
            format!(
                "{e}; expected `namespaces: {{<namespace>: {{roleArns: [...], workspaces: \
                 [...]}}}}`"
            )
        })?;
        if policy.namespaces.len() > MAX_NAMESPACES {
            return Err(format!(
                "{} namespaces; at most {MAX_NAMESPACES}",
                policy.namespaces.len()
            ));
        }
        for (ns, grant) in &policy.namespaces {
            if ns.is_empty()
                || ns.len() > 63
                || !ns
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(format!("{ns:?} is not a Kubernetes namespace name"));
            }
            if grant.role_arns.len() + grant.workspaces.len() > MAX_ENTRIES {
                return Err(format!(
                    "namespace {ns}: more than {MAX_ENTRIES} role ARNs and workspaces"
                ));
            }
            for arn in &grant.role_arns {
                if arn != "*" && !(arn.starts_with("arn:") && arn.contains(":role/")) {
                    return Err(format!(
                        "namespace {ns}: {arn:?} is not a role ARN (arn:aws:iam::<account>:role/<name>) or \"*\""
                    ));
                }
            }
            for ws in &grant.workspaces {
                if ws != "*" && !is_workspace_id(ws) {
                    return Err(format!(
                        "namespace {ns}: {ws:?} is not an AMP workspace ID (ws-...) or \"*\""
                    ));
                }
            }
        }
        Ok(policy)
    }

    /// Reads and parses a policy file; errors name the file.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn grant(&self, namespace: &str) -> Option<&NamespaceGrant> {
        self.namespaces.get(namespace)
    }
}

/// `ws-` followed by letters, digits and '-' (AMP's IDs are `ws-<uuid>`).
fn is_workspace_id(s: &str) -> bool {
    s.len() <= 64
        && s.strip_prefix("ws-").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The workspace an AMP URL addresses: the segment after `/workspaces/` in its path.
pub fn workspace_of(source: &Source) -> Option<&str> {
    let mut segments = source.base.path_segments()?;
    while let Some(segment) = segments.next() {
        if segment == "workspaces" {
            return segments.next().filter(|s| !s.is_empty());
        }
    }
    None
}

fn listed(list: &[String], item: &str) -> bool {
    list.iter().any(|e| e == "*" || e == item)
}

fn show(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
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
        if uses_own_identity
            && let Some(namespaces) = &self.namespaces
            && let Auth::Aws(aws) = &source.auth
        {
            check_namespace_grant(namespaces, source, aws.role_arn.as_deref(), caller)?;
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
        let namespaces = match &self.namespaces {
            None => "no per-namespace role/workspace limits".to_owned(),
            Some(p) => format!(
                "role ARNs and AMP workspaces limited per namespace ({} namespace(s) listed)",
                p.namespaces.len()
            ),
        };
        format!("{servers}; {identity}; {namespaces}; {link_local}")
    }
}

/// A query with the fetcher's own identity (optionally assuming `role_arn` with it) must stay
/// within its namespace's entry of the namespace policy.
fn check_namespace_grant(
    policy: &NamespacePolicy,
    source: &Source,
    role_arn: Option<&str>,
    caller: &Caller,
) -> Result<(), Error> {
    let ns = &caller.namespace;
    let empty = NamespaceGrant::default();
    let grant = policy.grant(ns).unwrap_or(&empty);
    if let Some(role) = role_arn.filter(|r| !r.is_empty())
        && !listed(&grant.role_arns, role)
    {
        return Err(Error::DeniedByPolicy {
            reason: format!(
                "namespace {ns:?} may not assume role {role} with the fetcher's AWS identity: the \
                 fetcher's namespace policy (--namespace-policy-file) lists for it the roles: {}; \
                 ask the operator to add {role} to the roleArns of namespace {ns}",
                show(&grant.role_arns)
            ),
        });
    }
    match workspace_of(source) {
        Some(ws) if listed(&grant.workspaces, ws) => Ok(()),
        Some(ws) => Err(Error::DeniedByPolicy {
            reason: format!(
                "namespace {ns:?} may not query AMP workspace {ws} with the fetcher's AWS \
                 identity: the fetcher's namespace policy (--namespace-policy-file) lists for it \
                 the workspaces: {}; ask the operator to add {ws} to the workspaces of namespace \
                 {ns}",
                show(&grant.workspaces)
            ),
        }),
        None => Err(Error::DeniedByPolicy {
            reason: format!(
                "{} is not an AMP workspace URL (…/workspaces/<ws-id>): with a namespace policy \
                 (--namespace-policy-file) the fetcher's AWS identity signs only queries to the \
                 workspaces listed for the caller's namespace; use the workspace's query URL, or \
                 credentials of your own (a PromScalerAuthentication with keys)",
                source.host
            ),
        }),
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
            session_namespace: None,
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
            namespaces: None,
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
            namespaces: None,
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

    fn amp(ws: &str, role: Option<&str>, keys: bool) -> Source {
        source(
            &format!("https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/{ws}"),
            Auth::Aws(AwsAuth {
                region: None,
                role_arn: role.map(str::to_owned),
                session_namespace: None,
                static_keys: keys.then(|| crate::source::StaticKeys {
                    access_key_id: "AKIDEXAMPLE".into(),
                    secret_access_key: Secret::new("s"),
                    session_token: None,
                }),
                service: "aps".into(),
            }),
        )
    }

    const ROLE_A: &str = "arn:aws:iam::111122223333:role/team-a-reader";
    const ROLE_B: &str = "arn:aws:iam::111122223333:role/team-b-reader";

    fn per_namespace() -> Policy {
        let file = format!(
            "namespaces:\n  team-a:\n    roleArns: [\"{ROLE_A}\"]\n    workspaces: [ws-aaaa]\n  \
             team-b:\n    roleArns: [\"{ROLE_B}\"]\n    workspaces: [ws-bbbb]\n  \
             shared:\n    workspaces: [\"*\"]\n"
        );
        Policy {
            namespaces: Some(NamespacePolicy::parse(&file).unwrap()),
            ..Policy::default()
        }
    }

    /// The reported attack: a call claiming team-a with team-b's role, or team-b's workspace,
    /// is refused, naming what to ask the operator for.
    #[test]
    fn a_namespace_may_use_only_the_roles_and_workspaces_its_entry_names() {
        let policy = per_namespace();
        assert!(
            policy
                .check(&amp("ws-aaaa", Some(ROLE_A), false), &caller("team-a"))
                .is_ok()
        );
        assert!(
            policy
                .check(&amp("ws-aaaa", None, false), &caller("team-a"))
                .is_ok()
        );
        let err = policy
            .check(&amp("ws-aaaa", Some(ROLE_B), false), &caller("team-a"))
            .unwrap_err();
        assert_eq!(
            err.kind(),
            promscaler_proto::v1::QueryErrorKind::DeniedByPolicy
        );
        let msg = err.to_string();
        assert!(msg.contains(ROLE_B) && msg.contains("team-a"), "{msg}");
        assert!(msg.contains("roleArns of namespace team-a"), "{msg}");
        let err = policy
            .check(&amp("ws-bbbb", Some(ROLE_A), false), &caller("team-a"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ws-bbbb") && err.contains("workspaces of namespace team-a"),
            "{err}"
        );
        // "*" admits any workspace (with the fetcher's identity itself, no role listed).
        assert!(
            policy
                .check(&amp("ws-zzzz", None, false), &caller("shared"))
                .is_ok()
        );
        assert!(
            policy
                .check(&amp("ws-zzzz", Some(ROLE_A), false), &caller("shared"))
                .is_err()
        );
    }

    #[test]
    fn unlisted_namespaces_and_non_workspace_urls_get_nothing_from_the_fetchers_identity() {
        let policy = per_namespace();
        let err = policy
            .check(&amp("ws-aaaa", None, false), &caller("team-c"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("none"), "{err}");
        let other = source("https://prometheus.example.com", own_identity());
        let err = policy
            .check(&other, &caller("team-a"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an AMP workspace URL"), "{err}");
        // The caller's own keys are authorized by AWS, not by the fetcher's identity.
        assert!(
            policy
                .check(&amp("ws-bbbb", Some(ROLE_B), true), &caller("team-a"))
                .is_ok()
        );
        // Non-AWS auth is untouched.
        assert!(
            policy
                .check(&source("https://prom", Auth::None), &caller("team-c"))
                .is_ok()
        );
    }

    #[test]
    fn namespace_policy_files_with_mistakes_say_what_to_fix() {
        for (text, fragment) in [
            (
                "namespaces:\n  team-a:\n    roleArn: [x]\n",
                "unknown field `roleArn`",
            ),
            (
                "namespaces:\n  team-a:\n    roleArns: [team-a-role]\n",
                "not a role ARN",
            ),
            (
                "namespaces:\n  team-a:\n    workspaces: [my-workspace]\n",
                "not an AMP workspace ID",
            ),
            (
                "namespaces:\n  Team_A: {}\n",
                "not a Kubernetes namespace name",
            ),
            ("- team-a\n", "expected `namespaces:"),
        ] {
            let err = NamespacePolicy::parse(text).unwrap_err();
            assert!(err.contains(fragment), "{text:?}: {err}");
        }
        assert_eq!(
            NamespacePolicy::parse("{}").unwrap(),
            NamespacePolicy::default()
        );
    }

    #[test]
    fn the_workspace_is_the_segment_after_workspaces() {
        let ws = |url: &str| workspace_of(&source(url, Auth::None)).map(str::to_owned);
        assert_eq!(
            ws("https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/api/v1"),
            Some("ws-1".into())
        );
        assert_eq!(
            ws("http://127.0.0.1:9/workspaces/ws-2"),
            Some("ws-2".into())
        );
        assert_eq!(ws("http://127.0.0.1:9/prometheus"), None);
    }
}
