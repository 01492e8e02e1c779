//! The JSONPath subset printer columns use (`.a.b`, `[0]`, `[*]`, `[?(@.k=="v")]`), as
//! evaluated by the apiserver for `additionalPrinterColumns`.

use serde_json::Value;

#[derive(Debug, Clone)]
enum Seg {
    Field(String),
    Index(usize),
    All,
    Filter { path: Vec<String>, eq: bool, value: String },
}

fn parse(expr: &str) -> Option<Vec<Seg>> {
    let e = expr.trim();
    let e = e.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(e);
    let e = e.strip_prefix('$').unwrap_or(e);
    let mut segs = Vec::new();
    let mut rest = e;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                segs.push(Seg::Field(r[..end].to_owned()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            // A filter may contain ']' only inside quotes; our forms never do.
            let inner = &r[..end];
            rest = &r[end + 1..];
            if inner == "*" {
                segs.push(Seg::All);
            } else if let Ok(i) = inner.parse::<usize>() {
                segs.push(Seg::Index(i));
            } else if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
                let (lhs, eq, rhs) = if let Some((l, r)) = f.split_once("!=") {
                    (l, false, r)
                } else {
                    let (l, r) = f.split_once("==")?;
                    (l, true, r)
                };
                let path = lhs.trim().strip_prefix("@.")?.split('.').map(str::to_owned).collect();
                let value = rhs.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
                segs.push(Seg::Filter { path, eq, value });
            } else {
                let key = inner.trim_matches(|c| c == '"' || c == '\'');
                segs.push(Seg::Field(key.to_owned()));
            }
        } else {
            return None;
        }
    }
    Some(segs)
}

fn scalar_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every value the expression selects (empty when it selects nothing or does not parse).
pub fn eval<'a>(obj: &'a Value, expr: &str) -> Vec<&'a Value> {
    let Some(segs) = parse(expr) else { return Vec::new() };
    let mut cur = vec![obj];
    for seg in &segs {
        let mut next = Vec::new();
        for v in cur {
            match seg {
                Seg::Field(f) => next.extend(v.get(f)),
                Seg::Index(i) => next.extend(v.get(*i)),
                Seg::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Seg::Filter { path, eq, value } => {
                    if let Value::Array(a) = v {
                        next.extend(a.iter().filter(|item| {
                            let got = path.iter().try_fold(*item, |x, p| x.get(p));
                            got.is_some_and(|g| (scalar_str(g) == *value) == *eq)
                        }));
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn printer_column_forms() {
        let o = json!({"status": {"state": "Success", "conditions": [
            {"type": "Reconciling", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(eval(&o, ".status.state"), vec![&json!("Success")]);
        assert_eq!(eval(&o, r#".status.conditions[?(@.type=="Ready")].status"#), vec![&json!("True")]);
        assert_eq!(eval(&o, ".status.conditions[0].type"), vec![&json!("Reconciling")]);
        assert_eq!(eval(&o, ".status.conditions[*].type").len(), 2);
        assert!(eval(&o, ".status.missing").is_empty());
    }
}
