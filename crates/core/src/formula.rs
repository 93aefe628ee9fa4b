//! KEDA `scalingModifiers.formula`: a small, safe expression language over trigger values.
//!
//! KEDA evaluates formulas with expr-lang; we support the subset that scaling formulas use:
//! numbers, trigger names, `+ - * / %`, comparisons, `&& || !`, `cond ? a : b`, `a ?? b`, and
//! `min(..) max(..) abs(x) ceil(x) floor(x)`. A failed trigger is `nil` inside the formula, so
//! `rps ?? 0` reads "rps, or 0 when its query failed"; arithmetic and comparisons on `nil` yield
//! `nil`. Parsing is bounded ([`MAX_FORMULA_LEN`], [`MAX_NODES`], [`MAX_DEPTH`]) and evaluation
//! is one pass over the tree, so a formula can neither blow the stack nor run long. Unknown
//! trigger names and syntax errors are parse errors (validation), never panics.

use std::fmt;

/// Longest accepted formula, bytes.
pub const MAX_FORMULA_LEN: usize = 1024;
/// Most syntax-tree nodes.
pub const MAX_NODES: usize = 256;
/// Deepest nesting.
pub const MAX_DEPTH: usize = 32;

/// Why a formula does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {position}")]
pub struct FormulaError {
    /// Byte offset in the formula.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// A value during evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A number.
    Num(f64),
    /// A boolean (from comparisons and `&& || !`).
    Bool(bool),
    /// No value: a failed trigger, or `nil`.
    Nil,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Coalesce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Min,
    Max,
    Abs,
    Ceil,
    Floor,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(Value),
    Var(usize),
    Neg(usize),
    Not(usize),
    Bin(BinOp, usize, usize),
    Cond(usize, usize, usize),
    Call(Func, Vec<usize>),
}

/// A parsed formula, ready to evaluate against trigger values.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    nodes: Vec<Node>,
    root: usize,
    referenced: Vec<usize>,
}

