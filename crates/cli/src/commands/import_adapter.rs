//! `import-adapter`: prometheus-adapter rules plus the HorizontalPodAutoscalers that use their
//! metrics become PromScalers with concrete PromQL.
//!
//! prometheus-adapter turns an HPA's request for a metric into a query by finding the rule that
//! exposes the metric's name (`rules` for Pods/Object metrics, `externalRules` for External
//! ones), the Prometheus series behind that name (`seriesQuery`, `seriesFilters`, `name`), and
//! expanding the rule's `metricsQuery` Go template with `.Series`, `.LabelMatchers` (the HPA's
//! metric selector, the namespace and the requested object, with the labels `resources` maps
//! them to) and `.GroupBy`. This module does the same offline, then chooses the PromScaler
//! trigger that makes the same decision as the HPA (see docs/cli.md, "import-adapter"):
//!
//! - External: the HPA sums every series the adapter returns, so the query is `sum(...)` with
//!   the HPA's `Value`/`AverageValue` as `metricType`.
//! - Pods (`AverageValue` only): the HPA averages the per-pod values over the pods and divides
//!   by the target, which is the sum over the pods divided by the target: `sum(...)` with
//!   `AverageValue`. The adapter matched the target's pods by name; offline their names are not
//!   known, so the pods are matched by the name pattern of the target's kind (noted).
//! - Object: one value for the described object, with the same `metricType`.
//!
//! What cannot be converted (resource metrics, no or several rules, name rules it cannot
//! invert, unsupported template actions or selectors) is reported per metric; an HPA is
//! converted only when all its metrics are (or with `--allow-partial`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use crate::Error;
use crate::args::Context;
use crate::input::key_value;
use crate::output::{Format, Render, render, write_stdout};

/// Largest input file read (config or HPA manifests).
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most rules (`rules` plus `externalRules`) in a config.
const MAX_RULES: usize = 2_000;
/// Most HPAs converted in one run.
const MAX_HPAS: usize = 5_000;
/// Longest `metricsQuery` or `resources.template`.
const MAX_TEMPLATE_BYTES: usize = 16 << 10;
/// Longest query a template may expand to.
const MAX_QUERY_BYTES: usize = 64 << 10;
/// Most bytes of queries one run writes (the sum over every converted metric).
const MAX_TOTAL_QUERY_BYTES: usize = 16 << 20;
/// Compiled size limit of one regex from the config.
const MAX_REGEX_BYTES: usize = 1 << 20;

/// `promscalerctl import-adapter CONFIG [HPA...] --server-address URL`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// prometheus-adapter's rules config (the file given to its --config, or the ConfigMap
    /// holding it); "-" reads stdin.
    #[arg(value_name = "CONFIG")]
    pub config: String,

    /// HorizontalPodAutoscaler manifests (autoscaling/v2, multi-document YAML or a `List` as
    /// `kubectl get hpa -A -o yaml` prints); none reads them from stdin.
    #[arg(value_name = "HPA")]
    pub hpas: Vec<String>,

    /// The Prometheus prometheus-adapter queried (its --prometheus-url): each trigger's
    /// `serverAddress`.
    #[arg(long, value_name = "URL")]
    pub server_address: String,

    /// A PromScalerAuthentication every trigger uses (`authenticationRef.name`), e.g. for AMP.
    #[arg(long, value_name = "NAME")]
    pub authentication_ref: Option<String>,

    /// The Prometheus series behind a metric name whose `name` rule cannot be inverted offline,
    /// e.g. `--series http_requests_per_second=http_requests_total` (checked against the rule).
    #[arg(long = "series", value_name = "METRIC=SERIES", value_parser = key_value)]
    pub series: Vec<(String, String)>,

    /// Also convert an HPA when some of its metrics cannot be: its PromScaler then scales on
    /// the others only (each is still reported).
    #[arg(long)]
    pub allow_partial: bool,

    /// Write the result to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The converted documents: multi-document YAML (table and yaml output) or a JSON array.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct Documents(Vec<Value>);

impl Render for Documents {
    fn table(&self) -> String {
        promscaler_api::keda::Imported {
            documents: self.0.clone(),
            notes: Vec::new(),
        }
        .to_yaml()
    }
}

/// Converts; notes and per-metric problems go to stderr; fails only when no HPA converts.
pub(crate) fn run(args: Args, cx: &Context) -> Result<(), Error> {
    if args.config == "-" && args.hpas.is_empty() {
        return Err(Error::Usage(
            "the config is read from stdin, so the HPAs cannot be: give the HPA files".into(),
        ));
    }
    let config_text = read_bounded(&args.config)?;
    let config =
        Config::parse(&config_text).map_err(|e| Error::Usage(format!("{}: {e}", args.config)))?;
    let hpa_files = if args.hpas.is_empty() {
        vec!["-".to_owned()]
    } else {
        args.hpas.clone()
    };
    let mut hpas = Vec::new();
    for path in &hpa_files {
        let text = read_bounded(path)?;
        let (found, notes) =
            read_hpas(path, &text).map_err(|e| Error::Usage(format!("{path}: {e}")))?;
        for n in notes {
            eprintln!("note: {n}");
        }
        hpas.extend(found);
        if hpas.len() > MAX_HPAS {
            return Err(Error::Usage(format!(
                "more than {MAX_HPAS} HorizontalPodAutoscalers in the input; convert them in batches"
            )));
        }
    }
    if hpas.is_empty() {
        return Err(Error::Usage(format!(
            "no autoscaling/v2 HorizontalPodAutoscaler in {}; give the HPAs that use the adapter's metrics",
            hpa_files.join(", ")
        )));
    }
    let options = Options {
        server_address: args.server_address.clone(),
        authentication_ref: args.authentication_ref.clone(),
        series: args.series.iter().cloned().collect(),
        allow_partial: args.allow_partial,
        query_budget: std::cell::Cell::new(MAX_TOTAL_QUERY_BYTES),
    };
    let mut docs = Vec::new();
    for hpa in &hpas {
        let converted = convert_hpa(&config, hpa, &options);
        for n in &converted.notes {
            eprintln!("note: {}: {n}", hpa.id);
        }
        for w in &converted.warnings {
            eprintln!("warning: {}: {w}", hpa.id);
        }
        if let Some(doc) = converted.document {
            docs.push(doc);
        }
    }
    if docs.is_empty() {
        return Err(Error::Usage(format!(
            "none of the {} HorizontalPodAutoscaler(s) could be converted; nothing was written (the reasons are above)",
            hpas.len()
        )));
    }
    let docs = Documents(docs);
    let text = match cx.output {
        Format::Json => render(Format::Json, &docs)?,
        Format::Table | Format::Yaml => docs.table(),
    };
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        }),
        None => write_stdout(&text),
    }
}

