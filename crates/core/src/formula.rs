//! KEDA `scalingModifiers.formula`: expr-lang's expression language over trigger values.
//!
//! KEDA compiles formulas with expr-lang/expr; this module implements that language as far as
//! it concerns numbers, with expr-lang's semantics: integers and floats (`2` is an int, `2.0`
//! a float; `/` and `**`/`^` give floats, `%` needs ints), comparisons (chainable: `1 < x < 3`),
//! `&& || !` and `and or not`, `c ? a : b`, `if c { a } else { b }`, `??`, `let x = e; body`,
//! sequences `a; b`, arrays `[a, b]` with indexing (negative from the end), slices and `in`,
//! ranges `1..3`, the pipe `arr | sum()`, predicates over `#`/`#index`/`#acc` (`all any none one
//! filter map count sum find findIndex findLast findLastIndex reduce`), the number builtins
//! (`float int abs ceil floor round min max mean median len first last get`), `nil`, comments,
//! and `$env["name"]` for a trigger whose name is not an identifier. A failed trigger is `nil`.
//! `nil` does not propagate: like expr-lang, arithmetic, ordering, `!`, `&&` and conditions on
//! `nil` are errors; only `==`, `!=`, `??`, `in` and arrays accept it.
//!
//! Around the formula we do what KEDA does around its program: the result goes through
//! `float(...)` (a boolean, array or `nil` result is an error), except that a formula containing
//! `??` may yield `nil`, which [`Formula::eval`] returns as `Ok(None)`; and [`Formula::parse`]
//! validates by evaluating once with every trigger at -1, so unknown names, wrong arities, type
//! errors and runtime errors on that path are rejected up front.
//!
//! Why our own parser and not the `expr-lang` crate (jdx/expr.rs): that crate parses with pest
//! (recursive, with no nesting bound, so a deeply nested formula overflows the stack), evaluates
//! by unbounded tree walking (no step budget: `map(1..100000, 1..100000)` runs until memory is
//! gone), allocates a pest parse tree on every parse (we parse on every decision), and brings
//! pest, indexmap and log along for features formulas do not use (strings, maps, dates). Here
//! parsing is bounded by [`MAX_FORMULA_LEN`], [`MAX_NODES`] and [`MAX_DEPTH`], evaluation by
//! [`MAX_STEPS`] and [`MAX_ARRAY_LEN`], and nothing panics.

mod eval;
mod parse;
#[cfg(test)]
mod tests;

/// Longest accepted formula, bytes.
pub const MAX_FORMULA_LEN: usize = 1024;
/// Most syntax-tree nodes.
pub const MAX_NODES: usize = 256;
/// Deepest syntactic nesting (parentheses, operands of unary operators, calls, `let` bodies,
/// ternary branches, ...).
pub const MAX_DEPTH: usize = 32;
/// Most evaluation steps (one per syntax node visited and per array element built).
pub const MAX_STEPS: u32 = 100_000;
/// Longest array an evaluation may build (ranges, `map`, `filter`).
pub const MAX_ARRAY_LEN: usize = 10_000;

/// The functions a formula may call, for error messages.
const FUNCTIONS: &str = "float, int, abs, ceil, floor, round, min, max, mean, median, len, \
     first, last, get, all, any, none, one, filter, map, count, sum, find, findIndex, findLast, \
     findLastIndex, reduce";

/// Why a formula does not parse (or fails its validation run with every trigger at -1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {position}")]
pub struct FormulaError {
    /// Byte offset in the formula.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// Index of a node in [`Formula::nodes`].
type Id = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Un {
    Neg,
    Plus,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Coalesce,
    In,
    Range,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    Float,
    Int,
    Abs,
    Ceil,
    Floor,
    Round,
    Min,
    Max,
    Mean,
    Median,
    Len,
    First,
    Last,
    Get,
}

impl Builtin {
    /// Fewest and most arguments.
    fn arity(self) -> (usize, usize) {
        match self {
            Self::Min | Self::Max | Self::Mean | Self::Median => (1, usize::MAX),
            Self::Get => (2, 2),
            _ => (1, 1),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Int => "int",
            Self::Abs => "abs",
            Self::Ceil => "ceil",
            Self::Floor => "floor",
            Self::Round => "round",
            Self::Min => "min",
            Self::Max => "max",
            Self::Mean => "mean",
            Self::Median => "median",
            Self::Len => "len",
            Self::First => "first",
            Self::Last => "last",
            Self::Get => "get",
        }
    }
}

/// Builtins that take an array and a predicate evaluated per element with `#` bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pred {
    All,
    Any,
    None,
    One,
    Filter,
    Map,
    Count,
    Sum,
    Find,
    FindIndex,
    FindLast,
    FindLastIndex,
    Reduce,
}

