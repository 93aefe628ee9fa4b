//! Which PromQL queries fuse, and the fused query (on the AST of `promql-parser`, never on the
//! text).
//!
//! A query is a *member* of a family when it has an equality matcher `L="v"` on the same label
//! `L` in every selector, with the same `v` throughout, and its shape is one of:
//!
//! - root `R`: `sum|avg|min|max|count(E)` without `by`/`without`;
//!   `histogram_quantile(φ, sum by (le) (E))` with a literal φ; `R op R`, `R op s`, `s op R`
//!   for an arithmetic or comparison `op` (no set operators, no `on`/`ignoring`/`group_*`);
//!   `-R`, `(R)` and element-wise functions of `R` with literal extra arguments;
//! - inner `E` (per series, every output series keeps the input's labels other than the
//!   metric name): a selector, a range function of a matrix selector (`rate`, `increase`,
//!   `avg_over_time`, ...), element-wise functions of `E`, `E op s`, `s op E`, `E op E` with
//!   default matching, `-E`, `(E)`.
//!
//! Members whose queries are equal apart from `v` (the *template*: the query with every `L`
//! value replaced) form a family. The fused query is the template with `L=~"^(?:v1|v2|...)$"`
//! (values escaped as Go's `regexp.QuoteMeta` does), every root aggregation grouped `by (L)`
//! (`by (le, L)` under `histogram_quantile`) and every root `R op R` matched `on (L)`.
//! Why it is exact: an inner `E` maps each series to a series with the same `L` (or drops it),
//! and default matching pairs only series with equal label sets, so the series with `L=v` of
//! the fused inner expression are those of member `v`'s; a root then reduces each `L` group
//! separately, so group `v` is member `v`'s single series (or nothing when member `v`'s answer
//! is empty), and `on (L)` pairs the groups of the two sides as the single series of each side
//! pair alone. A series without `L` is the group of value `""`, as `L=""` selects it alone.

use promql_parser::label::{Labels, MatchOp, Matcher};
use promql_parser::parser::{
    self, BinModifier, Expr, LabelModifier, VectorMatchCardinality, VectorSelector,
};

/// Longest query analysed for fusion, bytes; longer ones are sent as they are.
pub const MAX_QUERY_BYTES: usize = 4096;

/// Deepest nesting of brackets analysed for fusion; deeper queries are sent as they are.
pub const MAX_NESTING: usize = 32;

/// Most operator characters (`+-*/%^<>=!`) and operator words (`and`, `or`, `unless`,
/// `atan2`) analysed for fusion: with [`MAX_NESTING`], this bounds the AST's depth (every
/// level of it is a bracket or an operator) before anything recursive runs on it.
pub const MAX_OPERATORS: usize = 128;

/// Why a query is not fused (the `reason` label of the unfusable-queries counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Longer than [`MAX_QUERY_BYTES`].
    TooLong,
    /// Nested deeper than [`MAX_NESTING`].
    TooDeep,
    /// Not parsable (the upstream will say why).
    Parse,
    /// The root is not an aggregation (a bare selector or function may yield many series).
    NoAggregation,
    /// An aggregation with `by`/`without`, or `histogram_quantile` over anything but
    /// `sum by (le)`.
    Grouped,
    /// An aggregation other than sum, avg, min, max, count (`topk`, `quantile`, ...).
    Aggregation,
    /// An aggregation inside the aggregated expression.
    NestedAggregation,
    /// A function that is not per-series (`label_replace`, `vector`, `absent`, `scalar`, ...).
    Function,
    /// `and`, `or`, `unless`.
    SetOperator,
    /// `on`, `ignoring`, `group_left`, `group_right`, `fill`.
    VectorMatching,
    /// A subquery.
    Subquery,
    /// No label with the same equality matcher in every selector.
    NoCommonLabel,
    /// The printed AST does not parse back to the same AST.
    Unprintable,
}