/// Reads a file (or stdin for "-") of at most [`MAX_FILE_BYTES`].
fn read_bounded(path: &str) -> Result<String, Error> {
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let mut buf = Vec::new();
    if path == "-" {
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
    } else {
        std::fs::File::open(path)
            .map_err(read_err)?
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
    }
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Usage(format!(
            "{path}: larger than {} MiB; split it",
            MAX_FILE_BYTES >> 20
        )));
    }
    String::from_utf8(buf).map_err(|_| Error::Usage(format!("{path}: is not UTF-8 text")))
}

// ---------------------------------------------------------------------------------------------
// The config

/// prometheus-adapter's config file (its `MetricsDiscoveryConfig`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    external_rules: Vec<RawRule>,
    /// CPU/memory for the resource metrics API: HPA resource metrics are reported per metric.
    #[serde(default)]
    resource_rules: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    series_query: String,
    #[serde(default)]
    series_filters: Vec<RawFilter>,
    #[serde(default)]
    resources: RawResources,
    #[serde(default)]
    name: RawName,
    #[serde(default)]
    metrics_query: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFilter {
    #[serde(default)]
    is: String,
    #[serde(default)]
    is_not: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResources {
    #[serde(default)]
    template: String,
    #[serde(default)]
    overrides: BTreeMap<String, RawGroupResource>,
    #[serde(default)]
    namespaced: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroupResource {
    #[serde(default)]
    group: String,
    resource: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawName {
    #[serde(default)]
    matches: String,
    #[serde(default, rename = "as")]
    as_: String,
}

/// The compiled config.
#[derive(Debug)]
struct Config {
    rules: Vec<Rule>,
    external_rules: Vec<Rule>,
}

/// One compiled discovery rule.
#[derive(Debug)]
struct Rule {
    /// `rules[i]` or `externalRules[i]`, for messages.
    id: String,
    /// The metric name the `seriesQuery` selects, when it names one.
    series_name: Option<String>,
    /// `__name__=~` of the `seriesQuery`, anchored as Prometheus anchors it.
    series_name_regex: Option<Regex>,
    /// `seriesFilters` and the implicit `name.matches` filter: (regex, must match).
    filters: Vec<(Regex, bool)>,
    name_matches: Regex,
    name_as: String,
    metrics_query: Template,
    resources: Resources,
    /// `resources.namespaced` (external rules; default true).
    namespaced: bool,
}

/// A Kubernetes group-resource, normalized to the plural resource name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupResource {
    group: String,
    resource: String,
}

/// `resources`: which label names a group-resource.
#[derive(Debug)]
struct Resources {
    template: Option<Template>,
    overrides: Vec<(GroupResource, String)>,
}

impl Config {
    fn parse(text: &str) -> Result<Config, String> {
        let value: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        // A ConfigMap holding the config (as the Helm chart deploys it): its one data value.
        let text = if value.get("kind").and_then(Value::as_str) == Some("ConfigMap") {
            let data = value.get("data").and_then(Value::as_mapping);
            let entries: Vec<&Value> = data.map(|d| d.values().collect()).unwrap_or_default();
            match entries.as_slice() {
                [Value::String(s)] => s.clone(),
                _ => {
                    return Err(
                        "a ConfigMap must hold the adapter's config as its only data value (config.yaml)"
                            .into(),
                    );
                }
            }
        } else {
            text.to_owned()
        };
        let raw: RawConfig = serde_yaml::from_str(&text).map_err(|e| {
            format!("is not a prometheus-adapter config (rules, externalRules, resourceRules): {e}")
        })?;
        // resourceRules serve the resource metrics API (CPU, memory): the HPAs' Resource
        // metrics are reported per metric instead.
        let _ = raw.resource_rules;
        if raw.rules.len() + raw.external_rules.len() > MAX_RULES {
            return Err(format!(
                "{} rules: more than {MAX_RULES}; convert with the rules the HPAs use",
                raw.rules.len() + raw.external_rules.len()
            ));
        }
        let compile = |prefix: &str, rules: Vec<RawRule>| {
            rules
                .into_iter()
                .enumerate()
                .map(|(i, r)| Rule::compile(format!("{prefix}[{i}]"), r))
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(Config {
            rules: compile("rules", raw.rules)?,
            external_rules: compile("externalRules", raw.external_rules)?,
        })
    }
}

fn regex(id: &str, field: &str, re: &str) -> Result<Regex, String> {
    RegexBuilder::new(re)
        .size_limit(MAX_REGEX_BYTES)
        .build()
        .map_err(|e| format!("{id}.{field}: {re:?} is not a usable regular expression: {e}"))
}

impl Rule {
    fn compile(id: String, raw: RawRule) -> Result<Rule, String> {
        let (series_name, name_re) = series_name_of(&raw.series_query)
            .map_err(|e| format!("{id}.seriesQuery {:?}: {e}", raw.series_query))?;
        let series_name_regex = name_re
            .map(|re| regex(&id, "seriesQuery", &format!("^(?:{re})$")))
            .transpose()?;
        let mut filters = Vec::new();
        for (i, f) in raw.series_filters.iter().enumerate() {
            let field = format!("seriesFilters[{i}]");
            match (f.is.as_str(), f.is_not.as_str()) {
                ("", "") => return Err(format!("{id}.{field}: needs `is` or `isNot`")),
                (is, "") => filters.push((regex(&id, &field, is)?, true)),
                ("", not) => filters.push((regex(&id, &field, not)?, false)),
                _ => {
                    return Err(format!(
                        "{id}.{field}: has both `is` and `isNot`; use two filters"
                    ));
                }
            }
        }
        let matches = if raw.name.matches.is_empty() {
            ".*"
        } else {
            raw.name.matches.as_str()
        };
        let name_matches = regex(&id, "name.matches", matches)?;
        if !raw.name.matches.is_empty() {
            filters.push((name_matches.clone(), true));
        }
        let name_as = if raw.name.as_.is_empty() {
            // prometheus-adapter's defaults: the whole match, or the only group.
            match name_matches.captures_len() {
                1 => "$0".to_owned(),
                2 => "$1".to_owned(),
                _ => {
                    return Err(format!(
                        "{id}.name.as: is required when name.matches has several capture groups"
                    ));
                }
            }
        } else {
            raw.name.as_.clone()
        };
        let metrics_query = Template::parse(&raw.metrics_query, QUERY_FIELDS)
            .map_err(|e| format!("{id}.metricsQuery: {e}"))?;
        if raw.metrics_query.trim().is_empty() {
            return Err(format!(
                "{id}.metricsQuery: is empty; prometheus-adapter would produce no query"
            ));
        }
        let template = if raw.resources.template.is_empty() {
            None
        } else {
            Some(
                Template::parse(&raw.resources.template, RESOURCE_FIELDS)
                    .map_err(|e| format!("{id}.resources.template: {e}"))?,
            )
        };
        let overrides = raw
            .resources
            .overrides
            .iter()
            .map(|(label, gr)| (normalize(&gr.group, &gr.resource), label.clone()))
            .collect();
        Ok(Rule {
            id,
            series_name,
            series_name_regex,
            filters,
            name_matches,
            name_as,
            metrics_query,
            resources: Resources {
                template,
                overrides,
            },
            namespaced: raw.resources.namespaced.unwrap_or(true),
        })
    }

    /// The API name prometheus-adapter gives `series` under this rule, if the rule selects it.
    fn api_name(&self, series: &str) -> Option<String> {
        if let Some(n) = &self.series_name
            && n != series
        {
            return None;
        }
        if let Some(re) = &self.series_name_regex
            && !re.is_match(series)
        {
            return None;
        }
        if !self
            .filters
            .iter()
            .all(|(re, pos)| re.is_match(series) == *pos)
        {
            return None;
        }
        let caps = self.name_matches.captures(series)?;
        let mut out = String::new();
        caps.expand(&self.name_as, &mut out);
        Some(out)
    }

    /// The series this rule exposes as `metric`, inverting `name` where that is exact.
    fn series_for(&self, metric: &str, given: Option<&str>) -> Result<String, String> {
        let candidate = if let Some(s) = given {
            s.to_owned()
        } else if let Some(n) = &self.series_name {
            n.clone()
        } else {
            self.invert_name(metric)?
        };
        match self.api_name(&candidate) {
            Some(api) if api == metric => Ok(candidate),
            Some(api) => Err(format!(
                "{} exposes series {candidate} as {api}, not {metric}",
                self.id
            )),
            None => Err(format!(
                "{} does not select series {candidate} (seriesQuery, seriesFilters or name.matches)",
                self.id
            )),
        }
    }

    /// Inverts `name.matches`/`name.as` when `matches` is `^PREFIX(.*)SUFFIX$` (or `(.+)`)
    /// with literal PREFIX/SUFFIX and `as` uses the group once, or when both keep the whole
    /// name (`matches` empty or `.*`, `as` `$0`).
    fn invert_name(&self, metric: &str) -> Result<String, String> {
        let re = self.name_matches.as_str();
        let cannot = || {
            format!(
                "{}: name.matches {re:?} with as {:?} cannot be inverted offline; give the series with --series {metric}=SERIES",
                self.id, self.name_as
            )
        };
        if (re == ".*" || re == "^.*$") && self.name_as == "$0" {
            return Ok(metric.to_owned());
        }
        let body = re.strip_prefix('^').ok_or_else(cannot)?;
        let body = body.strip_suffix('$').ok_or_else(cannot)?;
        let (prefix, rest) = body
            .split_once("(.*)")
            .or_else(|| body.split_once("(.+)"))
            .ok_or_else(cannot)?;
        let (prefix, suffix) = (
            literal(prefix).ok_or_else(cannot)?,
            literal(rest).ok_or_else(cannot)?,
        );
        let (before, after) = split_group_reference(&self.name_as).ok_or_else(cannot)?;
        let middle = metric
            .strip_prefix(before.as_str())
            .and_then(|m| m.strip_suffix(after.as_str()))
            .ok_or_else(|| {
                format!(
                    "{}: names it exposes have the form {before}…{after}; {metric} is not one",
                    self.id
                )
            })?;
        Ok(format!("{prefix}{middle}{suffix}"))
    }

    /// The label naming `gr` (prometheus-adapter's `LabelForResource`).
    fn label_for(&self, gr: &GroupResource) -> Result<String, String> {
        if let Some((_, label)) = self.resources.overrides.iter().find(|(g, _)| g == gr) {
            return Ok(label.clone());
        }
        let Some(t) = &self.resources.template else {
            return Err(format!(
                "{}.resources maps no label to {} (no override and no template)",
                self.id,
                gr.display()
            ));
        };
        let singular = singular(&gr.resource);
        let group = gr.group.replace(['.', '-'], "_");
        let label = t.expand(&|f| match f {
            "Group" => Some(group.clone()),
            "Resource" => Some(singular.clone()),
            _ => None,
        })?;
        if label.is_empty() {
            return Err(format!(
                "{}.resources.template expands to an empty label",
                self.id
            ));
        }
        Ok(label)
    }
}

/// The text `s` matches when it is a regex without metacharacters (escapes of `.`, `-`, `_`
/// allowed).
fn literal(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let e = chars.next()?;
                if e.is_ascii_alphanumeric() {
                    return None;
                }
                out.push(e);
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// `as` as the literal text before and after its one reference to group 1 (`$1` or `${1}`).
fn split_group_reference(as_: &str) -> Option<(String, String)> {
    for r in ["${1}", "$1"] {
        if let Some((a, b)) = as_.split_once(r) {
            // `$1x` would name group `1x`: only `${1}` may be followed by a name character.
            if r == "$1" && b.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            if a.contains('$') || b.contains('$') {
                return None;
            }
            return Some((a.to_owned(), b.to_owned()));
        }
    }
    None
}

/// The metric name a series selector pins: `name{...}`, `{__name__="name"}`, or a regex from
/// `{__name__=~"re"}` (second value).
fn series_name_of(query: &str) -> Result<(Option<String>, Option<String>), String> {
    let q = query.trim();
    let (name, rest) = match q.find('{') {
        Some(i) => (q[..i].trim(), &q[i..]),
        None => (q, ""),
    };
    let mut literal = (!name.is_empty()).then(|| name.to_owned());
    let mut re = None;
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or("is not a series selector (name{label=\"value\",...})")?;
        for (label, op, value) in parse_matchers(inner)? {
            if label == "__name__" {
                match op.as_str() {
                    "=" => literal = Some(value),
                    "=~" => re = Some(value),
                    _ => {}
                }
            }
        }
    }
    Ok((literal, re))
}

/// `label op "value"` pairs of a selector's braces.
fn parse_matchers(inner: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut label = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                label.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut op = String::new();
        while let Some(&c) = chars.peek() {
            if matches!(c, '=' | '!' | '~') {
                op.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let quote = chars.next();
        if label.is_empty() || !matches!(op.as_str(), "=" | "!=" | "=~" | "!~") {
            return Err(format!("bad label matcher near {label:?}{op}"));
        }
        let Some(q @ ('"' | '\'' | '`')) = quote else {
            return Err(format!("the value of {label} must be quoted"));
        };
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("the value of {label} is not closed")),
                Some('\\') if q != '`' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(c) => value.push(c),
                    None => return Err(format!("the value of {label} is not closed")),
                },
                Some(c) if c == q => break,
                Some(c) => value.push(c),
            }
        }
        out.push((label, op, value));
    }
}

