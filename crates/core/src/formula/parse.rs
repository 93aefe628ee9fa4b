//! Lexer and parser: source text to the flat syntax tree in [`super::Node`].
//!
//! Precedence climbing with an explicit nesting counter: every recursive step passes `depth + 1`
//! and the first step past [`MAX_DEPTH`] is an error, so no input can exhaust the stack. Binary
//! chains of one precedence (`a + b + c`) loop instead of recursing.

use super::{Bin, Builtin, FormulaError, Id, MAX_DEPTH, MAX_NODES, Node, Pred, Un};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Tok<'a> {
    Int(i64),
    Float(f64),
    Ident(&'a str),
    /// A quoted string; only `$env["name"]` uses one.
    Str(&'a str),
    /// `#`, `#index`, `#acc`: the name after `#` ("" for the element itself).
    Pointer(&'a str),
    Op(&'static str),
    Eof,
}

impl std::fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Int(n) => write!(f, "number {n}"),
            Tok::Float(n) => write!(f, "number {n}"),
            Tok::Ident(s) => write!(f, "name `{s}`"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::Pointer(s) => write!(f, "`#{s}`"),
            Tok::Op(o) => write!(f, "`{o}`"),
            Tok::Eof => f.write_str("end of formula"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Token<'a> {
    pub(super) tok: Tok<'a>,
    pub(super) at: u32,
}

fn fail<T>(at: usize, message: impl Into<String>) -> Result<T, FormulaError> {
    Err(FormulaError {
        position: at,
        message: message.into(),
    })
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Punctuation, longest first so `**` wins over `*`.
const PUNCT: [&str; 31] = [
    "**", "==", "!=", "<=", ">=", "&&", "||", "??", "..", "+", "-", "*", "/", "%", "^", "<", ">",
    "!", "?", ":", "(", ")", "[", "]", "{", "}", ",", ";", ".", "=", "|",
];

pub(super) fn lex(src: &str) -> Result<Vec<Token<'_>>, FormulaError> {
    let bytes = src.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 2 + 1);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let at = i as u32;
        // Comments: `// to end of line` and `/* ... */`.
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            match src[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => return fail(i, "comment `/*` is never closed"),
            }
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (tok, end) = number(src, i)?;
            out.push(Token { tok, at });
            i = end;
            continue;
        }
        if c == b'"' || c == b'\'' {
            let Some(len) = src[i + 1..].find(c as char) else {
                return fail(i, "string is never closed");
            };
            let s = &src[i + 1..i + 1 + len];
            if s.contains('\\') {
                return fail(i, "escape sequences in strings are not supported");
            }
            out.push(Token {
                tok: Tok::Str(s),
                at,
            });
            i += len + 2;
            continue;
        }
        if c == b'#' {
            let start = i + 1;
            let end = src[start..]
                .char_indices()
                .find(|&(_, ch)| !is_ident_continue(ch))
                .map_or(src.len(), |(n, _)| start + n);
            out.push(Token {
                tok: Tok::Pointer(&src[start..end]),
                at,
            });
            i = end;
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('\0');
        if is_ident_start(ch) {
            let end = src[i..]
                .char_indices()
                .find(|&(_, ch)| !is_ident_continue(ch))
                .map_or(src.len(), |(n, _)| i + n);
            let word = &src[i..end];
            let tok = match word {
                "and" => Tok::Op("&&"),
                "or" => Tok::Op("||"),
                "not" => Tok::Op("not"),
                "in" => Tok::Op("in"),
                "let" => Tok::Op("let"),
                "if" => Tok::Op("if"),
                "else" => Tok::Op("else"),
                _ => Tok::Ident(word),
            };
            out.push(Token { tok, at });
            i = end;
            continue;
        }
        match PUNCT.iter().find(|p| src[i..].starts_with(**p)) {
            Some(p) => {
                out.push(Token {
                    tok: Tok::Op(p),
                    at,
                });
                i += p.len();
            }
            None => return fail(i, format!("unexpected character `{ch}`")),
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        at: src.len() as u32,
    });
    Ok(out)
}

/// An integer (`42`, `1_000`, `0x2A`, `0o52`, `0b101010`) or a float (`0.5`, `.5`, `1e3`, `1.`).
fn number(src: &str, start: usize) -> Result<(Tok<'_>, usize), FormulaError> {
    let bytes = src.as_bytes();
    let mut i = start;
    let radix = match (bytes[i], bytes.get(i + 1).map(u8::to_ascii_lowercase)) {
        (b'0', Some(b'x')) => 16,
        (b'0', Some(b'o')) => 8,
        (b'0', Some(b'b')) => 2,
        _ => 10,
    };
    let mut float = false;
    if radix != 10 {
        i += 2;
        while i < bytes.len() && (bytes[i].is_ascii_hexdigit() || bytes[i] == b'_') {
            i += 1;
        }
    } else {
        let digits = |i: &mut usize| {
            while *i < bytes.len() && (bytes[*i].is_ascii_digit() || bytes[*i] == b'_') {
                *i += 1;
            }
        };
        digits(&mut i);
        // `1..3` is a range, not the float `1.` followed by `.3`.
        if bytes.get(i) == Some(&b'.') && bytes.get(i + 1) != Some(&b'.') {
            float = true;
            i += 1;
            digits(&mut i);
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            float = true;
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            digits(&mut i);
        }
    }
    let text = &src[start..i];
    if src[i..].chars().next().is_some_and(is_ident_continue) {
        let end = src[i..]
            .char_indices()
            .find(|&(_, ch)| !is_ident_continue(ch))
            .map_or(src.len(), |(n, _)| i + n);
        return fail(start, format!("bad number `{}`", &src[start..end]));
    }
    let clean: std::borrow::Cow<'_, str> = if text.contains('_') {
        text.replace('_', "").into()
    } else {
        text.into()
    };
    let bad = || FormulaError {
        position: start,
        message: format!("bad number `{text}`"),
    };
    if float {
        let n: f64 = clean.parse().map_err(|_| bad())?;
        if !n.is_finite() {
            return fail(start, format!("number `{text}` is too large"));
        }
        Ok((Tok::Float(n), i))
    } else {
        let digits = if radix == 10 { &clean[..] } else { &clean[2..] };
        match i64::from_str_radix(digits, radix) {
            Ok(n) => Ok((Tok::Int(n), i)),
            Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) => fail(
                start,
                format!("integer `{text}` is too large (write it as a float, e.g. `{text}.0`)"),
            ),
            Err(_) => Err(bad()),
        }
    }
}

