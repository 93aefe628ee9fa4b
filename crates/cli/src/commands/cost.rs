//! `cost`: what each PromScaler's queries cost upstream, from the samples the upstream reported
//! processing for them (Prometheus and AMP `stats=all`), sorted by samples per hour, and in
//! money at a price per billion samples.

use promscaler_api::proto::{ListScalersRequest, ScalerStatus};
use serde::Serialize;

use crate::Error;
use crate::args::Context;
use crate::output::{Render, Table, emit};

/// Amazon Managed Service for Prometheus' list price for query samples processed, US dollars
/// per billion samples (us-east-1, aws.amazon.com/prometheus/pricing, December 2026). Other
/// regions differ: pass yours with `--price-per-billion-samples`.
pub const AMP_PRICE_PER_BILLION_SAMPLES: f64 = 0.10;

/// Hours in an average month (365 × 24 / 12), as AWS's price calculator counts them.
const HOURS_PER_MONTH: f64 = 730.0;

/// `promscalerctl cost [-n NAMESPACE] [--price-per-billion-samples USD]`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only PromScalers in this namespace (default: all namespaces).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// Price of a billion query samples processed, in your currency (default: AMP's list price
    /// in us-east-1, US$0.10; see docs/operations.md "What each PromScaler costs").
    #[arg(long, default_value_t = AMP_PRICE_PER_BILLION_SAMPLES, value_parser = price)]
    pub price_per_billion_samples: f64,
}

fn price(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!(
            "{text:?} is not a price; give a non-negative number, e.g. 0.10"
        )),
    }
}

#[derive(Debug, Serialize)]
struct CostRow {
    namespace: String,
    name: String,
    /// Samples the last evaluation's queries processed; absent when unknown.
    samples_last_interval: Option<u64>,
    /// That, per hour at the PromScaler's polling interval.
    samples_per_hour: Option<f64>,
    /// `samples_per_hour` at the price.
    cost_per_hour: Option<f64>,
    /// `cost_per_hour` × 730.
    cost_per_month: Option<f64>,
}

#[derive(Debug, Serialize)]
struct CostView {
    price_per_billion_samples: f64,
    scalers: Vec<CostRow>,
    /// Totals over the PromScalers with a figure.
    total_samples_per_hour: f64,
    total_cost_per_month: f64,
    /// PromScalers without a figure yet (not evaluated, or an upstream that does not report
    /// samples).
    unknown: usize,
}

impl CostView {
    fn new(scalers: &[ScalerStatus], price: f64) -> Self {
        let mut rows: Vec<CostRow> = scalers
            .iter()
            .map(|s| {
                let r = s.r#ref.clone().unwrap_or_default();
                let cost_per_hour = s.samples_per_hour.map(|n| n / 1e9 * price);
                CostRow {
                    namespace: r.namespace,
                    name: r.name,
                    samples_last_interval: s.samples_last_interval,
                    samples_per_hour: s.samples_per_hour,
                    cost_per_hour,
                    cost_per_month: cost_per_hour.map(|c| c * HOURS_PER_MONTH),
                }
            })
            .collect();
        // Most expensive first; unknown figures last; ties by namespace and name.
        rows.sort_by(|a, b| {
            let rank = |r: &CostRow| r.samples_per_hour.map_or(f64::NEG_INFINITY, |n| n);
            rank(b)
                .total_cmp(&rank(a))
                .then_with(|| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)))
        });
        let total_samples_per_hour: f64 = rows.iter().filter_map(|r| r.samples_per_hour).sum();
        Self {
            price_per_billion_samples: price,
            total_cost_per_month: total_samples_per_hour / 1e9 * price * HOURS_PER_MONTH,
            total_samples_per_hour,
            unknown: rows.iter().filter(|r| r.samples_per_hour.is_none()).count(),
            scalers: rows,
        }
    }
}

/// Whole numbers with thousands separators (sample counts are large).
fn count(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn money(v: f64) -> String {
    if v != 0.0 && v < 0.01 {
        format!("{v:.6}")
    } else {
        format!("{v:.2}")
    }
}

impl Render for CostView {
    fn table(&self) -> String {
        if self.scalers.is_empty() {
            return "No PromScalers found.\n".into();
        }
        let mut t = Table::new(&[
            "NAMESPACE",
            "NAME",
            "SAMPLES/INTERVAL",
            "SAMPLES/HOUR",
            "COST/MONTH",
        ]);
        let unknown = || "-".to_owned();
        for r in &self.scalers {
            t.row(vec![
                r.namespace.clone(),
                r.name.clone(),
                r.samples_last_interval
                    .map_or_else(unknown, |n| count(n as f64)),
                r.samples_per_hour.map_or_else(unknown, count),
                r.cost_per_month.map_or_else(unknown, money),
            ]);
        }
        let mut out = t.render();
        out.push_str(&format!(
            "\nTotal: {} samples/hour, {} per month at {} per billion samples",
            count(self.total_samples_per_hour),
            money(self.total_cost_per_month),
            self.price_per_billion_samples
        ));
        if self.unknown > 0 {
            out.push_str(&format!(
                " ({} PromScaler(s) without a figure yet: not evaluated, or the upstream does not \
                 report samples)",
                self.unknown
            ));
        }
        out.push('\n');
        out
    }
}

/// Lists the PromScalers by what their queries cost upstream.
pub(crate) async fn run(args: Args, cx: &Context) -> Result<(), Error> {
    let mut client = cx.clients.actuator()?;
    let e = &cx.clients.actuator;
    let request = ListScalersRequest {
        namespace: args.namespace.clone().unwrap_or_default(),
    };
    let response = cx
        .clients
        .call(e, "ListScalers", client.list_scalers(request))
        .await?;
    if !response.leader.is_empty() {
        eprintln!(
            "note: this actuator replica is a standby; figures are on the leader, pod {}",
            response.leader
        );
    }
    emit(
        cx.output,
        &CostView::new(&response.scalers, args.price_per_billion_samples),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1_000.0), "1,000");
        assert_eq!(count(144_000_000.4), "144,000,000");
    }

    #[test]
    fn prices_must_be_non_negative_numbers() {
        assert_eq!(price("0.1"), Ok(0.1));
        for bad in ["-1", "NaN", "inf", "ten"] {
            assert!(price(bad).unwrap_err().contains("non-negative"), "{bad}");
        }
    }
}