impl Formula {
    /// Parses `src`; `triggers` are the names a formula may refer to (their index is the
    /// position in the values passed to [`Formula::eval`]).
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
        let tokens = lex(src)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            nodes: Vec::new(),
            triggers,
            referenced: Vec::new(),
            src_len: src.len(),
        };
        let root = p.ternary(0)?;
        if let Some(t) = p.tokens.get(p.pos) {
            return Err(FormulaError {
                position: t.at,
                message: format!("unexpected {}", t.tok),
            });
        }
        let mut referenced = p.referenced;
        referenced.sort_unstable();
        referenced.dedup();
        Ok(Self {
            nodes: p.nodes,
            root,
            referenced,
        })
    }

    /// Indices of the triggers the formula refers to.
    pub fn referenced_triggers(&self) -> &[usize] {
        &self.referenced
    }

    /// Evaluates with `values[i]` the value of trigger `i` (`None` = failed, i.e. `nil`).
    /// The result must be a finite number.
    pub fn eval(&self, values: &[Option<f64>]) -> Result<f64, String> {
        match self.eval_node(self.root, values)? {
            Value::Num(n) if n.is_finite() => Ok(n),
            Value::Num(n) => Err(format!("formula evaluated to {n}")),
            Value::Bool(_) => Err("formula evaluated to a boolean, not a number".into()),
            Value::Nil => Err(
                "formula evaluated to nil (a trigger it needs has no value; use `name ?? default`)"
                    .into(),
            ),
        }
    }

    fn eval_node(&self, id: usize, values: &[Option<f64>]) -> Result<Value, String> {
        // Recursion depth is bounded by MAX_DEPTH at parse time.
        Ok(match &self.nodes[id] {
            Node::Lit(v) => *v,
            Node::Var(i) => values
                .get(*i)
                .copied()
                .flatten()
                .map_or(Value::Nil, Value::Num),
            Node::Neg(a) => match self.eval_node(*a, values)? {
                Value::Num(n) => Value::Num(-n),
                Value::Nil => Value::Nil,
                Value::Bool(_) => return Err("cannot negate a boolean".into()),
            },
            Node::Not(a) => match self.eval_node(*a, values)? {
                Value::Bool(b) => Value::Bool(!b),
                Value::Nil => Value::Nil,
                Value::Num(_) => return Err("`!` needs a boolean".into()),
            },
            Node::Cond(c, a, b) => match self.eval_node(*c, values)? {
                Value::Bool(true) => self.eval_node(*a, values)?,
                Value::Bool(false) => self.eval_node(*b, values)?,
                Value::Nil => Value::Nil,
                Value::Num(_) => return Err("the condition of `? :` must be a comparison".into()),
            },
            Node::Bin(BinOp::Coalesce, a, b) => match self.eval_node(*a, values)? {
                Value::Nil => self.eval_node(*b, values)?,
                v => v,
            },
            Node::Bin(op @ (BinOp::And | BinOp::Or), a, b) => {
                let l = self.eval_node(*a, values)?;
                match (op, l) {
                    (BinOp::And, Value::Bool(false)) => Value::Bool(false),
                    (BinOp::Or, Value::Bool(true)) => Value::Bool(true),
                    (_, Value::Num(_)) => return Err("`&&` and `||` need booleans".into()),
                    (_, l) => match (l, self.eval_node(*b, values)?) {
                        (_, Value::Num(_)) => return Err("`&&` and `||` need booleans".into()),
                        (Value::Nil, _) | (_, Value::Nil) => Value::Nil,
                        (_, r) => r,
                    },
                }
            }
            Node::Bin(op, a, b) => {
                let (l, r) = (self.eval_node(*a, values)?, self.eval_node(*b, values)?);
                binary(*op, l, r)?
            }
            Node::Call(f, args) => {
                let mut acc: Option<f64> = None;
                for a in args {
                    let n = match self.eval_node(*a, values)? {
                        Value::Num(n) => n,
                        Value::Nil => return Ok(Value::Nil),
                        Value::Bool(_) => return Err("functions take numbers".into()),
                    };
                    acc = Some(match (f, acc) {
                        (Func::Min, Some(x)) => x.min(n),
                        (Func::Max, Some(x)) => x.max(n),
                        (Func::Abs, _) => n.abs(),
                        (Func::Ceil, _) => n.ceil(),
                        (Func::Floor, _) => n.floor(),
                        (Func::Min | Func::Max, None) => n,
                    });
                }
                acc.map_or(Value::Nil, Value::Num)
            }
        })
    }
}