/// Binding power of a binary operator token (expr-lang's table; only `**`/`^` associate right).
fn binary_op(op: &str) -> Option<(u16, Bin)> {
    Some(match op {
        "||" => (10, Bin::Or),
        "&&" => (15, Bin::And),
        "==" => (20, Bin::Eq),
        "!=" => (20, Bin::Ne),
        "<" => (20, Bin::Lt),
        ">" => (20, Bin::Gt),
        "<=" => (20, Bin::Le),
        ">=" => (20, Bin::Ge),
        "in" => (20, Bin::In),
        ".." => (25, Bin::Range),
        "+" => (30, Bin::Add),
        "-" => (30, Bin::Sub),
        "*" => (60, Bin::Mul),
        "/" => (60, Bin::Div),
        "%" => (60, Bin::Rem),
        "**" | "^" => (100, Bin::Pow),
        "??" => (500, Bin::Coalesce),
        _ => return None,
    })
}

const NOT_PREC: u16 = 50;
const NEG_PREC: u16 = 90;

/// What the parser produces.
pub(super) struct Parsed {
    pub(super) nodes: Vec<Node>,
    pub(super) pos: Vec<u32>,
    pub(super) lists: Vec<Id>,
    pub(super) root: Id,
    pub(super) referenced: Vec<usize>,
    pub(super) locals: u32,
    pub(super) scopes: u32,
}

pub(super) struct Parser<'a, 't> {
    toks: Vec<Token<'a>>,
    i: usize,
    triggers: &'t [&'t str],
    out: Parsed,
    /// `let` names in scope, innermost last, with their slot.
    lets: Vec<(&'a str, u32)>,
    /// Enclosing predicates, innermost last: (scope slot, is `reduce`).
    preds: Vec<(u32, bool)>,
}

