//! The formula language, construct by construct, written from expr-lang's language definition,
//! plus KEDA's documented examples and the bounds.

use super::eval::{Evaluator, Value};
use super::*;

const NAMES: [&str; 4] = ["rps", "queue", "lag", "kafka-lag"];
/// rps = 140, queue = 20, lag failed (nil), kafka-lag = 5.
const VALUES: [Option<f64>; 4] = [Some(140.0), Some(20.0), None, Some(5.0)];

/// Parses without the validation run and evaluates to the raw value, rendered as text:
/// `int 3`, `float 2.5`, `true`, `nil`, `[int 1, nil]`, or `error: <message>`.
fn value(src: &str) -> String {
    let parsed = parse::lex(src).and_then(|t| parse::Parser::new(t, &NAMES).parse());
    let p = match parsed {
        Ok(p) => p,
        Err(e) => return format!("parse error: {e}"),
    };
    let f = Formula {
        nodes: p.nodes,
        pos: p.pos,
        lists: p.lists,
        root: p.root,
        referenced: p.referenced,
        locals: p.locals,
        scopes: p.scopes,
        nil_ok: src.contains("??"),
    };
    match Evaluator::new(&f, &VALUES).run() {
        Ok(v) => render(&v),
        Err(e) => format!("error: {}", e.message),
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => format!("int {n}"),
        Value::Float(n) => format!("float {n}"),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", inner.join(", "))
        }
    }
}

