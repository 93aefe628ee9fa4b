//! `check`: `MetricsFetcherService.Check` for each trigger of a PromScaler file (or for a query
//! given with flags), saying whether the query can drive scaling and, when it cannot (the
//! seed's pitfall: one series per pod), showing the series and the fix.

use std::collections::BTreeMap;

use promscaler_api::proto::{
    AwsAuth, BasicAuth, BearerAuth, CheckResponse, PrometheusSource, QueryErrorKind, QueryRequest,
    UpstreamAuth, upstream_auth::Method,
};
use serde::Serialize;

use crate::Error;
use crate::args::Context;
use crate::input::{key_value, load_scaler};
use crate::output::{Render, Table, emit, number};
use crate::views::{QueryErrorView, yes_no};

/// `promscalerctl check FILE` or `promscalerctl check --server URL --query PROMQL`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A PromScaler manifest ("-" reads stdin); every trigger's query is checked with the
    /// trigger's server and authentication (its PromScalerAuthentication and Secrets are read
    /// from the same input, e.g. `helm template ... | promscalerctl check -`).
    #[arg(value_name = "FILE", required_unless_present = "query", conflicts_with_all = ["server", "query"])]
    pub file: Option<String>,

    /// The PromScaler to use when the file has several.
    #[arg(long, requires = "file")]
    pub name: Option<String>,

    /// A value of the referenced PromScalerAuthentication's Secrets, by parameter name (e.g.
    /// bearerToken=...), for Secrets that are not in the file (Secret documents in the file are
    /// read). Repeatable.
    #[arg(long = "auth-param", value_name = "PARAMETER=VALUE", value_parser = key_value)]
    pub auth_params: Vec<(String, String)>,

    /// Without a file: the server's base URL (KEDA serverAddress).
    #[arg(long, requires = "query")]
    pub server: Option<String>,

    /// Without a file: the PromQL query.
    #[arg(long, requires = "server")]
    pub query: Option<String>,

    /// Without a file: treat an empty result or NaN as 0 (KEDA ignoreNullValues, default true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ignore_null_values: bool,

    /// Without a file: sign with AWS SigV4 using the metrics-fetcher's own identity (IRSA),
    /// like KEDA's identityOwner: operator.
    #[arg(long)]
    pub aws: bool,

    /// Without a file: SigV4 signing region (implies --aws); default: from the AMP host.
    #[arg(long)]
    pub aws_region: Option<String>,

    /// Without a file: a role the fetcher assumes before signing (implies --aws).
    #[arg(long)]
    pub role_arn: Option<String>,

    /// Without a file: Authorization: Bearer token.
    #[arg(long)]
    pub bearer_token: Option<String>,

    /// Without a file: HTTP basic user.
    #[arg(long, requires = "password")]
    pub username: Option<String>,

    /// Without a file: HTTP basic password.
    #[arg(long)]
    pub password: Option<String>,

    /// Without a file: an extra header, NAME=VALUE (KEDA customHeaders). Repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
