//! Evaluation: a walk over the syntax tree with a step budget.
//!
//! Recursion follows the tree, whose height is bounded by [`MAX_NODES`]; arrays hold values
//! whose nesting is bounded the same way. Each node visited and each array element built costs
//! one step; past [`MAX_STEPS`] evaluation stops with an error.

use std::cmp::Ordering;
use std::rc::Rc;

use super::{Bin, Builtin, Formula, Id, MAX_ARRAY_LEN, MAX_DEPTH, MAX_STEPS, Node, Pred, Un};

/// A value during evaluation: expr-lang's values, restricted to what numbers need.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Array(Rc<[Value]>),
}

impl Value {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Array(_) => "array",
        }
    }

    /// For messages: `nil`, `true`, `array of 3`, ...
    pub(super) fn describe(&self) -> String {
        match self {
            Value::Nil => "nil".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Float(n) => n.to_string(),
            Value::Array(a) => format!("an array of {}", a.len()),
        }
    }

    fn num(&self) -> Option<f64> {
        match *self {
            Value::Int(n) => Some(n as f64),
            Value::Float(n) => Some(n),
            _ => None,
        }
    }
}

/// An evaluation error at a byte offset.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) at: u32,
    pub(super) message: String,
}

type R<T> = Result<T, Failure>;

#[derive(Clone)]
struct Scope {
    elem: Value,
    index: i64,
    acc: Value,
}

pub(super) struct Evaluator<'f, 'v> {
    f: &'f Formula,
    values: &'v [Option<f64>],
    locals: Vec<Value>,
    scopes: Vec<Scope>,
    steps: u32,
}

impl<'f, 'v> Evaluator<'f, 'v> {
    pub(super) fn new(f: &'f Formula, values: &'v [Option<f64>]) -> Self {
        let empty = Scope {
            elem: Value::Nil,
            index: 0,
            acc: Value::Nil,
        };
        Self {
            f,
            values,
            locals: vec![Value::Nil; f.locals as usize],
            scopes: vec![empty; f.scopes as usize],
            steps: 0,
        }
    }

    pub(super) fn run(mut self) -> R<Value> {
        self.ev(self.f.root)
    }

    fn fail<T>(&self, id: Id, message: impl Into<String>) -> R<T> {
        Err(Failure {
            at: self.f.pos[id as usize],
            message: message.into(),
        })
    }

    fn step(&mut self, id: Id, n: usize) -> R<()> {
        self.steps = self.steps.saturating_add(n.min(u32::MAX as usize) as u32);
        if self.steps > MAX_STEPS {
            return self.fail(
                id,
                format!("the formula takes more than {MAX_STEPS} evaluation steps"),
            );
        }
        Ok(())
    }