/// Known resources: (singular, plural, group), for normalizing overrides and describedObjects
/// as the adapter's REST mapper does.
const KNOWN_RESOURCES: &[(&str, &str, &str)] = &[
    ("pod", "pods", ""),
    ("namespace", "namespaces", ""),
    ("service", "services", ""),
    ("node", "nodes", ""),
    ("persistentvolumeclaim", "persistentvolumeclaims", ""),
    ("persistentvolume", "persistentvolumes", ""),
    ("deployment", "deployments", "apps"),
    ("statefulset", "statefulsets", "apps"),
    ("replicaset", "replicasets", "apps"),
    ("daemonset", "daemonsets", "apps"),
    ("job", "jobs", "batch"),
    ("cronjob", "cronjobs", "batch"),
    ("ingress", "ingresses", "networking.k8s.io"),
    ("rollout", "rollouts", "argoproj.io"),
];

/// `{group, resource}` of a config or an object kind, resource plural and lower case.
fn normalize(group: &str, resource: &str) -> GroupResource {
    let r = resource.to_ascii_lowercase();
    match KNOWN_RESOURCES.iter().find(|(s, p, _)| *s == r || *p == r) {
        Some((_, plural, g)) => GroupResource {
            group: if group.is_empty() {
                (*g).to_owned()
            } else {
                group.to_owned()
            },
            resource: (*plural).to_owned(),
        },
        None => GroupResource {
            group: group.to_owned(),
            resource: if r.ends_with('s') { r } else { format!("{r}s") },
        },
    }
}