impl Reason {
    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::TooLong => "too_long",
            Self::TooDeep => "too_deep",
            Self::Parse => "parse_error",
            Self::NoAggregation => "no_aggregation",
            Self::Grouped => "grouped_aggregation",
            Self::Aggregation => "aggregation",
            Self::NestedAggregation => "nested_aggregation",
            Self::Function => "function",
            Self::SetOperator => "set_operator",
            Self::VectorMatching => "vector_matching",
            Self::Subquery => "subquery",
            Self::NoCommonLabel => "no_common_label",
            Self::Unprintable => "unprintable",
        }
    }
}

/// One way a query can be a member of a family: by label `label`, whose value it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The label `L`.
    pub label: String,
    /// The member's value of `L`.
    pub value: String,
    /// The query with every `L` value replaced by a placeholder, printed: members of one
    /// family have the same template.
    pub template: String,
}

/// A query that can be fused: its AST and the labels it could be fused by.
#[derive(Debug, Clone)]
pub struct Fusable {
    /// The parsed query.
    pub expr: Expr,
    /// One per label in every selector, sorted by label.
    pub candidates: Vec<Candidate>,
}

/// Aggregations that reduce each `by (L)` group exactly as the whole of a member.
const AGGREGATIONS: [&str; 5] = ["sum", "avg", "min", "max", "count"];

/// Per-series functions and their arguments: `m` a matrix selector, `v` an instant vector (the
/// member's expression), `s` a literal scalar.
const FUNCTIONS: &[(&str, &str)] = &[
    ("rate", "m"),
    ("irate", "m"),
    ("increase", "m"),
    ("delta", "m"),
    ("idelta", "m"),
    ("deriv", "m"),
    ("changes", "m"),
    ("resets", "m"),
    ("avg_over_time", "m"),
    ("min_over_time", "m"),
    ("max_over_time", "m"),
    ("sum_over_time", "m"),
    ("count_over_time", "m"),
    ("last_over_time", "m"),
    ("present_over_time", "m"),
    ("stddev_over_time", "m"),
    ("stdvar_over_time", "m"),
    ("quantile_over_time", "sm"),
    ("predict_linear", "ms"),
    ("holt_winters", "mss"),
    ("abs", "v"),
    ("ceil", "v"),
    ("floor", "v"),
    ("exp", "v"),
    ("ln", "v"),
    ("log2", "v"),
    ("log10", "v"),
    ("sqrt", "v"),
    ("sgn", "v"),
    ("round", "v"),
    ("round", "vs"),
    ("clamp", "vss"),
    ("clamp_min", "vs"),
    ("clamp_max", "vs"),
];

/// Arithmetic and comparison operators (per pair of series; `atan2` included).
fn is_arithmetic_or_comparison(op: &str) -> bool {
    matches!(
        op,
        "+" | "-" | "*" | "/" | "%" | "^" | "atan2" | "==" | "!=" | ">" | "<" | ">=" | "<="
    )
}

/// Analyses `query`: the AST and the labels it could be fused by, or why it cannot be.
pub fn analyse(query: &str) -> Result<Fusable, Reason> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(Reason::TooLong);
    }
    let (nesting, operators) = complexity(query);
    if nesting > MAX_NESTING || operators > MAX_OPERATORS {
        return Err(Reason::TooDeep);
    }
    let expr = parse(query).ok_or(Reason::Parse)?;
    root(&expr)?;
    let mut selectors = Vec::new();
    collect_selectors(&expr, &mut selectors);
    let candidates = common_labels(&selectors);
    if candidates.is_empty() {
        return Err(Reason::NoCommonLabel);
    }
    let mut out = Vec::with_capacity(candidates.len());
    for (label, value) in candidates {
        let mut template = expr.clone();
        set_label(&mut template, &label, &Placeholder);
        normalize(&mut template);
        let text = template.to_string();
        // The template names the family: it must say exactly what the AST is, so that two
        // members with one template are one query apart from the value.
        if parse(&text).as_ref() != Some(&template) {
            return Err(Reason::Unprintable);
        }
        out.push(Candidate {
            label,
            value,
            template: text,
        });
    }
    Ok(Fusable {
        expr,
        candidates: out,
    })
}