impl Pred {
    fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Any => "any",
            Self::None => "none",
            Self::One => "one",
            Self::Filter => "filter",
            Self::Map => "map",
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Find => "find",
            Self::FindIndex => "findIndex",
            Self::FindLast => "findLast",
            Self::FindLastIndex => "findLastIndex",
            Self::Reduce => "reduce",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// Trigger `i`.
    Var(u32),
    /// A `let` variable, by slot.
    Local(u32),
    /// `#` of the predicate with this scope slot.
    Elem(u32),
    /// `#index`.
    Index(u32),
    /// `#acc` (reduce).
    Acc(u32),
    /// `[...]`: `lists[start..start + len]`.
    Array(u32, u32),
    Unary(Un, Id),
    Binary(Bin, Id, Id),
    Cond(Id, Id, Id),
    /// `let <slot> = value; body`.
    Let(u32, Id, Id),
    /// `a; b; c`: `lists[start..start + len]`.
    Seq(u32, u32),
    /// `a[i]`.
    Member(Id, Id),
    /// `a[i:j]`.
    Slice(Id, Option<Id>, Option<Id>),
    /// `f(args)`: `lists[start..start + len]`.
    Call(Builtin, u32, u32),
    Pred {
        f: Pred,
        slot: u32,
        array: Id,
        pred: Option<Id>,
        init: Option<Id>,
    },
}

/// A parsed formula, ready to evaluate against trigger values.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    nodes: Vec<Node>,
    /// Byte offset of each node, for error messages.
    pos: Vec<u32>,
    /// Children of arrays, sequences and calls.
    lists: Vec<Id>,
    root: Id,
    referenced: Vec<usize>,
    locals: u32,
    scopes: u32,
    /// KEDA's `??` rewrite applies: a `nil` result is a value, not an error.
    nil_ok: bool,
}

impl Formula {
    /// Parses `src`; `triggers` are the names a formula may refer to (their index is the
    /// position in the values passed to [`Formula::eval`]). Then validates it the way KEDA
    /// does: one evaluation with every trigger at -1 must succeed.
    pub fn parse(src: &str, triggers: &[&str]) -> Result<Self, FormulaError> {
        if src.trim().is_empty() {
            return Err(FormulaError {
                position: 0,
                message: "formula is empty".into(),
            });
        }
        if src.len() > MAX_FORMULA_LEN {
            return Err(FormulaError {
                position: MAX_FORMULA_LEN,
                message: format!("formula is longer than {MAX_FORMULA_LEN} bytes"),
            });
        }
        let tokens = parse::lex(src)?;
        let p = parse::Parser::new(tokens, triggers).parse()?;
        let formula = Self {
            nodes: p.nodes,
            pos: p.pos,
            lists: p.lists,
            root: p.root,
            referenced: p.referenced,
            locals: p.locals,
            scopes: p.scopes,
            nil_ok: src.contains("??"),
        };
        // KEDA's dummy value; on the stack for any policy within MAX_TRIGGERS.
        let stack = [Some(-1.0); crate::MAX_TRIGGERS];
        let mut heap = Vec::new();
        let probe: &[Option<f64>] = if triggers.len() <= stack.len() {
            &stack[..triggers.len()]
        } else {
            heap.resize(triggers.len(), Some(-1.0));
            &heap
        };
        if let Err(e) = formula.run(probe) {
            return Err(FormulaError {
                position: e.at as usize,
                message: format!("{} (validation, with every trigger at -1)", e.message),
            });
        }
        Ok(formula)
    }

    /// The most evaluation steps one [`Formula::eval`] may take, known without evaluating: a
    /// formula without ranges and predicates (`map`, `filter`, `sum(arr, ...)`, ...) visits each
    /// node at most once; with them, only [`MAX_STEPS`] bounds it.
    pub fn max_eval_steps(&self) -> u32 {
        let loops = self
            .nodes
            .iter()
            .any(|n| matches!(n, Node::Pred { .. } | Node::Binary(Bin::Range, ..)));
        if loops {
            MAX_STEPS
        } else {
            u32::try_from(self.nodes.len()).unwrap_or(MAX_STEPS)
        }
    }

    /// Indices of the triggers the formula refers to.
    pub fn referenced_triggers(&self) -> &[usize] {
        &self.referenced
    }

    /// Evaluates with `values[i]` the value of trigger `i` (`None` = failed, i.e. `nil`).
    /// `Ok(None)` is a `nil` result, possible only when the formula contains `??` (KEDA then
    /// composes `fallback.replicas × target`); otherwise the result is a finite number or an
    /// error (a runtime error, a non-number, or a non-finite number such as `1 / 0`).
    pub fn eval(&self, values: &[Option<f64>]) -> Result<Option<f64>, String> {
        self.run(values)
            .map_err(|e| format!("{} at byte {}", e.message, e.at))
    }

    fn run(&self, values: &[Option<f64>]) -> Result<Option<f64>, eval::Failure> {
        let v = eval::Evaluator::new(self, values).run()?;
        let at = self.pos[self.root as usize];
        let n = match v {
            eval::Value::Nil if self.nil_ok => return Ok(None),
            eval::Value::Int(n) => n as f64,
            eval::Value::Float(n) => n,
            other => {
                return Err(eval::Failure {
                    at,
                    message: format!(
                        "the formula must give a number, it gave {} (float({}) fails)",
                        other.describe(),
                        other.type_name()
                    ),
                });
            }
        };
        if !n.is_finite() {
            return Err(eval::Failure {
                at,
                message: format!("the formula gave {n}, not a finite number"),
            });
        }
        Ok(Some(n))
    }
}
