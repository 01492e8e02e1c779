//! OpenAPI v3.0 value validation with the apiserver's field paths and wording
//! (kube-openapi's validate package, as surfaced in 422 responses).

use serde_json::{Map, Value};

use super::{FieldError, FieldErrorKind, INT_OR_STRING, PRESERVE_UNKNOWN, join};

/// Every violation of `schema` by `object` (a whole custom resource, after pruning). Nested
/// values of a wrongly typed node are not inspected, as the apiserver stops there too.
/// As the apiserver: the `x-kubernetes-validations` rules run only on an object the schema
/// accepts; otherwise one more cause says they were not checked (field `<nil>`).
pub fn validate(schema: &Value, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check(schema, object, "", Rules::Skip, &mut errors);
    if errors.is_empty() {
        check(schema, object, "", Rules::Check, &mut errors);
    } else if has_rules(schema) {
        errors.push(FieldError {
            field: "<nil>".to_owned(),
            kind: FieldErrorKind::Invalid,
            detail: "null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".to_owned(),
        });
    }
    errors
}

/// Whether a pass evaluates the CEL rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rules {
    Skip,
    Check,
}

/// Whether `schema` declares a CEL rule anywhere.
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(fields) => fields.contains_key(super::cel::VALIDATIONS) || fields.values().any(has_rules),
        Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

fn check(schema: &Value, value: &Value, path: &str, rules: Rules, errors: &mut Vec<FieldError>) {
    let invalid = |detail: String| FieldError { field: path.to_owned(), kind: FieldErrorKind::Invalid, detail };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) && has_type(schema) {
            errors.push(invalid(format!("\"null\": {path} in body must be of type {}: \"null\"", type_of(schema))));
        }
        return;
    }
    if !type_matches(schema, value) {
        let actual = json_type(value);
        errors.push(invalid(format!("\"{actual}\": {path} in body must be of type {}: \"{actual}\"", type_of(schema))));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let supported: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errors.push(FieldError {
            field: path.to_owned(),
            kind: FieldErrorKind::NotSupported,
            detail: format!("{value}: supported values: {}", supported.join(", ")),
        });
    }
    if rules == Rules::Check {
        super::cel::check(schema, value, path, json_type(value), errors);
    }
    match value {
        Value::String(text) => check_string(schema, text, path, errors),
        Value::Number(number) => check_number(schema, number.as_f64().unwrap_or(f64::NAN), path, errors),
        Value::Array(items) => {
            check_count(schema, items.len(), ("minItems", "maxItems"), "items", path, errors);
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{index}]"), rules, errors);
                }
            }
        }
        Value::Object(fields) => check_object(schema, fields, path, rules, errors),
        Value::Bool(_) | Value::Null => {}
    }
}

fn check_object(schema: &Value, fields: &Map<String, Value>, path: &str, rules: Rules, errors: &mut Vec<FieldError>) {
    check_count(schema, fields.len(), ("minProperties", "maxProperties"), "properties", path, errors);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                errors.push(FieldError {
                    field: join(path, name),
                    kind: FieldErrorKind::Required,
                    detail: String::new(),
                });
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (name, child) in fields {
        // At the root, apiVersion/kind/metadata are validated by the apiserver itself.
        if path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(child_schema) = properties.and_then(|p| p.get(name)).or(additional) {
            check(child_schema, child, &join(path, name), rules, errors);
        }
    }
}

fn check_string(schema: &Value, text: &str, path: &str, errors: &mut Vec<FieldError>) {
    let length = text.chars().count();
    let shown = Value::String(text.to_owned());
    let mut invalid = |detail: String| {
        errors.push(FieldError {
            field: path.to_owned(),
            kind: FieldErrorKind::Invalid,
            detail: format!("{shown}: {detail}"),
        });
    };
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (length as u64) < min
    {
        invalid(format!("{path} in body should be at least {min} chars long"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && (length as u64) > max
    {
        invalid(format!("{path} in body should be at most {max} chars long"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => invalid(format!("{path} in body should match '{pattern}'")),
            Err(error) => invalid(format!("{path}: the schema's pattern does not compile: {error}")),
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !format_matches(format, text)
    {
        invalid(format!("{path} in body must be of type {format}: {shown}"));
    }
}

/// The formats our CRDs use; the apiserver ignores formats it does not know, and so do we.
fn format_matches(format: &str, text: &str) -> bool {
    match format {
        "date-time" => text.parse::<jiff::Timestamp>().is_ok(),
        "date" => text.parse::<jiff::civil::Date>().is_ok(),
        "byte" => {
            !text.is_empty()
                && text.len().is_multiple_of(4)
                && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        }
        _ => true,
    }
}

fn check_number(schema: &Value, number: f64, path: &str, errors: &mut Vec<FieldError>) {
    let mut invalid = |detail: String| {
        errors.push(FieldError {
            field: path.to_owned(),
            kind: FieldErrorKind::Invalid,
            detail: format!("{number}: {detail}"),
        });
    };
    let exclusive = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        if exclusive("exclusiveMinimum") && number <= min {
            invalid(format!("{path} in body should be greater than {min}"));
        } else if number < min {
            invalid(format!("{path} in body should be greater than or equal to {min}"));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        if exclusive("exclusiveMaximum") && number >= max {
            invalid(format!("{path} in body should be less than {max}"));
        } else if number > max {
            invalid(format!("{path} in body should be less than or equal to {max}"));
        }
    }
    let int_range = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
        _ => None,
    };
    if let Some((low, high)) = int_range
        && !(low..=high).contains(&number)
    {
        invalid(format!("{path} in body must be of type int32"));
    }
}

fn check_count(
    schema: &Value,
    count: usize,
    (min_key, max_key): (&str, &str),
    noun: &str,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let count = count as u64;
    if let Some(min) = schema.get(min_key).and_then(Value::as_u64)
        && count < min
    {
        errors.push(FieldError {
            field: path.to_owned(),
            kind: FieldErrorKind::Invalid,
            detail: format!("{count}: {path} in body should have at least {min} {noun}"),
        });
    }
    if let Some(max) = schema.get(max_key).and_then(Value::as_u64)
        && count > max
    {
        errors.push(FieldError {
            field: path.to_owned(),
            kind: FieldErrorKind::Invalid,
            detail: format!("{count}: {path} in body should have at most {max} {noun}"),
        });
    }
}

fn has_type(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str).is_some()
}

fn type_of(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("any")
}

fn type_matches(schema: &Value, value: &Value) -> bool {
    if schema.get(INT_OR_STRING).and_then(Value::as_bool) == Some(true) {
        return value.is_string() || value.as_f64().is_some_and(|n| n.fract() == 0.0);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("number") => value.is_number(),
        Some("integer") => value.is_i64() || value.is_u64(),
        // Untyped nodes only exist under preserve-unknown-fields: anything goes.
        _ => schema.get(PRESERVE_UNKNOWN).is_some() || !has_type(schema),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
