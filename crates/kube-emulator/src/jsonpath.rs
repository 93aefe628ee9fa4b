//! The subset of JSONPath that printer columns use: `.a.b`, `['a.b']`, `[0]`, `[*]`,
//! `[?(@.type=="Ready")]`, optionally wrapped in `{...}`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter(Vec<String>, String),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let mut p = path.trim();
    if let Some(inner) = p.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        p = inner.trim();
    }
    let p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name == "*" {
                    steps.push(Step::All);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let start = i + 1;
                let mut depth = 1;
                i += 1;
                while i < chars.len() && depth > 0 {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                let inner: String = chars[start..i - 1].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')')) {
                    let (lhs, rhs) = f.split_once("==")?;
                    let field = lhs.trim().strip_prefix("@.")?;
                    let want = rhs
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_string();
                    steps.push(Step::Filter(
                        field.split('.').map(String::from).collect(),
                        want,
                    ));
                } else if let Ok(n) = inner.parse::<i64>() {
                    steps.push(Step::Index(n));
                } else {
                    steps.push(Step::Field(
                        inner.trim_matches(|c| c == '"' || c == '\'').to_string(),
                    ));
                }
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// All values the path selects, in document order.
pub(crate) fn select<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut cur = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(name) => next.extend(v.get(name.as_str())),
                Step::Index(n) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(field, want) => {
                    for item in v.as_array().into_iter().flatten() {
                        let mut f = Some(item);
                        for part in field {
                            f = f.and_then(|x| x.get(part.as_str()));
                        }
                        let matches = match f {
                            Some(Value::String(s)) => s == want,
                            Some(other) => want.parse::<Value>().is_ok_and(|w| w == *other),
                            None => false,
                        };
                        if matches {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

/// The single value at a simple `.a.b.c` path.
pub(crate) fn get<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    select(obj, path).into_iter().next()
}

/// Sets the value at a simple `.a.b.c` path, creating objects on the way.
pub(crate) fn set(obj: &mut Value, path: &str, value: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let map = cur.as_object_mut().expect("made an object above");
        if i == parts.len() - 1 {
            map.insert((*part).to_string(), value);
            return;
        }
        cur = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_printer_column_paths() {
        let obj = json!({
            "spec": {"triggers": [{"type": "prometheus"}, {"type": "cpu"}], "a.b": 1},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Active", "status": "False"}]}
        });
        assert_eq!(
            select(&obj, ".spec.triggers[*].type"),
            vec![&json!("prometheus"), &json!("cpu")]
        );
        assert_eq!(
            select(&obj, ".status.conditions[?(@.type==\"Active\")].status"),
            vec![&json!("False")]
        );
        assert_eq!(select(&obj, "{.spec['a.b']}"), vec![&json!(1)]);
        assert_eq!(select(&obj, ".spec.triggers[1].type"), vec![&json!("cpu")]);
        assert!(select(&obj, ".spec.missing").is_empty());
    }

    #[test]
    fn sets_nested_paths() {
        let mut obj = json!({});
        set(&mut obj, ".spec.replicas", json!(3));
        assert_eq!(obj, json!({"spec": {"replicas": 3}}));
    }
}