/// `(formula, expected)`: the expected rendering, or `error: ...`/`parse error: ...` followed by
/// a fragment the message must contain.
fn check(table: &[(&str, &str)]) {
    let mut wrong = Vec::new();
    for (src, want) in table {
        let got = value(src);
        let ok = if let Some(fragment) = want.strip_prefix("error: ") {
            got.starts_with("error: ") && got.contains(fragment)
        } else if let Some(fragment) = want.strip_prefix("parse error: ") {
            got.starts_with("parse error: ") && got.contains(fragment)
        } else {
            got == *want
        };
        if !ok {
            wrong.push(format!("{src:>40}  want {want}  got {got}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn literals() {
    check(&[
        ("42", "int 42"),
        ("0x2A", "int 42"),
        ("0o52", "int 42"),
        ("0b101010", "int 42"),
        ("1_000", "int 1000"),
        ("0.5", "float 0.5"),
        (".5", "float 0.5"),
        ("1e3", "float 1000"),
        ("2.", "float 2"),
        ("true", "true"),
        ("false", "false"),
        ("nil", "nil"),
        ("1 /* one */ + 2 // and a comment", "int 3"),
    ]);
}

#[test]
fn arithmetic_keeps_ints_and_floats_apart_as_expr_lang_does() {
    check(&[
        ("1 + 2", "int 3"),
        ("1 + 2.5", "float 3.5"),
        ("7 / 2", "float 3.5"),
        ("6 / 3", "float 2"),
        ("7 % 3", "int 1"),
        ("-7 % 3", "int -1"),
        ("7 % 0", "error: divide by zero"),
        ("7.0 % 2", "error: `%` needs integers"),
        ("rps % 2", "error: `%` needs integers"),
        ("int(rps) % 3", "int 2"),
        ("2 ** 3", "float 8"),
        ("2 ^ 3", "float 8"),
        ("2 ** -1", "float 0.5"),
        ("1 / 0", "float inf"),
        ("-rps", "float -140"),
        ("+queue", "float 20"),
        ("- - 1", "int 1"),
        ("9223372036854775807 + 1", "int -9223372036854775808"),
        ("true + 1", "error: invalid operation: bool + int"),
        ("-true", "error: invalid operation: -bool"),
    ]);
}

#[test]
fn precedence_and_associativity() {
    check(&[
        ("1 + 2 * 3", "int 7"),
        ("(1 + 2) * 3", "int 9"),
        ("10 - 2 - 3", "int 5"),
        ("2 * 3 % 4", "int 2"),
        ("2 ** 3 ** 2", "float 512"),
        ("-2 ** 2", "float -4"),
        ("(-2) ** 2", "float 4"),
        ("-2 * 3", "int -6"),
        ("true || false && false", "true"),
        ("!true == false", "true"),
        ("not true == false", "true"),
        ("!1 > 2", "error: invalid operation: !int"),
        ("1..2 + 1", "[int 1, int 2, int 3]"),
        ("1 + lag ?? 2", "int 3"),
        ("-lag ?? 2", "int -2"),
        ("lag ?? 1 + 2", "parse error: cannot be mixed"),
        ("(lag ?? 1) + 2", "int 3"),
        ("false ? 1 : false ? 2 : 3", "int 3"),
        ("true ? false ? 1 : 2 : 3", "int 2"),
        ("rps > 100 ? rps : 0", "float 140"),
    ]);
}

#[test]
fn comparisons() {
    check(&[
        ("1 < 2", "true"),
        ("2 <= 2", "true"),
        ("3 > 4", "false"),
        ("3 >= 4", "false"),
        ("1 == 1.0", "true"),
        ("1 != 2", "true"),
        ("1 < 2 < 3", "true"),
        ("1 < 3 < 2", "false"),
        ("3 > 2 >= 2", "true"),
        ("1 < 2 == true", "true"),
        ("rps > 100", "true"),
        ("true < 1", "error: invalid operation: bool < int"),
        ("lag > 1", "error: nil > int"),
        ("nil == nil", "true"),
        ("lag == nil", "true"),
        ("nil == 0", "false"),
        ("nil != 1", "true"),
        ("true == 1", "false"),
        ("[1, 2] == [1, 2]", "true"),
        ("[1] == [1.0]", "false"),
    ]);
}

#[test]
fn logic_needs_booleans_and_short_circuits() {
    check(&[
        ("true && false", "false"),
        ("true and true", "true"),
        ("false || true", "true"),
        ("false or false", "false"),
        ("!true", "false"),
        ("not false", "true"),
        ("!(1 > 2)", "true"),
        ("false && nil", "false"),
        ("true || lag > 1", "true"),
        ("true && 1", "error: `&&` needs booleans, got int"),
        ("1 || true", "error: `||` needs booleans, got int"),
        ("nil && true", "error: needs booleans, got nil"),
        ("!nil", "error: invalid operation: !nil"),
        ("not 1", "error: invalid operation: !int"),
    ]);
}

#[test]
fn conditionals() {
    check(&[
        ("true ? 1 : 2", "int 1"),
        ("1 ? 2 : 3", "error: condition must be a boolean, got int"),
        ("lag ? 1 : 2", "error: condition must be a boolean, got nil"),
        ("true ?: 5", "true"),
        ("false ?: 5", "int 5"),
        ("if rps > 100 { 1 } else { 2 }", "int 1"),
        ("if false { 1 } else if true { 2 } else { 3 }", "int 2"),
        ("true ? 1", "parse error: expected `:`"),
    ]);
}

#[test]
fn nil_does_not_propagate() {
    check(&[
        ("lag ?? 5", "int 5"),
        ("rps ?? 5", "float 140"),
        ("nil ?? nil", "nil"),
        ("lag ?? queue ?? 8", "float 20"),
        ("lag ?? nil ?? 8", "int 8"),
        ("lag + 1", "error: invalid operation: nil + int"),
        ("lag + 1", "error: name ?? 0"),
        ("lag * 2 ?? 3", "error: nil * int"),
        ("float(lag)", "error: invalid operation: float(nil)"),
        ("[1, lag]", "[int 1, nil]"),
        ("[1, lag][1] ?? 7", "int 7"),
        ("nil in [1, nil]", "true"),
        ("abs(lag)", "error: invalid argument for abs (type nil)"),
        ("min(lag)", "nil"),
        ("min(lag) ?? 4", "int 4"),
        ("max(lag, 1)", "error: invalid argument for max (type nil)"),
        ("mean([lag])", "error: invalid argument for mean (type nil)"),
        ("sum([1, lag])", "error: nil + int"),
    ]);
}

#[test]
fn let_bindings_and_sequences() {
    check(&[
        ("let x = 2; x * 3", "int 6"),
        ("let x = rps; let y = x / 2; y + 1", "float 71"),
        ("let x = 1; let x = x + 1; x", "int 2"),
        ("(let x = 5; x) + 1", "int 6"),
        ("let rps = 1; rps", "int 1"),
        ("1; 2", "int 2"),
        ("let = 1; 2", "parse error: expected a variable name"),
        ("let x = 1 x", "parse error: expected `;`"),
        ("(let x = 1; x) + x", "parse error: unknown name `x`"),
    ]);
}

#[test]
fn arrays_indexing_slices_ranges_and_in() {
    check(&[
        ("[]", "[]"),
        ("[1, 2,]", "[int 1, int 2]"),
        ("[rps, queue][1]", "float 20"),
        ("[1, 2, 3][0]", "int 1"),
        ("[1, 2, 3][-1]", "int 3"),
        ("[1, 2, 3][-3]", "int 1"),
        ("[1, 2, 3][3]", "error: index out of range"),
        ("[1, 2, 3][-4]", "error: index out of range"),
        ("[1, 2, 3][1.0]", "error: must be an integer"),
        ("[1, 2, 3][int(queue / 10)]", "int 3"),
        ("rps[0]", "error: cannot index float"),
        ("[1, 2, 3][1:]", "[int 2, int 3]"),
        ("[1, 2, 3][:-1]", "[int 1, int 2]"),
        ("[1, 2, 3][5:]", "[]"),
        ("[[1, 2], [3]][0][1]", "int 2"),
        ("1..3", "[int 1, int 2, int 3]"),
        ("3..1", "[]"),
        ("1.5..3", "error: a range needs integers"),
        ("1..100000", "error: longer than 10000"),
        ("2 in [1, 2]", "true"),
        ("2.0 in [1, 2]", "true"),
        ("3 not in [1, 2]", "true"),
        ("2 in 1..3", "true"),
        ("1 in nil", "false"),
        ("1 in 1", "error: invalid operation: int in int"),
        ("$env[\"kafka-lag\"] * 2", "float 10"),
        ("$env.rps", "float 140"),
        ("kafka-lag", "parse error: unknown name `kafka`"),
    ]);
}

#[test]
fn predicates() {
    check(&[
        ("count([1, 5, 9], {# > 1})", "int 2"),
        ("count([1, 5, 9], # > 1)", "int 2"),
        ("count([true, false, true])", "int 2"),
        ("count([1, 2])", "error: must give a boolean, got int"),
        ("count([1, 2], #)", "error: must give a boolean, got int"),
        (
            "count(rps, # > 1)",
            "error: count takes an array, got float",
        ),
        ("count(lag, # > 1)", "error: count takes an array, got nil"),
        ("all([2, 3], {# > 1})", "true"),
        ("all([2, 0], {# > 1})", "false"),
        ("all([], {# > 1})", "true"),
        ("any([1, 3], {# > 2})", "true"),
        ("any([], {# > 1})", "false"),
        ("none([1, 2], {# > 5})", "true"),
        ("none([], {# > 5})", "true"),
        ("one([1, 5], {# > 2})", "true"),
        ("one([5, 6], {# > 2})", "false"),
        ("filter(1..6, {# % 2 == 0})", "[int 2, int 4, int 6]"),
        ("map([1, 2], {# * 10})", "[int 10, int 20]"),
        ("map([7, 8], #index)", "[int 0, int 1]"),
        ("sum([1, 2, 3])", "int 6"),
        ("sum([1, 2.5])", "float 3.5"),
        ("sum([])", "int 0"),
        ("sum([1, 2], {# * 2})", "int 6"),
        ("find([1, 5, 9], {# > 2})", "int 5"),
        ("find([1], # > 5)", "nil"),
        ("findLast([1, 5, 9], # > 2)", "int 9"),
        ("findIndex([1, 5, 9], # > 2)", "int 1"),
        ("findLastIndex([1, 5, 9], # > 100)", "nil"),
        ("reduce(1..4, #acc + #)", "int 10"),
        ("reduce(1..4, #acc + #, 10)", "int 20"),
        ("reduce([], #acc + #)", "error: empty array"),
        ("count(map([1, 2, 3], # * 2), # > 2)", "int 2"),
        (
            "map([1, 2], {let o = #; sum([10, 20], {# + o})})",
            "[int 32, int 34]",
        ),
        ("all([1], {# > 5; true})", "true"),
        ("[1, 2, 3] | sum()", "int 6"),
        ("[1, 5] | count(# > 2)", "int 1"),
        ("# > 1", "parse error: only valid inside a predicate"),
        ("count([1], #acc)", "parse error: unknown `#acc`"),
        ("count([1])", "error: must give a boolean, got int"),
        ("map([1])", "parse error: takes an array and a predicate"),
    ]);
}

#[test]
fn number_builtins() {
    check(&[
        ("float(2)", "float 2"),
        ("float(true)", "error: invalid operation: float(bool)"),
        ("int(2.9)", "int 2"),
        ("int(-2.9)", "int -2"),
        ("int(1e300)", "error: out of range"),
        ("abs(-3)", "int 3"),
        ("abs(-2.5)", "float 2.5"),
        ("ceil(1.2)", "float 2"),
        ("ceil(2)", "float 2"),
        ("floor(-1.5)", "float -2"),
        ("round(2.5)", "float 3"),
        ("round(-2.5)", "float -3"),
        ("min(3, 1, 2)", "int 1"),
        ("max(1, 2.5)", "float 2.5"),
        ("min([3, 1], 2)", "int 1"),
        ("max([[1, 9], 3])", "int 9"),
        ("max([])", "nil"),
        (
            "min(true, 1)",
            "error: invalid argument for min (type bool)",
        ),
        ("mean([1, 2, 3, 4])", "float 2.5"),
        ("mean(1, [2, 3])", "float 2"),
        ("mean([])", "float 0"),
        ("median([3, 1, 2])", "float 2"),
        ("median([4, 1, 3, 2])", "float 2.5"),
        ("len([1, 2])", "int 2"),
        ("len(1)", "error: invalid argument for len (type int)"),
        ("first([])", "nil"),
        ("last([1, 2])", "int 2"),
        ("get([1, 2], 5)", "nil"),
        ("get([1, 2], -1)", "int 2"),
        ("sqrt(4)", "parse error: unknown function `sqrt`"),
        ("abs(1, 2)", "parse error: `abs` takes 1 argument(s), got 2"),
        (
            "min()",
            "parse error: `min` takes at least 1 argument(s), got 0",
        ),
    ]);
}

#[test]
fn parse_errors_say_what_and_where() {
    let table: &[(&str, &str, usize)] = &[
        ("", "empty", 0),
        ("rps +", "ends where a value was expected", 5),
        ("rps + nope", "unknown name `nope`", 6),
        ("(rps", "expected `)`", 4),
        ("rps )", "unexpected `)`", 4),
        ("rps @ 2", "unexpected character `@`", 4),
        ("sqrt(rps)", "unknown function `sqrt`", 0),
        ("rps ? 1", "expected `:`", 7),
        ("12abc + 1", "bad number `12abc`", 0),
        ("1 + 99999999999999999999", "too large", 4),
        ("'a' + 1", "strings are not supported", 0),
        ("{a: 1}", "maps are not supported", 0),
        ("1 + /* open", "never closed", 4),
        ("lag ?? 1 + 2", "cannot be mixed", 9),
        ("count([1], # > 1) + #", "only valid inside a predicate", 20),
    ];
    for (src, want, at) in table {
        let err = Formula::parse(src, &NAMES).unwrap_err();
        assert!(err.message.contains(want), "{src}: {err}");
        assert_eq!(err.position, *at, "{src}: {err}");
    }
}

#[test]
fn validation_runs_the_formula_with_every_trigger_at_minus_one() {
    let table: &[(&str, &str)] = &[
        ("rps > 0", "must give a number, it gave false"),
        ("[rps]", "gave an array of 1"),
        ("queue < 0 ? true : 1", "it gave true"),
        ("rps % 2", "`%` needs integers"),
        ("rps / (queue + 1)", "not a finite number"),
        ("1..rps", "a range needs integers"),
        ("[1][rps]", "must be an integer"),
        ("nil", "it gave nil"),
        (
            "sum(map(1..10000, {sum(1..10000)}))",
            "more than 100000 evaluation steps",
        ),
    ];
    for (src, want) in table {
        let err = Formula::parse(src, &NAMES).unwrap_err();
        assert!(err.message.contains(want), "{src}: {err}");
        assert!(
            err.message.contains("with every trigger at -1"),
            "{src}: {err}"
        );
    }
    // Not evaluated at -1, so accepted (a later true would fail at decide time).
    assert!(Formula::parse("queue > 0 ? true : 1", &NAMES).is_ok());
    // `??` makes a nil result acceptable.
    assert!(Formula::parse("nil ?? nil", &NAMES).is_ok());
}

fn eval(src: &str, names: &[&str], values: &[Option<f64>]) -> Result<Option<f64>, String> {
    Formula::parse(src, names)
        .map_err(|e| e.to_string())?
        .eval(values)
}

#[test]
fn keda_documented_examples() {
    let two = ["trigger1", "trigger2"];
    assert_eq!(
        eval("trigger1 + trigger2", &two, &[Some(2.0), Some(5.0)]),
        Ok(Some(7.0))
    );
    let three = ["trig_one", "trig_two", "trig_three"];
    let src = "count([trig_one,trig_two,trig_three],{#>1}) > 1 ? 5 : 0";
    assert_eq!(
        eval(src, &three, &[Some(2.0), Some(0.0), Some(3.0)]),
        Ok(Some(5.0))
    );
    assert_eq!(
        eval(src, &three, &[Some(2.0), Some(0.0), Some(1.0)]),
        Ok(Some(0.0))
    );
    let ps = ["primary", "secondary"];
    let src = "primary ?? secondary ?? 8";
    assert_eq!(eval(src, &ps, &[Some(16.0), Some(12.0)]), Ok(Some(16.0)));
    assert_eq!(eval(src, &ps, &[None, Some(12.0)]), Ok(Some(12.0)));
    assert_eq!(eval(src, &ps, &[None, None]), Ok(Some(8.0)));
    // Both failing and nothing to coalesce to: nil, which the engine turns into the fallback.
    assert_eq!(eval("trigger1 ?? trigger2", &two, &[None, None]), Ok(None));
}

#[test]
fn eval_results_are_finite_numbers_or_errors() {
    let names = ["rps", "queue"];
    assert_eq!(eval("2 + 3", &names, &[None, None]), Ok(Some(5.0)));
    assert_eq!(
        eval("(rps + (queue ?? 0)) / 2", &names, &[Some(60.0), None]),
        Ok(Some(30.0))
    );
    let err = eval("rps + queue", &names, &[None, Some(1.0)]).unwrap_err();
    assert!(err.contains("nil + float"), "{err}");
    assert!(eval("rps > 1 ? 1 : 0", &names, &[None, Some(1.0)]).is_err());
    let err = eval("rps / queue", &names, &[Some(1.0), Some(0.0)]).unwrap_err();
    assert!(err.contains("not a finite number"), "{err}");
    let err = eval("queue > 0 ? true : 1", &names, &[Some(1.0), Some(5.0)]).unwrap_err();
    assert!(err.contains("must give a number, it gave true"), "{err}");
    // Without `??` a nil result is an error, as float(nil) is in KEDA.
    let err = eval("max(rps)", &names, &[None, None]).unwrap_err();
    assert!(err.contains("gave nil"), "{err}");
    assert_eq!(eval("max(rps) ?? nil", &names, &[None, None]), Ok(None));
}

#[test]
fn records_referenced_triggers() {
    let f = Formula::parse("queue + rps + queue", &NAMES).unwrap();
    assert_eq!(f.referenced_triggers(), &[0, 1]);
    let f = Formula::parse("let rps = 1; rps + $env[\"kafka-lag\"]", &NAMES).unwrap();
    assert_eq!(f.referenced_triggers(), &[3]);
}

#[test]
fn a_typical_formula_parses_into_a_small_flat_tree() {
    // The policy parses on every decision: one token vector, one node vector, one list vector.
    let f = Formula::parse("count([rps, queue, lag], {# > 1}) > 1 ? 5 : 0", &NAMES).unwrap();
    assert_eq!(f.nodes.len(), 13);
    assert_eq!(f.lists.len(), 3);
    assert_eq!((f.locals, f.scopes), (0, 1));
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
    for deep in [
        "(".repeat(40) + "1" + &")".repeat(40),
        "-".repeat(100) + "1",
        "!".repeat(100) + "true",
        "2**".repeat(40) + "2",
        "[".repeat(40) + &"]".repeat(40),
        "let x = 1; ".repeat(40) + "x",
        "true ? 1 : ".repeat(40) + "0",
        "abs(".repeat(40) + "1" + &")".repeat(40),
    ] {
        let err = Formula::parse(&deep, &NAMES).unwrap_err();
        assert!(err.message.contains("deeper than 32"), "{deep}: {err}");
    }
}

/// Runs `f` on a thread with a small stack, so a recursion that is not bounded fails the test
/// with a stack overflow instead of passing by luck.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn hundred_thousand_deep_formulas_are_errors_not_stack_overflows() {
    on_small_stack(|| {
        let n = 100_000;
        for src in [
            "(".repeat(n) + "1" + &")".repeat(n),
            "-".repeat(n) + "1",
            "!".repeat(n) + "true",
        ] {
            let err = Formula::parse(&src, &NAMES).unwrap_err();
            assert!(err.message.contains("longer than 1024"), "{err}");
        }
        // As deep as fits in the length limit: the nesting bound stops it.
        for src in [
            "(".repeat(511) + "1" + &")".repeat(511),
            "-".repeat(1023) + "1",
            "!".repeat(1020) + "true",
            "[".repeat(512) + &"]".repeat(512),
        ] {
            let err = Formula::parse(&src, &NAMES).unwrap_err();
            assert!(err.message.contains("deeper than 32"), "{err}");
        }
        // The tallest tree the limits allow (a left-deep chain) evaluates on that stack.
        let chain = "1+".repeat(127) + "1";
        assert_eq!(
            Formula::parse(&chain, &NAMES).unwrap().eval(&VALUES),
            Ok(Some(128.0))
        );
    });
}

#[test]
fn evaluation_is_bounded_by_steps_and_array_length() {
    check(&[
        ("count(1..10000, # > 0)", "int 10000"),
        ("len(map(1..10000, #))", "int 10000"),
        (
            "map(1..10000, 1..10000)",
            "error: more than 100000 evaluation steps",
        ),
        ("1..10001", "error: longer than 10000"),
        (
            "let a = 1..10000; let b = map(a, a); b == b",
            "error: more than 100000 evaluation steps",
        ),
        (
            "let a = 1..10000; count(a, {len(a[1:]) > 0})",
            "error: more than 100000 evaluation steps",
        ),
        ("let a = 1..10000; a == a", "true"),
        (
            "count(1..1000, {count(1..1000, {# > 0}) > 0})",
            "error: more than 100000 evaluation steps",
        ),
    ]);
}