struct TriggerCheck {
    trigger: String,
    server: String,
    query: String,
    usable: bool,
    result_type: String,
    series_count: u32,
    series: Vec<String>,
    value: Option<f64>,
    advice: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<QueryErrorView>,
    /// A rewritten query that returns one value, when the fix is mechanical.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl TriggerCheck {
    fn new(trigger: String, request: &QueryRequest, r: &CheckResponse) -> Self {
        let error = r.error.as_ref().map(QueryErrorView::from);
        let multiple = r
            .error
            .as_ref()
            .is_some_and(|e| e.kind == QueryErrorKind::MultipleSeries as i32)
            || (!r.usable && r.series_count > 1);
        Self {
            trigger,
            server: request
                .source
                .as_ref()
                .map(|s| s.server_address.clone())
                .unwrap_or_default(),
            query: request.query.clone(),
            usable: r.usable,
            result_type: r.result_type.clone(),
            series_count: r.series_count,
            series: r.series.clone(),
            value: r.sample.as_ref().filter(|_| r.usable).map(|s| s.value),
            advice: r.advice.clone(),
            error,
            fix: multiple.then(|| format!("sum({})", request.query)),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct CheckView(Vec<TriggerCheck>);

impl Render for CheckView {
    fn table(&self) -> String {
        let mut t = Table::new(&["TRIGGER", "USABLE", "RESULT", "SERIES", "VALUE", "ADVICE"]);
        for c in &self.0 {
            t.row(vec![
                c.trigger.clone(),
                yes_no(c.usable),
                if c.result_type.is_empty() {
                    "-".into()
                } else {
                    c.result_type.clone()
                },
                c.series_count.to_string(),
                c.value.map(number).unwrap_or_else(|| "-".into()),
                c.advice.clone(),
            ]);
        }
        let mut out = t.render();
        for c in self.0.iter().filter(|c| !c.usable) {
            out.push_str(&format!("\n{}: {}\n", c.trigger, c.query));
            // The series are listed below; the error message would repeat them.
            if let Some(e) = c.error.as_ref().filter(|_| c.series.is_empty()) {
                out.push_str(&format!("  error: {}\n", e.short()));
            }
            if !c.series.is_empty() {
                out.push_str(&format!("  returns {} series:\n", c.series_count));
                for s in &c.series {
                    out.push_str(&format!("    {s}\n"));
                }
                if c.series.len() < c.series_count as usize {
                    out.push_str(&format!(
                        "    ... and {} more\n",
                        c.series_count as usize - c.series.len()
                    ));
                }
            }
            if let Some(fix) = &c.fix {
                out.push_str(&format!("  fix: aggregate to one value, e.g.\n    {fix}\n"));
            }
        }
        out
    }
}

/// The request for a query given with flags.
fn flag_request(args: &Args, server: &str, query: &str) -> QueryRequest {
    let method = if args.aws || args.aws_region.is_some() || args.role_arn.is_some() {
        Some(Method::Aws(AwsAuth {
            region: args.aws_region.clone().unwrap_or_default(),
            role_arn: args.role_arn.clone().unwrap_or_default(),
            ..AwsAuth::default()
        }))
    } else if let Some(token) = &args.bearer_token {
        Some(Method::Bearer(BearerAuth {
            token: token.clone(),
            header_name: String::new(),
        }))
    } else {
        args.username.as_ref().map(|u| {
            Method::Basic(BasicAuth {
                username: u.clone(),
                password: args.password.clone().unwrap_or_default(),
            })
        })
    };
    QueryRequest {
        source: Some(PrometheusSource {
            server_address: server.to_owned(),
            custom_headers: args.headers.iter().cloned().collect(),
            auth: method.map(|m| UpstreamAuth { method: Some(m) }),
            ..PrometheusSource::default()
        }),
        query: query.to_owned(),
        ignore_null_values: args.ignore_null_values,
        ..QueryRequest::default()
    }
}

/// Checks every query; fails when any of them cannot drive scaling.
pub(crate) async fn run(args: Args, cx: &Context) -> Result<(), Error> {
    let mut requests: Vec<(String, QueryRequest)> = Vec::new();
    match (&args.file, &args.server, &args.query) {
        (Some(file), _, _) => {
            let loaded = load_scaler(file, args.name.as_deref())?;
            let params: BTreeMap<String, String> = args.auth_params.iter().cloned().collect();
            for (i, t) in loaded.scaler.triggers.iter().enumerate() {
                let auth = loaded.auth(i, &params)?;
                requests.push((t.name.clone(), loaded.scaler.query_request(i, auth)));
            }
        }
        (None, Some(server), Some(query)) => {
            requests.push(("query".into(), flag_request(&args, server, query)));
        }
        _ => {
            return Err(Error::Usage(
                "give a PromScaler file, or --server and --query".into(),
            ));
        }
    }
    let mut client = cx.clients.fetcher()?;
    let mut checks = Vec::new();
    for (trigger, request) in requests {
        let response = cx
            .clients
            .call(&cx.clients.fetcher, "Check", client.check(request.clone()))
            .await?;
        checks.push(TriggerCheck::new(trigger, &request, &response));
    }
    let view = CheckView(checks);
    emit(cx.output, &view)?;
    let unusable = view.0.iter().filter(|c| !c.usable).count();
    if unusable > 0 {
        return Err(Error::Unusable {
            unusable,
            total: view.0.len(),
        });
    }
    Ok(())
}