impl<'a, 't> Parser<'a, 't> {
    pub(super) fn new(toks: Vec<Token<'a>>, triggers: &'t [&'t str]) -> Self {
        Self {
            toks,
            i: 0,
            triggers,
            out: Parsed {
                nodes: Vec::with_capacity(16),
                pos: Vec::with_capacity(16),
                lists: Vec::new(),
                root: 0,
                referenced: Vec::new(),
                locals: 0,
                scopes: 0,
            },
            lets: Vec::new(),
            preds: Vec::new(),
        }
    }

    pub(super) fn parse(mut self) -> Result<Parsed, FormulaError> {
        let root = self.sequence(0)?;
        if self.peek() != Tok::Eof {
            return self.err_here(format!("unexpected {}", self.peek()));
        }
        self.out.root = root;
        self.out.referenced.sort_unstable();
        self.out.referenced.dedup();
        Ok(self.out)
    }

    fn peek(&self) -> Tok<'a> {
        self.toks[self.i].tok
    }

    fn peek2(&self) -> Tok<'a> {
        self.toks.get(self.i + 1).map_or(Tok::Eof, |t| t.tok)
    }

    fn at(&self) -> u32 {
        self.toks[self.i].at
    }

    fn bump(&mut self) -> Token<'a> {
        let t = self.toks[self.i];
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        t
    }

    fn is(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if o == op)
    }

    fn eat(&mut self, op: &str) -> bool {
        let yes = self.is(op);
        if yes {
            self.i += 1;
        }
        yes
    }

    fn err_here<T>(&self, message: impl Into<String>) -> Result<T, FormulaError> {
        fail(self.at() as usize, message)
    }

    fn expect(&mut self, op: &str) -> Result<(), FormulaError> {
        if self.eat(op) {
            Ok(())
        } else {
            self.err_here(format!("expected `{op}`, found {}", self.peek()))
        }
    }

    fn push(&mut self, n: Node, at: u32) -> Result<Id, FormulaError> {
        if self.out.nodes.len() >= MAX_NODES {
            return fail(
                at as usize,
                format!("formula has more than {MAX_NODES} terms"),
            );
        }
        self.out.nodes.push(n);
        self.out.pos.push(at);
        Ok((self.out.nodes.len() - 1) as Id)
    }

    fn list(&mut self, items: &[Id]) -> (u32, u32) {
        let start = self.out.lists.len() as u32;
        self.out.lists.extend_from_slice(items);
        (start, items.len() as u32)
    }

    fn enter(&self, depth: usize) -> Result<usize, FormulaError> {
        if depth >= MAX_DEPTH {
            return self.err_here(format!("formula nests deeper than {MAX_DEPTH} levels"));
        }
        Ok(depth + 1)
    }

    /// `a; b; c` (the value of the last), as at the top, in parentheses and in `{ }`.
    fn sequence(&mut self, depth: usize) -> Result<Id, FormulaError> {
        let at = self.at();
        let first = self.expr(0, depth)?;
        if !self.is(";") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat(";") {
            if self.peek() == Tok::Eof {
                break;
            }
            items.push(self.expr(0, depth)?);
        }
        let (start, len) = self.list(&items);
        self.push(Node::Seq(start, len), at)
    }

    fn expr(&mut self, min: u16, depth: usize) -> Result<Id, FormulaError> {
        let depth = self.enter(depth)?;
        if min == 0 && self.is("let") {
            return self.let_binding(depth);
        }
        if min == 0 && self.is("if") {
            return self.if_else(depth);
        }
        let mut left = self.unary(depth)?;
        let mut prev_coalesce = false;
        loop {
            let at = self.at();
            if min == 0 && self.is("|") {
                // The pipe: `a | f(b)` is `f(a, b)`.
                self.bump();
                let Tok::Ident(name) = self.peek() else {
                    return self.err_here(format!(
                        "expected a function after `|`, found {}",
                        self.peek()
                    ));
                };
                let name_at = self.at();
                self.bump();
                left = self.call(name, name_at, Some(left), depth)?;
                prev_coalesce = false;
                continue;
            }
            let (op_tok, negate) = match self.peek() {
                Tok::Op("not") if self.peek2() == Tok::Op("in") => ("in", true),
                Tok::Op(o) => (o, false),
                _ => break,
            };
            let Some((prec, op)) = binary_op(op_tok) else {
                break;
            };
            if prec < min {
                break;
            }
            if prev_coalesce && op != Bin::Coalesce {
                return self.err_here(format!(
                    "`??` and `{op_tok}` cannot be mixed without parentheses; wrap one side in ( )"
                ));
            }
            self.bump();
            if negate {
                self.bump();
            }
            if matches!(op, Bin::Lt | Bin::Gt | Bin::Le | Bin::Ge) {
                left = self.comparison_chain(left, op, at, prec, depth)?;
            } else {
                let right_min = if op == Bin::Pow { prec } else { prec + 1 };
                let right = self.expr(right_min, depth)?;
                left = self.push(Node::Binary(op, left, right), at)?;
                if negate {
                    left = self.push(Node::Unary(Un::Not, left), at)?;
                }
            }
            prev_coalesce = op == Bin::Coalesce;
        }
        if min == 0 {
            left = self.ternary(left, depth)?;
        }
        Ok(left)
    }

    /// `a < b <= c` means `a < b && b <= c`.
    fn comparison_chain(
        &mut self,
        left: Id,
        first: Bin,
        at: u32,
        prec: u16,
        depth: usize,
    ) -> Result<Id, FormulaError> {
        let (mut op, mut at, mut left) = (first, at, left);
        let mut chain: Option<Id> = None;
        loop {
            let right = self.expr(prec + 1, depth)?;
            let cmp = self.push(Node::Binary(op, left, right), at)?;
            chain = Some(match chain {
                None => cmp,
                Some(c) => self.push(Node::Binary(Bin::And, c, cmp), at)?,
            });
            left = right;
            at = self.at();
            op = match self.peek() {
                Tok::Op("<") => Bin::Lt,
                Tok::Op(">") => Bin::Gt,
                Tok::Op("<=") => Bin::Le,
                Tok::Op(">=") => Bin::Ge,
                _ => break,
            };
            self.bump();
        }
        Ok(chain.unwrap_or(left))
    }

    fn ternary(&mut self, mut cond: Id, depth: usize) -> Result<Id, FormulaError> {
        while self.is("?") {
            let at = self.at();
            self.bump();
            let (yes, no) = if self.eat(":") {
                // `a ?: b` is `a ? a : b`.
                (cond, self.expr(0, depth)?)
            } else {
                let yes = self.expr(0, depth)?;
                self.expect(":")?;
                (yes, self.expr(0, depth)?)
            };
            cond = self.push(Node::Cond(cond, yes, no), at)?;
        }
        Ok(cond)
    }

    fn let_binding(&mut self, depth: usize) -> Result<Id, FormulaError> {
        let at = self.at();
        self.bump();
        let Tok::Ident(name) = self.peek() else {
            return self.err_here(format!(
                "expected a variable name after `let`, found {}",
                self.peek()
            ));
        };
        self.bump();
        self.expect("=")?;
        let value = self.expr(0, depth)?;
        self.expect(";")?;
        let slot = self.out.locals;
        self.out.locals += 1;
        self.lets.push((name, slot));
        let body = self.sequence(depth);
        self.lets.pop();
        let body = body?;
        self.push(Node::Let(slot, value, body), at)
    }

    fn if_else(&mut self, depth: usize) -> Result<Id, FormulaError> {
        let at = self.at();
        self.bump();
        let cond = self.expr(0, depth)?;
        self.expect("{")?;
        let yes = self.sequence(depth)?;
        self.expect("}")?;
        self.expect("else")?;
        let no = if self.is("if") {
            let depth = self.enter(depth)?;
            self.if_else(depth)?
        } else {
            self.expect("{")?;
            let no = self.sequence(depth)?;
            self.expect("}")?;
            no
        };
        self.push(Node::Cond(cond, yes, no), at)
    }

    fn unary(&mut self, depth: usize) -> Result<Id, FormulaError> {
        let at = self.at();
        let op = match self.peek() {
            Tok::Op("-") => Some((Un::Neg, NEG_PREC)),
            Tok::Op("+") => Some((Un::Plus, NEG_PREC)),
            Tok::Op("!" | "not") => Some((Un::Not, NOT_PREC)),
            _ => None,
        };
        if let Some((op, prec)) = op {
            self.bump();
            let operand = self.expr(prec, depth)?;
            let node = self.push(Node::Unary(op, operand), at)?;
            return self.postfix(node, depth);
        }
        let node = self.primary(depth)?;
        self.postfix(node, depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Id, FormulaError> {
        let at = self.at();
        match self.bump().tok {
            Tok::Int(n) => self.push(Node::Int(n), at),
            Tok::Float(n) => self.push(Node::Float(n), at),
            Tok::Op("(") => {
                let e = self.sequence(depth)?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op("[") => self.array(at, depth),
            Tok::Op("{") => fail(at as usize, "maps are not supported in formulas"),
            Tok::Str(_) => fail(
                at as usize,
                "strings are not supported in formulas (only as `$env[\"trigger name\"]`)",
            ),
            Tok::Pointer(name) => self.pointer(name, at),
            Tok::Ident(name) => {
                if self.is("(") {
                    return self.call(name, at, None, depth);
                }
                match name {
                    "true" => self.push(Node::Bool(true), at),
                    "false" => self.push(Node::Bool(false), at),
                    "nil" => self.push(Node::Nil, at),
                    "$env" => self.env(at),
                    _ => self.name(name, at),
                }
            }
            Tok::Eof => fail(at as usize, "formula ends where a value was expected"),
            t => fail(at as usize, format!("unexpected {t}")),
        }
    }

    fn name(&mut self, name: &str, at: u32) -> Result<Id, FormulaError> {
        if let Some(&(_, slot)) = self.lets.iter().rev().find(|(n, _)| *n == name) {
            return self.push(Node::Local(slot), at);
        }
        self.trigger(name, at)
    }

    fn trigger(&mut self, name: &str, at: u32) -> Result<Id, FormulaError> {
        match self.triggers.iter().position(|t| *t == name) {
            Some(i) => {
                self.out.referenced.push(i);
                self.push(Node::Var(i as u32), at)
            }
            None => fail(
                at as usize,
                format!(
                    "unknown name `{name}` (triggers: {}; a trigger whose name is not an identifier is written $env[\"its-name\"])",
                    self.triggers.join(", ")
                ),
            ),
        }
    }

    /// `$env["name"]` and `$env.name`: a trigger by name, for names such as `kafka-lag`.
    fn env(&mut self, at: u32) -> Result<Id, FormulaError> {
        if self.eat("[") {
            let key_at = self.at();
            let Tok::Str(key) = self.bump().tok else {
                return fail(key_at as usize, "`$env[...]` takes a quoted trigger name");
            };
            self.expect("]")?;
            return self.trigger(key, key_at);
        }
        if self.eat(".") {
            let key_at = self.at();
            if let Tok::Ident(key) = self.bump().tok {
                return self.trigger(key, key_at);
            }
            return fail(key_at as usize, "expected a trigger name after `$env.`");
        }
        fail(
            at as usize,
            "`$env` must be indexed: $env[\"trigger name\"]",
        )
    }

    fn pointer(&mut self, name: &str, at: u32) -> Result<Id, FormulaError> {
        let Some(&(slot, is_reduce)) = self.preds.last() else {
            return fail(
                at as usize,
                format!("`#{name}` is only valid inside a predicate, e.g. count(arr, {{# > 1}})"),
            );
        };
        match name {
            "" => self.push(Node::Elem(slot), at),
            "index" => self.push(Node::Index(slot), at),
            "acc" if is_reduce => self.push(Node::Acc(slot), at),
            _ => fail(
                at as usize,
                format!("unknown `#{name}` (a predicate has `#` and `#index`; reduce also `#acc`)"),
            ),
        }
    }

    fn array(&mut self, at: u32, depth: usize) -> Result<Id, FormulaError> {
        let mut items = Vec::new();
        while !self.is("]") {
            if !items.is_empty() {
                self.expect(",")?;
                if self.is("]") {
                    break;
                }
            }
            items.push(self.expr(0, depth)?);
        }
        self.expect("]")?;
        let (start, len) = self.list(&items);
        self.push(Node::Array(start, len), at)
    }

    /// Indexing `a[i]` and slicing `a[i:j]` after a value.
    fn postfix(&mut self, mut node: Id, depth: usize) -> Result<Id, FormulaError> {
        loop {
            let at = self.at();
            if self.eat("[") {
                let depth = self.enter(depth)?;
                let from = if self.is(":") {
                    None
                } else {
                    Some(self.expr(0, depth)?)
                };
                if self.eat(":") {
                    let to = if self.is("]") {
                        None
                    } else {
                        Some(self.expr(0, depth)?)
                    };
                    self.expect("]")?;
                    node = self.push(Node::Slice(node, from, to), at)?;
                } else {
                    self.expect("]")?;
                    let index = from.unwrap_or(node);
                    node = self.push(Node::Member(node, index), at)?;
                }
            } else {
                return Ok(node);
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        at: u32,
        piped: Option<Id>,
        depth: usize,
    ) -> Result<Id, FormulaError> {
        let depth = self.enter(depth)?;
        if let Some(p) = pred_fn(name) {
            return self.predicate_call(p, name, at, piped, depth);
        }
        let Some(f) = builtin(name) else {
            return fail(
                at as usize,
                format!(
                    "unknown function `{name}` (formulas have: {})",
                    super::FUNCTIONS
                ),
            );
        };
        self.expect("(")?;
        let mut args: Vec<Id> = piped.into_iter().collect();
        let own = args.len();
        while !self.is(")") {
            if args.len() > own {
                self.expect(",")?;
                if self.is(")") {
                    break;
                }
            }
            args.push(self.expr(0, depth)?);
        }
        self.expect(")")?;
        let (lo, hi) = f.arity();
        if args.len() < lo || args.len() > hi {
            let want = match (lo, hi) {
                (l, h) if l == h => format!("{l}"),
                (l, usize::MAX) => format!("at least {l}"),
                (l, h) => format!("{l} to {h}"),
            };
            return fail(
                at as usize,
                format!("`{name}` takes {want} argument(s), got {}", args.len()),
            );
        }
        let (start, len) = self.list(&args);
        self.push(Node::Call(f, start, len), at)
    }

    fn predicate_call(
        &mut self,
        f: Pred,
        name: &str,
        at: u32,
        piped: Option<Id>,
        depth: usize,
    ) -> Result<Id, FormulaError> {
        self.expect("(")?;
        let array = match piped {
            Some(a) => a,
            None => self.expr(0, depth)?,
        };
        let optional = matches!(f, Pred::Count | Pred::Sum);
        let needs_comma = piped.is_none();
        if optional
            && (self.is(")") || (needs_comma && self.is(",") && self.peek2() == Tok::Op(")")))
        {
            self.eat(",");
            self.expect(")")?;
            let slot = self.new_scope();
            return self.push(
                Node::Pred {
                    f,
                    slot,
                    array,
                    pred: None,
                    init: None,
                },
                at,
            );
        }
        if needs_comma {
            if !self.is(",") {
                return self.err_here(format!(
                    "`{name}` takes an array and a predicate, e.g. {name}(arr, {{# > 1}})"
                ));
            }
            self.bump();
        }
        let slot = self.new_scope();
        self.preds.push((slot, f == Pred::Reduce));
        let pred = self.predicate(depth);
        self.preds.pop();
        let pred = pred?;
        let mut init = None;
        if f == Pred::Reduce && self.eat(",") && !self.is(")") {
            init = Some(self.expr(0, depth)?);
        }
        self.eat(",");
        self.expect(")")?;
        self.push(
            Node::Pred {
                f,
                slot,
                array,
                pred: Some(pred),
                init,
            },
            at,
        )
    }

    fn new_scope(&mut self) -> u32 {
        self.out.scopes += 1;
        self.out.scopes - 1
    }

    /// `{ expr; ... }` or a bare expression.
    fn predicate(&mut self, depth: usize) -> Result<Id, FormulaError> {
        if self.eat("{") {
            let e = self.sequence(depth)?;
            self.expect("}")?;
            Ok(e)
        } else {
            let e = self.expr(0, depth)?;
            if self.is(";") {
                return self.err_here("wrap a predicate with `;` in braces: { ...; ... }");
            }
            Ok(e)
        }
    }
}

fn pred_fn(name: &str) -> Option<Pred> {
    Some(match name {
        "all" => Pred::All,
        "any" => Pred::Any,
        "none" => Pred::None,
        "one" => Pred::One,
        "filter" => Pred::Filter,
        "map" => Pred::Map,
        "count" => Pred::Count,
        "sum" => Pred::Sum,
        "find" => Pred::Find,
        "findIndex" => Pred::FindIndex,
        "findLast" => Pred::FindLast,
        "findLastIndex" => Pred::FindLastIndex,
        "reduce" => Pred::Reduce,
        _ => return None,
    })
}

fn builtin(name: &str) -> Option<Builtin> {
    Some(match name {
        "float" => Builtin::Float,
        "int" => Builtin::Int,
        "abs" => Builtin::Abs,
        "ceil" => Builtin::Ceil,
        "floor" => Builtin::Floor,
        "round" => Builtin::Round,
        "min" => Builtin::Min,
        "max" => Builtin::Max,
        "mean" => Builtin::Mean,
        "median" => Builtin::Median,
        "len" => Builtin::Len,
        "first" => Builtin::First,
        "last" => Builtin::Last,
        "get" => Builtin::Get,
        _ => return None,
    })
}