fn singular(plural: &str) -> String {
    KNOWN_RESOURCES
        .iter()
        .find(|(_, p, _)| *p == plural)
        .map(|(s, _, _)| (*s).to_owned())
        .unwrap_or_else(|| plural.strip_suffix('s').unwrap_or(plural).to_owned())
}

impl GroupResource {
    fn display(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Go templates with `<<` `>>` delimiters, restricted to field references

/// The fields of `metricsQuery` this import can fill.
const QUERY_FIELDS: &[&str] = &["Series", "LabelMatchers", "GroupBy"];
/// The fields of `resources.template`.
const RESOURCE_FIELDS: &[&str] = &["Group", "Resource"];
/// prometheus-adapter's advanced `metricsQuery` fields, which need template functions.
const ADVANCED_FIELDS: &[&str] = &["LabelValuesByName", "GroupBySlice"];

/// A parsed template: literal text and field references.
#[derive(Debug, Clone, PartialEq)]
struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field(String),
}

impl Template {
    /// Parses `<<.Field>>` references (spaces allowed inside the delimiters); any other action
    /// is an error naming its byte offset.
    fn parse(text: &str, fields: &[&str]) -> Result<Template, String> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(format!(
                "is {} bytes, more than {MAX_TEMPLATE_BYTES}",
                text.len()
            ));
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        // Go's trim markers: `<<- ` drops the whitespace before the action, ` ->>` after it.
        let mut trim_next = false;
        let space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
        while let Some(open) = rest.find("<<") {
            let raw = &rest[open + 2..];
            let trim_before = raw.starts_with('-') && raw[1..].starts_with(space);
            let mut text = &rest[..open];
            if std::mem::take(&mut trim_next) {
                text = text.trim_start_matches(space);
            }
            if trim_before {
                text = text.trim_end_matches(space);
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find(">>").ok_or_else(|| {
                format!(
                    "the action opened at byte {} is not closed with >>",
                    offset + open
                )
            })?;
            let mut action = after[..close].trim_matches(space);
            if trim_before {
                action = action[1..].trim_start_matches(space);
            }
            if action.ends_with('-') && action[..action.len() - 1].ends_with(space) {
                action = action[..action.len() - 1].trim_end_matches(space);
                trim_next = true;
            }
            let at = offset + open;
            let field = action.strip_prefix('.').filter(|f| {
                !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            match field {
                Some(f) if fields.contains(&f) => pieces.push(Piece::Field(f.to_owned())),
                Some(f) if ADVANCED_FIELDS.contains(&f) => {
                    return Err(format!(
                        "<<{action}>> at byte {at}: .{f} is not supported by import-adapter; write the labels out in the query (fields: {})",
                        dotted(fields)
                    ));
                }
                Some(f) => {
                    return Err(format!(
                        "<<{action}>> at byte {at}: unknown field .{f}; the fields are {}",
                        dotted(fields)
                    ));
                }
                None => {
                    return Err(format!(
                        "<<{action}>> at byte {at}: only field references such as <<{}>> are supported, not template functions or control structures",
                        dotted(&fields[..1])
                    ));
                }
            }
            offset += open + 2 + close + 2;
            rest = &after[close + 2..];
        }
        let rest = if trim_next {
            rest.trim_start_matches(space)
        } else {
            rest
        };
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template(pieces))
    }

    /// The text with every field replaced; bounded by [`MAX_QUERY_BYTES`].
    fn expand(&self, value: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(f) => {
                    out.push_str(&value(f).ok_or_else(|| format!("no value for .{f}"))?)
                }
            }
            if out.len() > MAX_QUERY_BYTES {
                return Err(format!(
                    "the template expands to more than {MAX_QUERY_BYTES} bytes"
                ));
            }
        }
        Ok(out)
    }
}