fn binary(op: BinOp, l: Value, r: Value) -> Result<Value, String> {
    use Value::{Bool, Nil, Num};
    Ok(match (op, l, r) {
        (BinOp::Eq, a, b) => Bool(a == b),
        (BinOp::Ne, a, b) => Bool(a != b),
        (_, Nil, _) | (_, _, Nil) => Nil,
        (_, Num(a), Num(b)) => match op {
            BinOp::Add => Num(a + b),
            BinOp::Sub => Num(a - b),
            BinOp::Mul => Num(a * b),
            BinOp::Div => Num(a / b),
            BinOp::Rem => Num(a % b),
            BinOp::Lt => Bool(a < b),
            BinOp::Le => Bool(a <= b),
            BinOp::Gt => Bool(a > b),
            BinOp::Ge => Bool(a >= b),
            BinOp::Eq | BinOp::Ne | BinOp::And | BinOp::Or | BinOp::Coalesce => {
                return Err("internal: operator handled elsewhere".into());
            }
        },
        _ => return Err("arithmetic and ordering need numbers".into()),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(&'static str),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Num(n) => write!(f, "number {n}"),
            Tok::Ident(s) => write!(f, "name `{s}`"),
            Tok::Op(o) => write!(f, "`{o}`"),
        }
    }
}

#[derive(Debug)]
struct Spanned {
    tok: Tok,
    at: usize,
}

const OPS: [&str; 23] = [
    "??", "&&", "||", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "<", ">", "!", "?", ":",
    "(", ")", ",", "and", "or", "not",
];

fn lex(src: &str) -> Result<Vec<Spanned>, FormulaError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'_')
            {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                i += 1;
                if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
                    i += 1;
                }
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text: String = src[start..i].chars().filter(|&c| c != '_').collect();
            let n: f64 = text.parse().map_err(|_| FormulaError {
                position: start,
                message: format!("bad number `{}`", &src[start..i]),
            })?;
            out.push(Spanned {
                tok: Tok::Num(n),
                at: start,
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.'))
            {
                // Trigger names may contain '-' and '.' (KEDA names are DNS-like); `a-b` with
                // spaces is subtraction, without spaces it is a name, as in KEDA formulas.
                if bytes[i] == b'-'
                    && !bytes
                        .get(i + 1)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    break;
                }
                i += 1;
            }
            let word = &src[start..i];
            let tok = match word {
                "and" => Tok::Op("&&"),
                "or" => Tok::Op("||"),
                "not" => Tok::Op("!"),
                _ => Tok::Ident(word.to_owned()),
            };
            out.push(Spanned { tok, at: start });
            continue;
        }
        let rest = &src[i..];
        match OPS
            .iter()
            .find(|op| rest.starts_with(**op) && !op.as_bytes()[0].is_ascii_alphabetic())
        {
            Some(op) => {
                out.push(Spanned {
                    tok: Tok::Op(op),
                    at: i,
                });
                i += op.len();
            }
            None => {
                let ch = rest.chars().next().unwrap_or('?');
                return Err(FormulaError {
                    position: i,
                    message: format!("unexpected character `{ch}`"),
                });
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Spanned>,
    pos: usize,
    nodes: Vec<Node>,
    triggers: &'a [&'a str],
    referenced: Vec<usize>,
    src_len: usize,
}