/// The deepest bracket nesting and the number of operators of `query`, outside string
/// literals; an over-estimate is fine (comments are counted).
fn complexity(query: &str) -> (usize, usize) {
    let bytes = query.as_bytes();
    let (mut depth, mut deepest, mut operators) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' | b'\'' | b'`' => {
                // Skip the literal (backslash escapes except in raw strings).
                i += 1;
                while i < bytes.len() && bytes[i] != b {
                    if bytes[i] == b'\\' && b != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'=' | b'!' => operators += 1,
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i + 1 < bytes.len()
                    && (bytes[i + 1].is_ascii_alphanumeric() || bytes[i + 1] == b'_')
                {
                    i += 1;
                }
                if matches!(&query[start..=i], "and" | "or" | "unless" | "atan2") {
                    operators += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    (deepest, operators)
}

/// The fused query of a family: `template` (any member's AST) with `label` matching every one
/// of `values` (at least two, distinct) and grouped by it.
pub fn fused_query(template: &Expr, label: &str, values: &[&str]) -> Result<String, Reason> {
    let alternatives: Vec<String> = values.iter().map(|v| quote_meta(v)).collect();
    let pattern = format!("^(?:{})$", alternatives.join("|"));
    let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|_| Reason::Unprintable)?;
    let mut fused = template.clone();
    set_label(
        &mut fused,
        label,
        &Regex {
            pattern: &pattern,
            regex: &regex,
        },
    );
    group_root(&mut fused, label);
    normalize(&mut fused);
    let text = fused.to_string();
    if parse(&text).as_ref() != Some(&fused) {
        return Err(Reason::Unprintable);
    }
    Ok(text)
}

/// `text` parsed, with every selector's matchers in the order the printer writes them (their
/// order means nothing), so that printing and parsing again gives the same AST.
fn parse(text: &str) -> Option<Expr> {
    let mut expr = parser::parse(text).ok()?;
    normalize(&mut expr);
    Some(expr)
}

fn normalize(e: &mut Expr) {
    fn sort(vs: &mut VectorSelector) {
        vs.matchers.matchers.sort_by_cached_key(|m| m.to_string());
    }
    match e {
        Expr::VectorSelector(vs) => sort(vs),
        Expr::MatrixSelector(m) => sort(&mut m.vs),
        Expr::Aggregate(a) => {
            if let Some(p) = &mut a.param {
                normalize(p);
            }
            normalize(&mut a.expr);
        }
        Expr::Unary(u) => normalize(&mut u.expr),
        Expr::Paren(p) => normalize(&mut p.expr),
        Expr::Subquery(s) => normalize(&mut s.expr),
        Expr::Binary(b) => {
            normalize(&mut b.lhs);
            normalize(&mut b.rhs);
        }
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| normalize(a)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// `text` with every regular-expression metacharacter escaped, as Go's `regexp.QuoteMeta` (the
/// RE2 syntax Prometheus and AMP use; the Rust `regex` crate reads it alike).
pub fn quote_meta(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shapes.

fn root(e: &Expr) -> Result<(), Reason> {
    match e {
        Expr::Paren(p) => root(&p.expr),
        Expr::Unary(u) => root(&u.expr),
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if !AGGREGATIONS.contains(&op.as_str()) || a.param.is_some() {
                return Err(Reason::Aggregation);
            }
            if !ungrouped(a.modifier.as_ref()) {
                return Err(Reason::Grouped);
            }
            inner(&a.expr)
        }
        Expr::Call(c) if c.func.name == "histogram_quantile" => {
            let [phi, buckets] = c.args.args.as_slice() else {
                return Err(Reason::Function);
            };
            if !scalar(phi) {
                return Err(Reason::Function);
            }
            let Expr::Aggregate(a) = unparen(buckets) else {
                return Err(Reason::NoAggregation);
            };
            if a.op.to_string() != "sum" || a.param.is_some() {
                return Err(Reason::Aggregation);
            }
            match &a.modifier {
                Some(LabelModifier::Include(ls)) if ls.labels == ["le"] => inner(&a.expr),
                _ => Err(Reason::Grouped),
            }
        }
        Expr::Call(c) => function_args(c, true),
        Expr::Binary(b) => {
            let op = b.op.to_string();
            if !is_arithmetic_or_comparison(&op) {
                return Err(Reason::SetOperator);
            }
            if !plain_matching(b.modifier.as_ref()) {
                return Err(Reason::VectorMatching);
            }
            match (scalar(&b.lhs), scalar(&b.rhs)) {
                (false, false) => root(&b.lhs).and_then(|()| root(&b.rhs)),
                (false, true) => root(&b.lhs),
                (true, false) => root(&b.rhs),
                (true, true) => Err(Reason::NoAggregation),
            }
        }
        Expr::Subquery(_) => Err(Reason::Subquery),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => Err(Reason::NoAggregation),
    }
}

fn inner(e: &Expr) -> Result<(), Reason> {
    match e {
        Expr::VectorSelector(vs) => selector(vs),
        Expr::Paren(p) => inner(&p.expr),
        Expr::Unary(u) => inner(&u.expr),
        Expr::Call(c) => function_args(c, false),
        Expr::Binary(b) => {
            let op = b.op.to_string();
            if !is_arithmetic_or_comparison(&op) {
                return Err(Reason::SetOperator);
            }
            if !plain_matching(b.modifier.as_ref())
                || b.modifier.as_ref().is_some_and(|m| m.matching.is_some())
            {
                return Err(Reason::VectorMatching);
            }
            match (scalar(&b.lhs), scalar(&b.rhs)) {
                (false, false) => inner(&b.lhs).and_then(|()| inner(&b.rhs)),
                (false, true) => inner(&b.lhs),
                (true, false) => inner(&b.rhs),
                (true, true) => Err(Reason::Function),
            }
        }
        Expr::Aggregate(_) => Err(Reason::NestedAggregation),
        Expr::Subquery(_) => Err(Reason::Subquery),
        Expr::MatrixSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_) => Err(Reason::Function),
    }
}

/// A call of a per-series function, above the aggregation (`at_root`) or under it.
fn function_args(c: &promql_parser::parser::Call, at_root: bool) -> Result<(), Reason> {
    let args = &c.args.args;
    let Some((_, kinds)) = FUNCTIONS
        .iter()
        .find(|(name, kinds)| *name == c.func.name && kinds.len() == args.len())
    else {
        return Err(Reason::Function);
    };
    for (kind, arg) in kinds.bytes().zip(args) {
        match kind {
            b'm' => {
                let Expr::MatrixSelector(m) = arg.as_ref() else {
                    return Err(Reason::Subquery);
                };
                // A range function of a selector is inner: not a root.
                if at_root {
                    return Err(Reason::NoAggregation);
                }
                selector(&m.vs)?;
            }
            b'v' if at_root => root(arg)?,
            b'v' => inner(arg)?,
            _ => {
                if !scalar(arg) {
                    return Err(Reason::Function);
                }
            }
        }
    }
    Ok(())
}

fn selector(vs: &VectorSelector) -> Result<(), Reason> {
    if vs.matchers.or_matchers.is_empty() {
        Ok(())
    } else {
        Err(Reason::Function)
    }
}

/// A literal number, possibly negated or in parentheses.
fn scalar(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => scalar(&p.expr),
        Expr::Unary(u) => scalar(&u.expr),
        _ => false,
    }
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

/// No `by`/`without` (or an empty `by ()`).
fn ungrouped(m: Option<&LabelModifier>) -> bool {
    match m {
        None => true,
        Some(LabelModifier::Include(ls)) => ls.is_empty(),
        Some(LabelModifier::Exclude(_)) => false,
    }
}

/// At most `bool` and an empty `on ()`/`ignoring ()`: one-to-one, no group modifiers, no fill.
fn plain_matching(m: Option<&BinModifier>) -> bool {
    let Some(m) = m else { return true };
    let matching_empty = match &m.matching {
        None => true,
        Some(LabelModifier::Include(ls) | LabelModifier::Exclude(ls)) => ls.is_empty(),
    };
    matching_empty
        && m.card == VectorMatchCardinality::OneToOne
        && m.fill_values.lhs.is_none()
        && m.fill_values.rhs.is_none()
}

// ---------------------------------------------------------------------------------------------
// Labels.

fn collect_selectors<'a>(e: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match e {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(m) => out.push(&m.vs),
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
            collect_selectors(&a.expr, out);
        }
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Subquery(s) => collect_selectors(&s.expr, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Labels matched by exactly one equality matcher, with one value, in every selector (and by
/// no other matcher); not the metric name nor `le`.
fn common_labels(selectors: &[&VectorSelector]) -> Vec<(String, String)> {
    let Some(first) = selectors.first() else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = first
        .matchers
        .matchers
        .iter()
        .filter(|m| m.op == MatchOp::Equal && m.name != "__name__" && m.name != "le")
        .map(|m| (m.name.clone(), m.value.clone()))
        .filter(|(name, value)| {
            selectors.iter().all(|vs| {
                let mut on_label = vs.matchers.matchers.iter().filter(|m| &m.name == name);
                matches!(
                    (on_label.next(), on_label.next()),
                    (Some(m), None) if m.op == MatchOp::Equal && &m.value == value
                )
            })
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// What `L`'s matchers become.
trait Replacement {
    fn matcher(&self, label: &str) -> Matcher;
}

/// The template's stand-in value (any fixed non-empty value does).
struct Placeholder;

impl Replacement for Placeholder {
    fn matcher(&self, label: &str) -> Matcher {
        Matcher::new(MatchOp::Equal, label, "_")
    }
}

struct Regex<'a> {
    pattern: &'a str,
    regex: &'a regex::Regex,
}

impl Replacement for Regex<'_> {
    fn matcher(&self, label: &str) -> Matcher {
        // As promql-parser builds it from `label=~"pattern"`, so the printed query parses
        // back to the same AST.
        Matcher::new(MatchOp::Re(self.regex.clone()), label, self.pattern)
    }
}

fn set_label(e: &mut Expr, label: &str, with: &dyn Replacement) {
    fn in_selector(vs: &mut VectorSelector, label: &str, with: &dyn Replacement) {
        for m in &mut vs.matchers.matchers {
            if m.name == label {
                *m = with.matcher(label);
            }
        }
    }
    match e {
        Expr::VectorSelector(vs) => in_selector(vs, label, with),
        Expr::MatrixSelector(m) => in_selector(&mut m.vs, label, with),
        Expr::Aggregate(a) => {
            if let Some(p) = &mut a.param {
                set_label(p, label, with);
            }
            set_label(&mut a.expr, label, with);
        }
        Expr::Unary(u) => set_label(&mut u.expr, label, with),
        Expr::Paren(p) => set_label(&mut p.expr, label, with),
        Expr::Subquery(s) => set_label(&mut s.expr, label, with),
        Expr::Binary(b) => {
            set_label(&mut b.lhs, label, with);
            set_label(&mut b.rhs, label, with);
        }
        Expr::Call(c) => c
            .args
            .args
            .iter_mut()
            .for_each(|a| set_label(a, label, with)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Groups every root aggregation by `label` and matches root vector/vector operations on it.
fn group_root(e: &mut Expr, label: &str) {
    match e {
        Expr::Paren(p) => group_root(&mut p.expr, label),
        Expr::Unary(u) => group_root(&mut u.expr, label),
        Expr::Aggregate(a) => {
            a.modifier = Some(LabelModifier::Include(Labels::new(vec![label])));
        }
        Expr::Call(c) if c.func.name == "histogram_quantile" => {
            if let Some(buckets) = c.args.args.get_mut(1) {
                let mut target = buckets.as_mut();
                while let Expr::Paren(p) = target {
                    target = p.expr.as_mut();
                }
                if let Expr::Aggregate(a) = target {
                    a.modifier = Some(LabelModifier::Include(Labels::new(vec!["le", label])));
                }
            }
        }
        Expr::Call(c) => {
            if let Some(first) = c.args.args.first_mut() {
                group_root(first, label);
            }
        }
        Expr::Binary(b) => {
            let (l, r) = (scalar(&b.lhs), scalar(&b.rhs));
            if !l {
                group_root(&mut b.lhs, label);
            }
            if !r {
                group_root(&mut b.rhs, label);
            }
            if !l && !r {
                let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
                b.modifier = Some(
                    BinModifier::default()
                        .with_matching(Some(LabelModifier::Include(Labels::new(vec![label]))))
                        .with_return_bool(return_bool),
                );
            }
        }
        Expr::Subquery(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
mod tests;