    fn list(&self, start: u32, len: u32) -> &'f [Id] {
        &self.f.lists[start as usize..(start + len) as usize]
    }

    fn array(&mut self, id: Id, items: Vec<Value>) -> R<Value> {
        if items.len() > MAX_ARRAY_LEN {
            return self.fail(
                id,
                format!("the formula builds an array longer than {MAX_ARRAY_LEN}"),
            );
        }
        Ok(Value::Array(items.into()))
    }

    /// One node. Kept small: the tree is walked recursively and every arm that needs locals
    /// lives in its own function, so the frame repeated per level of the tree stays small
    /// even in debug builds.
    fn ev(&mut self, id: Id) -> R<Value> {
        self.step(id, 1)?;
        let f = self.f;
        match &f.nodes[id as usize] {
            Node::Int(n) => Ok(Value::Int(*n)),
            Node::Float(n) => Ok(Value::Float(*n)),
            Node::Bool(b) => Ok(Value::Bool(*b)),
            Node::Nil => Ok(Value::Nil),
            Node::Var(i) => Ok(match self.values.get(*i as usize).copied().flatten() {
                Some(v) => Value::Float(v),
                None => Value::Nil,
            }),
            Node::Local(slot) => Ok(self.locals[*slot as usize].clone()),
            Node::Elem(slot) => Ok(self.scopes[*slot as usize].elem.clone()),
            Node::Index(slot) => Ok(Value::Int(self.scopes[*slot as usize].index)),
            Node::Acc(slot) => Ok(self.scopes[*slot as usize].acc.clone()),
            node => self.compound(id, node),
        }
    }

    /// Every arm only dispatches (no locals, no `?`), so this frame stays small too.
    #[inline(never)]
    fn compound(&mut self, id: Id, node: &'f Node) -> R<Value> {
        match node {
            Node::Array(start, len) => self.ev_array(id, *start, *len),
            Node::Seq(start, len) => self.ev_seq(*start, *len),
            Node::Let(slot, value, body) => self.ev_let(*slot, *value, *body),
            Node::Unary(op, a) => self.ev_unary(id, *op, *a),
            Node::Cond(c, a, b) => self.ev_cond(*c, *a, *b),
            Node::Binary(op, a, b) => self.ev_binary(id, *op, *a, *b),
            Node::Member(a, i) => self.ev_member(id, *a, *i),
            Node::Slice(a, from, to) => self.ev_slice(id, *a, *from, *to),
            Node::Call(b, start, len) => self.ev_call(id, *b, *start, *len),
            Node::Pred {
                f: p,
                slot,
                array,
                pred,
                init,
            } => self.predicate(id, *p, *slot, *array, *pred, *init),
            Node::Int(_)
            | Node::Float(_)
            | Node::Bool(_)
            | Node::Nil
            | Node::Var(_)
            | Node::Local(_)
            | Node::Elem(_)
            | Node::Index(_)
            | Node::Acc(_) => self.ev(id),
        }
    }

    fn ev_seq(&mut self, start: u32, len: u32) -> R<Value> {
        let mut last = Value::Nil;
        for &c in self.list(start, len) {
            last = self.ev(c)?;
        }
        Ok(last)
    }

    fn ev_let(&mut self, slot: u32, value: Id, body: Id) -> R<Value> {
        let v = self.ev(value)?;
        self.locals[slot as usize] = v;
        self.ev(body)
    }

    fn ev_unary(&mut self, id: Id, op: Un, a: Id) -> R<Value> {
        let v = self.ev(a)?;
        self.unary(id, op, v)
    }

    fn ev_member(&mut self, id: Id, a: Id, i: Id) -> R<Value> {
        let arr = self.ev(a)?;
        let i = self.ev(i)?;
        self.member(id, &arr, &i)
    }

    fn ev_slice(&mut self, id: Id, a: Id, from: Option<Id>, to: Option<Id>) -> R<Value> {
        let arr = self.ev(a)?;
        let from = from.map(|n| self.ev(n)).transpose()?;
        let to = to.map(|n| self.ev(n)).transpose()?;
        self.slice(id, arr, from, to)
    }

    fn ev_call(&mut self, id: Id, b: Builtin, start: u32, len: u32) -> R<Value> {
        let args = self.list(start, len);
        let mut vals = Vec::with_capacity(args.len());
        for &a in args {
            vals.push(self.ev(a)?);
        }
        self.call(id, b, vals)
    }

    fn ev_array(&mut self, id: Id, start: u32, len: u32) -> R<Value> {
        let mut items = Vec::with_capacity(len as usize);
        for &c in self.list(start, len) {
            items.push(self.ev(c)?);
        }
        self.array(id, items)
    }

    fn ev_cond(&mut self, c: Id, a: Id, b: Id) -> R<Value> {
        match self.ev(c)? {
            Value::Bool(true) => self.ev(a),
            Value::Bool(false) => self.ev(b),
            v => self.fail(
                c,
                format!(
                    "a condition must be a boolean, got {} ({})",
                    v.type_name(),
                    v.describe()
                ),
            ),
        }
    }

    fn ev_binary(&mut self, id: Id, op: Bin, a: Id, b: Id) -> R<Value> {
        match op {
            Bin::And | Bin::Or => {
                let want = op == Bin::Or;
                match self.ev(a)? {
                    Value::Bool(l) if l == want => Ok(Value::Bool(l)),
                    Value::Bool(_) => match self.ev(b)? {
                        Value::Bool(r) => Ok(Value::Bool(r)),
                        v => self.logic_error(b, op, &v),
                    },
                    v => self.logic_error(a, op, &v),
                }
            }
            Bin::Coalesce => match self.ev(a)? {
                Value::Nil => self.ev(b),
                v => Ok(v),
            },
            _ => self.ev_arith(id, op, a, b),
        }
    }

    fn ev_arith(&mut self, id: Id, op: Bin, a: Id, b: Id) -> R<Value> {
        let l = self.ev(a)?;
        let r = self.ev(b)?;
        self.binary(id, op, l, r)
    }

    fn logic_error<T>(&self, id: Id, op: Bin, v: &Value) -> R<T> {
        let op = if op == Bin::And { "&&" } else { "||" };
        self.fail(
            id,
            format!(
                "`{op}` needs booleans, got {} ({})",
                v.type_name(),
                v.describe()
            ),
        )
    }

    fn unary(&self, id: Id, op: Un, v: Value) -> R<Value> {
        Ok(match (op, v) {
            (Un::Neg, Value::Int(n)) => Value::Int(n.wrapping_neg()),
            (Un::Neg, Value::Float(n)) => Value::Float(-n),
            (Un::Plus, v @ (Value::Int(_) | Value::Float(_))) => v,
            (Un::Not, Value::Bool(b)) => Value::Bool(!b),
            (op, v) => {
                let sym = match op {
                    Un::Neg => "-",
                    Un::Plus => "+",
                    Un::Not => "!",
                };
                return self.fail(
                    id,
                    format!(
                        "invalid operation: {sym}{} ({})",
                        v.type_name(),
                        v.describe()
                    ),
                );
            }
        })
    }

    fn binary(&mut self, id: Id, op: Bin, l: Value, r: Value) -> R<Value> {
        use Value::{Bool, Float, Int};
        Ok(match (op, &l, &r) {
            (Bin::Eq, _, _) => Bool(self.equal(id, &l, &r)?),
            (Bin::Ne, _, _) => Bool(!self.equal(id, &l, &r)?),
            (Bin::In, _, Value::Array(items)) => {
                let mut found = false;
                for x in items.iter() {
                    if self.equal(id, x, &l)? {
                        found = true;
                        break;
                    }
                }
                Bool(found)
            }
            (Bin::In, _, Value::Nil) => Bool(false),
            (Bin::Add, Int(a), Int(b)) => Int(a.wrapping_add(*b)),
            (Bin::Sub, Int(a), Int(b)) => Int(a.wrapping_sub(*b)),
            (Bin::Mul, Int(a), Int(b)) => Int(a.wrapping_mul(*b)),
            (Bin::Rem, Int(_), Int(0)) => {
                return self.fail(id, "integer divide by zero (`%` by 0)");
            }
            (Bin::Rem, Int(a), Int(b)) => Int(a.wrapping_rem(*b)),
            (Bin::Range, Int(a), Int(b)) => {
                let len = b.saturating_sub(*a).saturating_add(1).max(0);
                if len as u64 > MAX_ARRAY_LEN as u64 {
                    return self.fail(
                        id,
                        format!("the range {a}..{b} is longer than {MAX_ARRAY_LEN}"),
                    );
                }
                self.step(id, len as usize)?;
                let items: Vec<Value> = (*a..=*b).map(Int).collect();
                Value::Array(items.into())
            }
            (Bin::Lt | Bin::Le | Bin::Gt | Bin::Ge, Int(a), Int(b)) => Bool(ordered(op, a.cmp(b))),
            _ => match (l.num(), r.num()) {
                (Some(a), Some(b)) => match op {
                    Bin::Add => Float(a + b),
                    Bin::Sub => Float(a - b),
                    Bin::Mul => Float(a * b),
                    Bin::Div => Float(a / b),
                    Bin::Pow => Float(a.powf(b)),
                    Bin::Lt => Bool(a < b),
                    Bin::Le => Bool(a <= b),
                    Bin::Gt => Bool(a > b),
                    Bin::Ge => Bool(a >= b),
                    Bin::Rem => {
                        return self.fail(
                            id,
                            format!(
                                "invalid operation: {} % {} (`%` needs integers; use int(x) % n)",
                                l.type_name(),
                                r.type_name()
                            ),
                        );
                    }
                    Bin::Range => {
                        return self.fail(
                            id,
                            format!(
                                "invalid operation: {}..{} (a range needs integers; use int(x))",
                                l.type_name(),
                                r.type_name()
                            ),
                        );
                    }
                    _ => return self.op_error(id, op, &l, &r),
                },
                _ => return self.op_error(id, op, &l, &r),
            },
        })
    }

    /// `==`, charging one step per value compared (arrays can be large and nested).
    fn equal(&mut self, id: Id, a: &Value, b: &Value) -> R<bool> {
        let mut budget = MAX_STEPS.saturating_sub(self.steps);
        match equal(a, b, 0, &mut budget) {
            Some(eq) => {
                self.steps = MAX_STEPS - budget;
                Ok(eq)
            }
            None => self.step(id, usize::MAX).map(|()| false),
        }
    }

    fn op_error<T>(&self, id: Id, op: Bin, l: &Value, r: &Value) -> R<T> {
        let sym = match op {
            Bin::Add => "+",
            Bin::Sub => "-",
            Bin::Mul => "*",
            Bin::Div => "/",
            Bin::Rem => "%",
            Bin::Pow => "**",
            Bin::Lt => "<",
            Bin::Le => "<=",
            Bin::Gt => ">",
            Bin::Ge => ">=",
            Bin::In => "in",
            Bin::Range => "..",
            Bin::Eq | Bin::Ne | Bin::And | Bin::Or | Bin::Coalesce => "?",
        };
        let hint = if matches!(l, Value::Nil) || matches!(r, Value::Nil) {
            " (a failed trigger is nil; give it a default with `name ?? 0`)"
        } else {
            ""
        };
        self.fail(
            id,
            format!(
                "invalid operation: {} {sym} {}{hint}",
                l.type_name(),
                r.type_name()
            ),
        )
    }

    fn index(&self, id: Id, len: usize, i: &Value, what: &str) -> R<Option<usize>> {
        let Value::Int(i) = *i else {
            return self.fail(
                id,
                format!(
                    "{what} must be an integer, got {} (use int(x))",
                    i.type_name()
                ),
            );
        };
        let len = len as i64;
        let j = if i < 0 { len.wrapping_add(i) } else { i };
        Ok((0..len).contains(&j).then_some(j as usize))
    }

    fn member(&self, id: Id, arr: &Value, i: &Value) -> R<Value> {
        let Value::Array(items) = arr else {
            return self.fail(
                id,
                format!("cannot index {} ({})", arr.type_name(), arr.describe()),
            );
        };
        match self.index(id, items.len(), i, "an array index")? {
            Some(j) => Ok(items[j].clone()),
            None => self.fail(
                id,
                format!(
                    "index out of range: {} (array length is {})",
                    i.describe(),
                    items.len()
                ),
            ),
        }
    }

    fn slice(&mut self, id: Id, arr: Value, from: Option<Value>, to: Option<Value>) -> R<Value> {
        let Value::Array(items) = arr else {
            return self.fail(id, format!("cannot slice {}", arr.type_name()));
        };
        let len = items.len() as i64;
        let bound = |v: Option<Value>, default: i64| -> R<i64> {
            match v {
                None => Ok(default),
                Some(Value::Int(n)) => {
                    let n = if n < 0 { len.saturating_add(n) } else { n };
                    Ok(n.clamp(0, len))
                }
                Some(v) => self.fail(
                    id,
                    format!("a slice bound must be an integer, got {}", v.type_name()),
                ),
            }
        };
        let b = bound(to, len)?;
        let a = bound(from, 0)?.min(b);
        self.step(id, (b - a) as usize)?;
        Ok(Value::Array(items[a as usize..b as usize].into()))
    }

    fn call(&mut self, id: Id, b: Builtin, args: Vec<Value>) -> R<Value> {
        use Value::{Float, Int};
        let name = b.name();
        let bad = |v: &Value| format!("invalid argument for {name} (type {})", v.type_name());
        Ok(match b {
            Builtin::Float => match args[0] {
                Int(n) => Float(n as f64),
                Float(n) => Float(n),
                ref v => {
                    return self.fail(id, format!("invalid operation: float({})", v.type_name()));
                }
            },
            Builtin::Int => match args[0] {
                Int(n) => Int(n),
                // Go's int(f) is undefined outside i64 and for NaN; we refuse those.
                Float(n) if n.is_finite() && n.trunc().abs() < 9.223_372_036_854_775e18 => {
                    Int(n.trunc() as i64)
                }
                Float(n) => return self.fail(id, format!("int({n}) is out of range")),
                ref v => {
                    return self.fail(id, format!("invalid operation: int({})", v.type_name()));
                }
            },
            Builtin::Abs => match args[0] {
                Int(n) => Int(n.wrapping_abs()),
                Float(n) => Float(n.abs()),
                ref v => return self.fail(id, bad(v)),
            },
            Builtin::Ceil | Builtin::Floor | Builtin::Round => match args[0] {
                Int(n) => Float(n as f64),
                Float(n) => Float(match b {
                    Builtin::Ceil => n.ceil(),
                    Builtin::Floor => n.floor(),
                    _ => n.round(),
                }),
                ref v => return self.fail(id, bad(v)),
            },
            Builtin::Min | Builtin::Max => {
                // One argument that is neither a number nor an array comes back as it is
                // (so `min(failed_trigger) ?? 0` works as in expr-lang).
                if let [v @ (Value::Nil | Value::Bool(_))] = &args[..] {
                    return Ok(v.clone());
                }
                let want = if b == Builtin::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                let mut best: Option<Value> = None;
                for a in &args {
                    self.extreme(id, name, a, want, &mut best, 0)?;
                }
                best.unwrap_or(Value::Nil)
            }
            Builtin::Mean | Builtin::Median => {
                let mut nums = Vec::new();
                for a in &args {
                    self.numbers(id, name, a, &mut nums, 0)?;
                }
                if nums.is_empty() {
                    Float(0.0)
                } else if b == Builtin::Mean {
                    Float(nums.iter().sum::<f64>() / nums.len() as f64)
                } else {
                    nums.sort_by(f64::total_cmp);
                    let n = nums.len();
                    Float(if n % 2 == 1 {
                        nums[n / 2]
                    } else {
                        (nums[n / 2 - 1] + nums[n / 2]) / 2.0
                    })
                }
            }
            Builtin::Len => match &args[0] {
                Value::Array(a) => Int(a.len() as i64),
                v => return self.fail(id, bad(v)),
            },
            Builtin::First | Builtin::Last => match &args[0] {
                Value::Array(a) => {
                    let v = if b == Builtin::First {
                        a.first()
                    } else {
                        a.last()
                    };
                    v.cloned().unwrap_or(Value::Nil)
                }
                v => return self.fail(id, bad(v)),
            },
            Builtin::Get => match &args[0] {
                Value::Array(a) => match self.index(id, a.len(), &args[1], "get's index")? {
                    Some(j) => a[j].clone(),
                    None => Value::Nil,
                },
                Value::Nil => Value::Nil,
                v => return self.fail(id, bad(v)),
            },
        })
    }

    /// min/max over numbers and (nested) arrays of numbers; keeps the winner's int/float type.
    fn extreme(
        &mut self,
        id: Id,
        name: &str,
        v: &Value,
        want: Ordering,
        best: &mut Option<Value>,
        depth: usize,
    ) -> R<()> {
        match v {
            Value::Int(_) | Value::Float(_) => {
                let better = match best {
                    None => true,
                    Some(b) => compare(v, b) == Some(want),
                };
                if better {
                    *best = Some(v.clone());
                }
            }
            Value::Array(items) if depth < MAX_DEPTH => {
                self.step(id, items.len())?;
                for x in items.iter() {
                    self.extreme(id, name, x, want, best, depth + 1)?;
                }
            }
            v => {
                return self.fail(
                    id,
                    format!("invalid argument for {name} (type {})", v.type_name()),
                );
            }
        }
        Ok(())
    }

    fn numbers(
        &mut self,
        id: Id,
        name: &str,
        v: &Value,
        out: &mut Vec<f64>,
        depth: usize,
    ) -> R<()> {
        match v {
            Value::Int(n) => out.push(*n as f64),
            Value::Float(n) => out.push(*n),
            Value::Array(items) if depth < MAX_DEPTH => {
                self.step(id, items.len())?;
                for x in items.iter() {
                    self.numbers(id, name, x, out, depth + 1)?;
                }
            }
            v => {
                return self.fail(
                    id,
                    format!("invalid argument for {name} (type {})", v.type_name()),
                );
            }
        }
        Ok(())
    }

    fn predicate(
        &mut self,
        id: Id,
        p: Pred,
        slot: u32,
        array: Id,
        pred: Option<Id>,
        init: Option<Id>,
    ) -> R<Value> {
        let items = match self.ev(array)? {
            Value::Array(items) => items,
            v => {
                return self.fail(
                    array,
                    format!(
                        "{} takes an array, got {} ({})",
                        p.name(),
                        v.type_name(),
                        v.describe()
                    ),
                );
            }
        };
        let s = slot as usize;
        let mut start = 0;
        match (p, init) {
            (Pred::Reduce, Some(init)) => self.scopes[s].acc = self.ev(init)?,
            (Pred::Reduce, None) => match items.first() {
                Some(first) => {
                    self.scopes[s].acc = first.clone();
                    start = 1;
                }
                None => return self.fail(id, "reduce of an empty array with no initial value"),
            },
            _ => {}
        }
        let reverse = matches!(p, Pred::FindLast | Pred::FindLastIndex);
        let mut count = 0i64;
        let mut acc = Value::Int(0);
        let mut kept = Vec::new();
        let n = items.len();
        for k in start..n {
            let i = if reverse { n - 1 - k } else { k };
            let elem = &items[i];
            self.scopes[s].elem = elem.clone();
            self.scopes[s].index = i as i64;
            let out = match pred {
                Some(pr) => self.ev(pr)?,
                None => {
                    self.step(id, 1)?;
                    elem.clone()
                }
            };
            let truth = |this: &Self| match out {
                Value::Bool(b) => Ok(b),
                ref v => this.fail(
                    pred.unwrap_or(id),
                    format!(
                        "the predicate of {} must give a boolean, got {} ({})",
                        p.name(),
                        v.type_name(),
                        v.describe()
                    ),
                ),
            };
            match p {
                Pred::All if !truth(self)? => return Ok(Value::Bool(false)),
                Pred::Any if truth(self)? => return Ok(Value::Bool(true)),
                Pred::None if truth(self)? => return Ok(Value::Bool(false)),
                Pred::One | Pred::Count if truth(self)? => count += 1,
                Pred::Filter if truth(self)? => kept.push(elem.clone()),
                Pred::Find | Pred::FindLast if truth(self)? => return Ok(elem.clone()),
                Pred::FindIndex | Pred::FindLastIndex if truth(self)? => {
                    return Ok(Value::Int(i as i64));
                }
                Pred::Map => kept.push(out),
                Pred::Sum => acc = self.binary(id, Bin::Add, out, acc)?,
                Pred::Reduce => self.scopes[s].acc = out,
                _ => {}
            }
        }
        Ok(match p {
            Pred::All | Pred::None => Value::Bool(true),
            Pred::Any => Value::Bool(false),
            Pred::One => Value::Bool(count == 1),
            Pred::Count => Value::Int(count),
            Pred::Filter | Pred::Map => self.array(id, kept)?,
            Pred::Find | Pred::FindLast | Pred::FindIndex | Pred::FindLastIndex => Value::Nil,
            Pred::Sum => acc,
            Pred::Reduce => std::mem::replace(&mut self.scopes[s].acc, Value::Nil),
        })
    }
}

fn ordered(op: Bin, o: Ordering) -> bool {
    match op {
        Bin::Lt => o == Ordering::Less,
        Bin::Le => o != Ordering::Greater,
        Bin::Gt => o == Ordering::Greater,
        _ => o != Ordering::Less,
    }
}

/// Numeric order (ints exactly, otherwise as floats); `None` for NaN or non-numbers.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        _ => a.num()?.partial_cmp(&b.num()?),
    }
}

/// expr-lang's `==`: numbers by value across int and float, `nil == nil`, booleans, and arrays
/// element by element with the same types (Go's deep equality: `[1] == [1.0]` is false).
/// `None` when `budget` (one per value compared) runs out.
fn equal(a: &Value, b: &Value, depth: usize, budget: &mut u32) -> Option<bool> {
    *budget = budget.checked_sub(1)?;
    Some(match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => a.num() == b.num(),
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            if depth >= MAX_DEPTH || x.len() != y.len() {
                return Some(false);
            }
            for (p, q) in x.iter().zip(y.iter()) {
                if std::mem::discriminant(p) != std::mem::discriminant(q)
                    || !equal(p, q, depth + 1, budget)?
                {
                    return Some(false);
                }
            }
            true
        }
        _ => false,
    })
}