impl Parser<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, FormulaError> {
        let position = self.tokens.get(self.pos).map_or(self.src_len, |t| t.at);
        Err(FormulaError {
            position,
            message: message.into(),
        })
    }

    fn push(&mut self, n: Node) -> Result<usize, FormulaError> {
        if self.nodes.len() >= MAX_NODES {
            return self.err(format!("formula has more than {MAX_NODES} terms"));
        }
        self.nodes.push(n);
        Ok(self.nodes.len() - 1)
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.tokens.get(self.pos) {
            Some(Spanned {
                tok: Tok::Op(o), ..
            }) => Some(o),
            _ => None,
        }
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek_op() == Some(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), FormulaError> {
        if self.eat(op) {
            Ok(())
        } else {
            match self.tokens.get(self.pos) {
                Some(t) => self.err(format!("expected `{op}`, found {}", t.tok)),
                None => self.err(format!("expected `{op}` at end of formula")),
            }
        }
    }

    fn ternary(&mut self, depth: usize) -> Result<usize, FormulaError> {
        if depth > MAX_DEPTH {
            return self.err(format!("formula nests deeper than {MAX_DEPTH}"));
        }
        let c = self.binary_level(0, depth)?;
        if self.eat("?") {
            let a = self.ternary(depth + 1)?;
            self.expect(":")?;
            let b = self.ternary(depth + 1)?;
            return self.push(Node::Cond(c, a, b));
        }
        Ok(c)
    }

    fn binary_level(&mut self, level: usize, depth: usize) -> Result<usize, FormulaError> {
        const LEVELS: [&[(&str, BinOp)]; 7] = [
            &[("??", BinOp::Coalesce)],
            &[("||", BinOp::Or)],
            &[("&&", BinOp::And)],
            &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
            &[
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
        ];
        if level == LEVELS.len() {
            return self.unary(depth);
        }
        let mut left = self.binary_level(level + 1, depth)?;
        while let Some(op) = self.peek_op() {
            let Some(&(_, bin)) = LEVELS[level].iter().find(|(s, _)| *s == op) else {
                break;
            };
            self.pos += 1;
            let right = self.binary_level(level + 1, depth)?;
            left = self.push(Node::Bin(bin, left, right))?;
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<usize, FormulaError> {
        if depth > MAX_DEPTH {
            return self.err(format!("formula nests deeper than {MAX_DEPTH}"));
        }
        if self.eat("-") {
            let a = self.unary(depth + 1)?;
            return self.push(Node::Neg(a));
        }
        if self.eat("+") {
            return self.unary(depth + 1);
        }
        if self.eat("!") {
            let a = self.unary(depth + 1)?;
            return self.push(Node::Not(a));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<usize, FormulaError> {
        let Some(t) = self.tokens.get(self.pos) else {
            return self.err("formula ends where a value was expected");
        };
        let at = t.at;
        match t.tok.clone() {
            Tok::Num(n) => {
                self.pos += 1;
                self.push(Node::Lit(Value::Num(n)))
            }
            Tok::Op("(") => {
                self.pos += 1;
                let e = self.ternary(depth + 1)?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op(o) => self.err(format!("unexpected `{o}`")),
            Tok::Ident(name) => {
                self.pos += 1;
                if self.peek_op() == Some("(") {
                    return self.call(&name, at, depth);
                }
                match name.as_str() {
                    "true" => return self.push(Node::Lit(Value::Bool(true))),
                    "false" => return self.push(Node::Lit(Value::Bool(false))),
                    "nil" | "null" => return self.push(Node::Lit(Value::Nil)),
                    _ => {}
                }
                match self.triggers.iter().position(|t| *t == name) {
                    Some(i) => {
                        self.referenced.push(i);
                        self.push(Node::Var(i))
                    }
                    None => Err(FormulaError {
                        position: at,
                        message: format!(
                            "unknown trigger `{name}` (known: {})",
                            self.triggers.join(", ")
                        ),
                    }),
                }
            }
        }
    }

    fn call(&mut self, name: &str, at: usize, depth: usize) -> Result<usize, FormulaError> {
        let (f, arity) = match name {
            "min" => (Func::Min, None),
            "max" => (Func::Max, None),
            "abs" => (Func::Abs, Some(1)),
            "ceil" => (Func::Ceil, Some(1)),
            "floor" => (Func::Floor, Some(1)),
            _ => {
                return Err(FormulaError {
                    position: at,
                    message: format!(
                        "unknown function `{name}` (known: min, max, abs, ceil, floor)"
                    ),
                });
            }
        };
        self.expect("(")?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.ternary(depth + 1)?);
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        let ok = match arity {
            Some(n) => args.len() == n,
            None => !args.is_empty(),
        };
        if !ok {
            return Err(FormulaError {
                position: at,
                message: format!(
                    "`{name}` takes {} argument(s), got {}",
                    arity.map_or("1 or more".into(), |n: usize| n.to_string()),
                    args.len()
                ),
            });
        }
        self.push(Node::Call(f, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 3] = ["rps", "queue", "kafka-lag"];

    fn eval(src: &str, values: [Option<f64>; 3]) -> Result<f64, String> {
        Formula::parse(src, &NAMES)
            .map_err(|e| e.to_string())?
            .eval(&values)
    }

    #[test]
    fn evaluates_the_supported_operators() {
        let v = [Some(140.0), Some(20.0), Some(5.0)];
        let table: &[(&str, f64)] = &[
            ("(rps + queue) / 2", 80.0),
            ("rps - queue * 2", 100.0),
            ("rps % 50", 40.0),
            ("-queue + 1", -19.0),
            ("rps > 100 ? rps : 0", 140.0),
            ("rps < 100 ? rps : 0", 0.0),
            ("rps >= 140 && queue <= 20 ? 1 : 2", 1.0),
            ("rps == 140 || false ? 1 : 2", 1.0),
            ("!(rps != 140) ? 3 : 4", 3.0),
            ("min(rps, queue, 7)", 7.0),
            ("max(rps, queue)", 140.0),
            ("abs(queue - rps)", 120.0),
            ("ceil(rps / 3)", 47.0),
            ("floor(rps / 3)", 46.0),
            ("kafka-lag * 2", 10.0),
            ("kafka-lag - 1", 4.0),
            ("1_000 + 1e2 + .5", 1100.5),
            ("rps > 1 and not (queue > 100) ? 1 : 0", 1.0),
            ("true ? 1 : 0", 1.0),
        ];
        for (src, want) in table {
            assert_eq!(eval(src, v), Ok(*want), "{src}");
        }
    }

    #[test]
    fn failed_trigger_is_nil_and_coalesces_to_its_default() {
        let v = [None, Some(20.0), Some(5.0)];
        assert_eq!(eval("rps ?? 0", v), Ok(0.0));
        assert_eq!(eval("(rps ?? 0) + queue", v), Ok(20.0));
        assert_eq!(eval("rps * 2 ?? queue", v), Ok(20.0));
        assert_eq!(eval("max(rps, queue) ?? -1", v), Ok(-1.0));
        assert!(eval("rps + queue", v).unwrap_err().contains("nil"));
        assert!(eval("rps > 1 ? 1 : 0", v).unwrap_err().contains("nil"));
    }

    #[test]
    fn type_errors_and_non_finite_results_fail_evaluation() {
        let v = [Some(1.0), Some(0.0), Some(5.0)];
        assert!(eval("rps / queue", v).unwrap_err().contains("inf"));
        assert!(eval("rps > 0", v).unwrap_err().contains("boolean"));
        assert!(eval("rps ? 1 : 2", v).is_err());
        assert!(eval("true + 1", v).is_err());
        assert!(eval("-true", v).is_err());
        assert!(eval("!rps", v).is_err());
        assert!(eval("min(true)", v).is_err());
        assert!(eval("1 && true", v).is_err());
    }

    #[test]
    fn rejects_bad_formulas_with_a_position() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("rps +", "ends where a value"),
            ("rps + unknown", "unknown trigger `unknown`"),
            ("(rps", "expected `)`"),
            ("rps )", "unexpected `)`"),
            ("rps # 2", "unexpected character `#`"),
            ("sqrt(rps)", "unknown function `sqrt`"),
            ("abs(rps, queue)", "takes 1"),
            ("min()", "takes 1 or more"),
            ("rps ? 1", "expected `:`"),
            ("1..2", "bad number"),
        ];
        for (src, want) in table {
            let err = Formula::parse(src, &NAMES).unwrap_err();
            assert!(err.to_string().contains(want), "{src}: {err}");
        }
        let err = Formula::parse("rps + nope", &NAMES).unwrap_err();
        assert_eq!(err.position, 6);
    }

    #[test]
    fn bounds_length_size_and_depth() {
        let long = "1+".repeat(600) + "1";
        assert!(
            Formula::parse(&long, &NAMES)
                .unwrap_err()
                .message
                .contains("longer")
        );
        let many = "1+".repeat(300) + "1";
        assert!(
            Formula::parse(&many, &NAMES)
                .unwrap_err()
                .message
                .contains("terms")
        );
        let deep = "(".repeat(40) + "1" + &")".repeat(40);
        assert!(
            Formula::parse(&deep, &NAMES)
                .unwrap_err()
                .message
                .contains("deeper")
        );
        let negs = "-".repeat(100) + "1";
        assert!(
            Formula::parse(&negs, &NAMES)
                .unwrap_err()
                .message
                .contains("deeper")
        );
    }

    #[test]
    fn records_referenced_triggers() {
        let f = Formula::parse("queue + rps + queue", &NAMES).unwrap();
        assert_eq!(f.referenced_triggers(), &[0, 1]);
    }
}
