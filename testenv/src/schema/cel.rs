//! `x-kubernetes-validations`: CEL rules evaluated at the schema node declaring them, with
//! `self` bound to the value there, as the apiserver does ("Validation rules" in the CRD docs).
//! A failing rule is a `FieldValueInvalid` at that node (or at `fieldPath` below it) with the
//! rule's `message`. Transition rules (those reading `oldSelf`) are not evaluated here.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use cel_interpreter::{Context, Program, to_value};
use serde_json::Value;

use super::{FieldError, FieldErrorKind};

pub(super) const VALIDATIONS: &str = "x-kubernetes-validations";

/// Checks the rules `schema` declares against `value` (found at `path`).
pub fn check(schema: &Value, value: &Value, path: &str, type_name: &str, errors: &mut Vec<FieldError>) {
    let Some(rules) = schema.get(VALIDATIONS).and_then(Value::as_array) else { return };
    for rule in rules {
        let Some(source) = rule.get("rule").and_then(Value::as_str) else { continue };
        if source.contains("oldSelf") {
            continue;
        }
        let field = match rule.get("fieldPath").and_then(Value::as_str) {
            Some(below) => format!("{path}{below}"),
            None => path.to_owned(),
        };
        let message =
            rule.get("message").and_then(Value::as_str).map_or_else(|| format!("failed rule: {source}"), str::to_owned);
        let detail = match evaluate(source, value) {
            Ok(true) => continue,
            Ok(false) => message,
            Err(why) => format!("rule {source:?} cannot be evaluated: {why}"),
        };
        errors.push(FieldError { field, kind: FieldErrorKind::Invalid, detail: format!("\"{type_name}\": {detail}") });
    }
}

/// Each rule compiled once, as the apiserver compiles a CRD's rules once per schema (was:
/// compiled on every write, the largest cost of a status patch). Keyed by the rule's text;
/// emptied when [`MAX_COMPILED`] different rules were seen (tests create many CRDs).
static COMPILED: LazyLock<Mutex<HashMap<String, Compiled>>> = LazyLock::new(Mutex::default);
const MAX_COMPILED: usize = 4096;
type Compiled = Result<Arc<Program>, String>;

/// `source` compiled, or why it cannot be.
fn compiled(source: &str) -> Compiled {
    if let Some(known) = COMPILED.lock().unwrap_or_else(PoisonError::into_inner).get(source) {
        return known.clone();
    }
    // The parser panics on some malformed rules (cel-parser 0.10): a bad rule must not take
    // the server down, so it is an error like any compilation failure.
    let program = match std::panic::catch_unwind(|| Program::compile(source)) {
        Ok(Ok(program)) => Ok(Arc::new(program)),
        Ok(Err(e)) => Err(format!("compilation failed: {e}")),
        Err(_) => Err("compilation failed: the parser gave up".to_owned()),
    };
    let mut cache = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= MAX_COMPILED {
        cache.clear();
    }
    cache.insert(source.to_owned(), program.clone());
    program
}

/// The rule's value with `self` bound to `value`; a non-boolean result is an error.
fn evaluate(source: &str, value: &Value) -> Result<bool, String> {
    let program = compiled(source)?;
    let mut context = Context::default();
    let bound = to_value(value).map_err(|e| e.to_string())?;
    context.add_variable("self", bound).map_err(|e| e.to_string())?;
    match program.execute(&context).map_err(|e| e.to_string())? {
        cel_interpreter::Value::Bool(result) => Ok(result),
        other => Err(format!("the rule gave {other:?}, not a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        check(schema, value, "spec", "object", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_false_rule_is_an_invalid_value_with_its_message_at_its_field_path() {
        let schema = json!({"x-kubernetes-validations": [
            {"rule": "self.replicas <= self.max", "message": "replicas over max", "fieldPath": ".replicas"},
            {"rule": "has(self.max)"},
            {"rule": "self.max == oldSelf.max", "message": "immutable"},
        ]});
        assert!(errors(&schema, &json!({"replicas": 1, "max": 3})).is_empty());
        assert_eq!(
            errors(&schema, &json!({"replicas": 5, "max": 3})),
            ["spec.replicas: Invalid value: \"object\": replicas over max"]
        );
        let missing = errors(&json!({"x-kubernetes-validations": [{"rule": "has(self.max)"}]}), &json!({}));
        assert_eq!(missing, ["spec: Invalid value: \"object\": failed rule: has(self.max)"]);
    }

    #[test]
    fn a_rule_is_compiled_once_and_still_judges_each_value() {
        let source = "self.compiled_once < 10";
        let schema = json!({"x-kubernetes-validations": [{"rule": source}]});
        assert!(errors(&schema, &json!({"compiled_once": 1})).is_empty());
        assert_eq!(errors(&schema, &json!({"compiled_once": 11})).len(), 1);
        let (first, second) = (compiled(source).unwrap(), compiled(source).unwrap());
        assert!(Arc::ptr_eq(&first, &second), "the second use must reuse the compiled program");
        // A rule that does not compile stays an error when met again.
        assert!(compiled("self.a +").is_err() && compiled("self.a +").is_err());
    }

    #[test]
    fn a_rule_that_cannot_run_is_said() {
        let schema = json!({"x-kubernetes-validations": [{"rule": "self.a +"}]});
        assert!(errors(&schema, &json!({"a": 1}))[0].contains("cannot be evaluated: compilation failed"));
    }
}