fn dotted(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| format!(".{f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// HPAs

/// One HPA document.
#[derive(Debug)]
struct Hpa {
    /// `HorizontalPodAutoscaler ns/name (file#doc)`.
    id: String,
    value: Value,
}

/// The HPAs of a multi-document input (and of `List`s); notes for other documents.
fn read_hpas(path: &str, text: &str) -> Result<(Vec<Hpa>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc = i + 1;
        let v: Value =
            Deserialize::deserialize(de).map_err(|e| format!("document {doc} is not YAML: {e}"))?;
        if v.is_null() {
            continue;
        }
        let items: Vec<(String, Value)> = if kind(&v) == "List" || kind(&v).ends_with("List") {
            v.get("items")
                .and_then(Value::as_sequence)
                .map(|s| {
                    s.iter()
                        .enumerate()
                        .map(|(j, item)| (format!("{path}#{doc} items[{j}]"), item.clone()))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            vec![(format!("{path}#{doc}"), v)]
        };
        for (at, item) in items {
            let api = item.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let k = kind(&item);
            let name = format!(
                "{}/{}",
                str_at(&item, &["metadata", "namespace"]).unwrap_or("default"),
                str_at(&item, &["metadata", "name"]).unwrap_or("")
            );
            match (api, k) {
                ("autoscaling/v2" | "autoscaling/v2beta2", "HorizontalPodAutoscaler") => {
                    out.push(Hpa {
                        id: format!("HorizontalPodAutoscaler {name} ({at})"),
                        value: item,
                    })
                }
                (_, "HorizontalPodAutoscaler") => notes.push(format!(
                    "HorizontalPodAutoscaler {name} ({at}): apiVersion {api} is not read; get it as autoscaling/v2 (kubectl get hpa.v2.autoscaling -o yaml)"
                )),
                _ => notes.push(format!("{at}: {k} {name} is not an HPA; skipped")),
            }
        }
    }
    Ok((out, notes))
}

fn kind(v: &Value) -> &str {
    v.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

/// Flags that shape every PromScaler.
#[derive(Debug)]
struct Options {
    server_address: String,
    authentication_ref: Option<String>,
    /// `--series`: metric name → series name.
    series: BTreeMap<String, String>,
    allow_partial: bool,
    /// Query bytes this run may still produce (bounds the output whatever the inputs).
    query_budget: std::cell::Cell<usize>,
}

/// One HPA's result.
#[derive(Debug, Default)]
struct Converted {
    document: Option<Value>,
    notes: Vec<String>,
    warnings: Vec<String>,
}

/// A translated HPA metric.
#[derive(Debug)]
struct Trigger {
    name: String,
    query: String,
    metric_type: &'static str,
    threshold: String,
}

fn convert_hpa(config: &Config, hpa: &Hpa, options: &Options) -> Converted {
    let mut out = Converted::default();
    let v = &hpa.value;
    let namespace = str_at(v, &["metadata", "namespace"]).unwrap_or("default");
    let name = str_at(v, &["metadata", "name"]).unwrap_or_default();
    let spec = v.get("spec").cloned().unwrap_or(Value::Null);
    let Some(target) = spec
        .get("scaleTargetRef")
        .filter(|t| str_at(t, &["name"]).is_some())
    else {
        out.warnings
            .push("spec.scaleTargetRef.name is missing; not converted".into());
        return out;
    };
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    if metrics.is_empty() {
        out.warnings.push(
            "spec.metrics is empty: the HPA scales on 80% CPU by default, a resource metric promscaler cannot read; not converted".into(),
        );
        return out;
    }
    let mut triggers: Vec<Trigger> = Vec::new();
    let mut failed = 0;
    for (i, m) in metrics.iter().enumerate() {
        let at = format!("spec.metrics[{i}]");
        match convert_metric(config, m, namespace, target, options) {
            Ok((mut t, notes)) => {
                // Trigger names are unique per PromScaler.
                let base = t.name.clone();
                let mut n = 2;
                while triggers.iter().any(|x| x.name == t.name) {
                    t.name = format!("{base}-{n}");
                    n += 1;
                }
                out.notes
                    .extend(notes.into_iter().map(|n| format!("{at} ({base}): {n}")));
                triggers.push(t);
            }
            Err(e) => {
                failed += 1;
                out.warnings.push(format!("{at}: not translated: {e}"));
            }
        }
    }
    if triggers.is_empty() {
        out.warnings
            .push("no metric could be translated; not converted".into());
        return out;
    }
    if failed > 0 {
        if !options.allow_partial {
            out.warnings.push(format!(
                "not converted: {failed} of {} metrics could not be translated, and a PromScaler without them would scale down while they still ask for more replicas; fix them, or convert the others with --allow-partial",
                metrics.len()
            ));
            return out;
        }
        out.warnings.push(format!(
            "converted with --allow-partial: it scales on {} of {} metrics",
            triggers.len(),
            metrics.len()
        ));
    }
    let doc = promscaler(name, namespace, &spec, target, &triggers, options);
    // The same offline validation as `promscalerctl validate`.
    let text = serde_yaml::to_string(&doc).unwrap_or_default();
    match promscaler_api::files::check(&text) {
        Ok(checked) if checked.iter().all(|c| c.errors.is_empty()) => {
            for c in &checked {
                for w in &c.warnings {
                    out.notes
                        .push(format!("PromScaler {}: {}", w.field, w.message));
                }
            }
            out.document = Some(doc);
        }
        Ok(checked) => {
            for c in checked {
                for e in c.errors {
                    out.warnings.push(format!(
                        "not converted: the PromScaler would be invalid: {}: {}",
                        e.field, e.message
                    ));
                }
            }
        }
        Err(e) => out.warnings.push(format!(
            "not converted: the PromScaler would be invalid: {e}"
        )),
    }
    out
}

/// The PromScaler for an HPA.
fn promscaler(
    name: &str,
    namespace: &str,
    spec: &Value,
    target: &Value,
    triggers: &[Trigger],
    options: &Options,
) -> Value {
    let mut target_ref = Mapping::new();
    for k in ["apiVersion", "kind", "name"] {
        if let Some(v) = target.get(k) {
            target_ref.insert(k.into(), v.clone());
        }
    }
    let mut s = Mapping::new();
    s.insert("scaleTargetRef".into(), Value::Mapping(target_ref));
    // The HPA controller's default sync period.
    s.insert("pollingInterval".into(), 15.into());
    // The HPA's default minReplicas is 1; a PromScaler's is 0.
    s.insert(
        "minReplicaCount".into(),
        spec.get("minReplicas").cloned().unwrap_or(1.into()),
    );
    if let Some(max) = spec.get("maxReplicas") {
        s.insert("maxReplicaCount".into(), max.clone());
    }
    if let Some(b) = spec.get("behavior") {
        let mut hpa = Mapping::new();
        hpa.insert("behavior".into(), b.clone());
        let mut adv = Mapping::new();
        adv.insert("horizontalPodAutoscalerConfig".into(), Value::Mapping(hpa));
        s.insert("advanced".into(), Value::Mapping(adv));
    }
    let ts = triggers
        .iter()
        .map(|t| {
            let mut md = Mapping::new();
            md.insert(
                "serverAddress".into(),
                options.server_address.clone().into(),
            );
            md.insert("query".into(), t.query.clone().into());
            md.insert("threshold".into(), t.threshold.clone().into());
            let mut m = Mapping::new();
            m.insert("type".into(), "prometheus".into());
            m.insert("name".into(), t.name.clone().into());
            m.insert("metricType".into(), t.metric_type.into());
            if let Some(a) = &options.authentication_ref {
                let mut r = Mapping::new();
                r.insert("name".into(), a.clone().into());
                m.insert("authenticationRef".into(), Value::Mapping(r));
            }
            m.insert("metadata".into(), Value::Mapping(md));
            Value::Mapping(m)
        })
        .collect();
    s.insert("triggers".into(), Value::Sequence(ts));
    let mut meta = Mapping::new();
    meta.insert("name".into(), name.into());
    meta.insert("namespace".into(), namespace.into());
    let mut doc = Mapping::new();
    doc.insert("apiVersion".into(), promscaler_api::API_VERSION.into());
    doc.insert("kind".into(), "PromScaler".into());
    doc.insert("metadata".into(), Value::Mapping(meta));
    doc.insert("spec".into(), Value::Mapping(s));
    Value::Mapping(doc)
}

/// One HPA metric as a trigger, with notes on what is approximated.
fn convert_metric(
    config: &Config,
    m: &Value,
    namespace: &str,
    target: &Value,
    options: &Options,
) -> Result<(Trigger, Vec<String>), String> {
    let ty = str_at(m, &["type"]).unwrap_or("");
    let mut notes = Vec::new();
    let (section, external) = match ty {
        "External" => ("external", true),
        "Pods" => ("pods", false),
        "Object" => ("object", false),
        "Resource" | "ContainerResource" => {
            let res = str_at(
                m,
                &[
                    if ty == "Resource" {
                        "resource"
                    } else {
                        "containerResource"
                    },
                    "name",
                ],
            )
            .unwrap_or("?");
            return Err(format!(
                "{ty} metric {res} comes from the resource metrics API (metrics-server or the adapter's resourceRules), not from these rules; write a Prometheus query for it (e.g. over container_{}) and add it as a trigger by hand",
                if res == "memory" {
                    "memory_working_set_bytes"
                } else {
                    "cpu_usage_seconds_total"
                }
            ));
        }
        other => {
            return Err(format!(
                "metric type {other:?} is not one of External, Pods, Object"
            ));
        }
    };
    let body = m
        .get(section)
        .ok_or_else(|| format!("{ty} metric without `{section}`"))?;
    let metric = str_at(body, &["metric", "name"])
        .ok_or_else(|| format!("{section}.metric.name is missing"))?;
    let selector = selector_matchers(body.get("metric").and_then(|x| x.get("selector")))?;
    let rules = if external {
        &config.external_rules
    } else {
        &config.rules
    };
    let given = options.series.get(metric).map(String::as_str);
    let mut found = Vec::new();
    let mut misses = Vec::new();
    for r in rules {
        match r.series_for(metric, given) {
            Ok(series) => found.push((r, series)),
            Err(e) => misses.push(e),
        }
    }
    let list = if external { "externalRules" } else { "rules" };
    let (rule, series) = match found.as_slice() {
        [one] => one,
        [] => {
            // A rule that would match were its name rule invertible says so.
            let hint = misses
                .iter()
                .find(|e| e.contains("--series"))
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            return Err(format!(
                "no rule of the config's {list} exposes {metric}{hint}"
            ));
        }
        many => {
            return Err(format!(
                "{} all expose {metric}; prometheus-adapter needs its rules to be mutually exclusive, fix the config",
                many.iter()
                    .map(|(r, _)| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    let target_spec = body
        .get("target")
        .ok_or_else(|| format!("{section}.target is missing"))?;
    let target_type = str_at(target_spec, &["type"]).unwrap_or("");
    let (metric_type, quantity) = match target_type {
        "AverageValue" => ("AverageValue", target_spec.get("averageValue")),
        "Value" => ("Value", target_spec.get("value")),
        "Utilization" => {
            return Err("target type Utilization applies only to resource metrics".into());
        }
        other => {
            return Err(format!(
                "target type {other:?} is not Value or AverageValue"
            ));
        }
    };
    let quantity = quantity.ok_or_else(|| {
        format!(
            "{section}.target.{} is missing",
            if metric_type == "Value" {
                "value"
            } else {
                "averageValue"
            }
        )
    })?;
    let quantity = match quantity {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(format!("{section}.target: the quantity is not a number")),
    };
    let threshold = parse_quantity(&quantity)?;

    let mut parts = selector;
    let (query, metric_type) = if external {
        if rule.namespaced {
            parts.push(matcher(
                &rule.label_for(&normalize("", "namespaces"))?,
                "=",
                namespace,
            ));
        }
        let q = expand_query(rule, series, &parts, "")?;
        // The HPA sums every series of an external metric.
        (format!("sum({q})"), metric_type)
    } else if ty == "Pods" {
        if metric_type != "AverageValue" {
            return Err("a Pods metric's target must be AverageValue".into());
        }
        parts.push(matcher(
            &rule.label_for(&normalize("", "namespaces"))?,
            "=",
            namespace,
        ));
        let pod_label = rule.label_for(&normalize("", "pods"))?;
        let (pattern, note) = pod_name_pattern(target)?;
        parts.push(matcher(&pod_label, "=~", &pattern));
        notes.push(note);
        let q = expand_query(rule, series, &parts, &pod_label)?;
        // The HPA's average over the pods against the target is their sum against the target.
        (format!("sum({q})"), "AverageValue")
    } else {
        let obj = body
            .get("describedObject")
            .ok_or("object.describedObject is missing")?;
        let kind = str_at(obj, &["kind"]).ok_or("object.describedObject.kind is missing")?;
        let obj_name = str_at(obj, &["name"]).ok_or("object.describedObject.name is missing")?;
        let group = str_at(obj, &["apiVersion"])
            .and_then(|a| a.split_once('/').map(|(g, _)| g))
            .unwrap_or("");
        let gr = normalize(group, kind);
        let label = rule.label_for(&gr)?;
        if gr.resource != "namespaces" {
            parts.push(matcher(
                &rule.label_for(&normalize("", "namespaces"))?,
                "=",
                namespace,
            ));
        }
        parts.push(matcher(&label, "=", obj_name));
        (expand_query(rule, series, &parts, &label)?, metric_type)
    };
    let left = options.query_budget.get();
    if query.len() > left {
        options.query_budget.set(0);
        return Err(format!(
            "the converted queries exceed {} MiB in all; convert the HPAs in batches",
            MAX_TOTAL_QUERY_BYTES >> 20
        ));
    }
    options.query_budget.set(left - query.len());
    Ok((
        Trigger {
            name: metric.to_owned(),
            query,
            metric_type,
            threshold,
        },
        notes,
    ))
}

fn expand_query(
    rule: &Rule,
    series: &str,
    matchers: &[String],
    group_by: &str,
) -> Result<String, String> {
    let lm = matchers.join(",");
    rule.metrics_query
        .expand(&|f| match f {
            "Series" => Some(series.to_owned()),
            "LabelMatchers" => Some(lm.clone()),
            "GroupBy" => Some(group_by.to_owned()),
            _ => None,
        })
        .map_err(|e| format!("{}.metricsQuery: {e}", rule.id))
}

/// `label op "value"` in PromQL, the value quoted as a Go string.
fn matcher(label: &str, op: &str, value: &str) -> String {
    let mut q = String::with_capacity(value.len() + 2);
    q.push('"');
    for c in value.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    format!("{label}{op}{q}")
}

/// The metric `selector` as PromQL matchers, sorted by label as Kubernetes sorts them.
fn selector_matchers(selector: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(sel) = selector.filter(|s| !s.is_null()) else {
        return Ok(Vec::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_mapping) {
        for (k, v) in ml {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                return Err("selector.matchLabels must map strings to strings".into());
            };
            reqs.push((k.to_owned(), matcher(k, "=", v)));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_sequence) {
        for e in exprs {
            let key = str_at(e, &["key"]).ok_or("selector.matchExpressions[].key is missing")?;
            let op = str_at(e, &["operator"]).unwrap_or("");
            let mut values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort_unstable();
            let m = match (op, values.len()) {
                ("In", 1) => matcher(key, "=", values[0]),
                ("In", n) if n > 1 => matcher(key, "=~", &values.join("|")),
                ("NotIn", 1) => matcher(key, "!=", values[0]),
                ("NotIn", n) if n > 1 => matcher(key, "!~", &values.join("|")),
                ("Exists", 0) => matcher(key, "!=", ""),
                ("DoesNotExist", 0) => matcher(key, "=", ""),
                _ => {
                    return Err(format!(
                        "selector: matchExpressions {key} {op} with {} value(s) has no PromQL matcher (prometheus-adapter refuses it too)",
                        values.len()
                    ));
                }
            };
            reqs.push((key.to_owned(), m));
        }
    }
    if sel.as_mapping().is_some_and(|m| {
        m.keys()
            .any(|k| !matches!(k.as_str(), Some("matchLabels" | "matchExpressions")))
    }) {
        return Err("selector has fields other than matchLabels and matchExpressions".into());
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs.into_iter().map(|(_, m)| m).collect())
}

/// The name pattern of the target's pods (prometheus-adapter matched the pods of the target's
/// selector by name; offline only the naming scheme of the target's kind is known).
fn pod_name_pattern(target: &Value) -> Result<(String, String), String> {
    let kind = str_at(target, &["kind"]).unwrap_or("Deployment");
    let name = str_at(target, &["name"]).unwrap_or_default();
    let escaped = regex::escape(name);
    // ReplicaSet pod-template-hash and pod-name suffixes use this alphabet (no vowels).
    const SAFE: &str = "[bcdfghjklmnpqrstvwxz2456789]";
    let pattern = match kind {
        "Deployment" | "Rollout" => format!("{escaped}-{SAFE}{{1,10}}-{SAFE}{{5}}"),
        "ReplicaSet" => format!("{escaped}-{SAFE}{{5}}"),
        "StatefulSet" => format!("{escaped}-[0-9]+"),
        other => {
            return Err(format!(
                "a Pods metric of a {other}: the names of its pods are not known offline; use an External metric over the pods' labels instead"
            ));
        }
    };
    let note = format!(
        "the adapter matched the pods of {kind} {name} by their names; the query matches the names a {kind} gives its pods ({pattern})"
    );
    Ok((pattern, note))
}

/// A Kubernetes quantity (`100`, `1.5`, `500m`, `2k`, `1Mi`, `1e3`) as a decimal number.
fn parse_quantity(q: &str) -> Result<String, String> {
    let bad = || format!("target quantity {q:?} is not a Kubernetes quantity");
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    // Dividing for `m` and negative exponents keeps 300m exactly 0.3.
    let factor = match suffix {
        "" => 1.0,
        "m" => return finish(q, n / 1e3),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => {
            let e: i32 = s[1..].parse().map_err(|_| bad())?;
            if e < 0 {
                return finish(q, n / 10f64.powi(-e));
            }
            10f64.powi(e)
        }
        _ => return Err(bad()),
    };
    finish(q, n * factor)
}

fn finish(q: &str, v: f64) -> Result<String, String> {
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("target quantity {q:?} must be greater than 0"));
    }
    let mut s = String::new();
    let _ = write!(s, "{v}");
    Ok(s)
}

#[cfg(test)]
mod tests;
