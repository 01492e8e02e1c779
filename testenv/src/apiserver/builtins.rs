//! Kind-specific defaulting and validation of built-in kinds (the subset our code relies on).
//! Defaults mirror what the real apiserver adds, so clients see the same shapes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::catalog::{ResourceDef, Special};
use super::status::Cause;
use super::util::meta_mut;

fn cause(reason: &str, field: &str, message: &str) -> Cause {
    Cause { reason: reason.into(), field: field.into(), message: message.into() }
}

/// DNS-1123 subdomain (most object names).
pub fn is_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label_chars)
}

fn is_label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 label (namespace names).
pub fn is_label(s: &str) -> bool {
    s.len() <= 63 && is_label_chars(s)
}

/// Checks `metadata.name` as the real server does for this kind.
pub fn name_causes(def: &ResourceDef, name: &str) -> Vec<Cause> {
    if def.special == Special::Namespace && !is_label(name) {
        return vec![cause(
            "FieldValueInvalid",
            "metadata.name",
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ),
        )];
    }
    // RBAC objects and events accept path-segment names; everything else is a subdomain.
    let lenient = def.group == "rbac.authorization.k8s.io" || matches!(def.special, Special::Event | Special::EventV1);
    if lenient {
        if name.contains('/') || name.contains('%') || name == "." || name == ".." {
            return vec![cause(
                "FieldValueInvalid",
                "metadata.name",
                &format!("Invalid value: \"{name}\": may not contain '/' or '%'"),
            )];
        }
        return Vec::new();
    }
    if !is_subdomain(name) {
        return vec![cause(
            "FieldValueInvalid",
            "metadata.name",
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        )];
    }
    Vec::new()
}

fn default_field(m: &mut Map<String, Value>, key: &str, v: Value) {
    m.entry(key.to_owned()).or_insert(v);
}

fn default_containers(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
                default_field(c, "terminationMessagePolicy", json!("File"));
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let latest = !image.contains('@')
                    && (image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or("").contains(':'));
                default_field(c, "imagePullPolicy", json!(if latest { "Always" } else { "IfNotPresent" }));
            }
        }
    }
    if let Some(m) = spec.as_object_mut() {
        default_field(m, "restartPolicy", json!("Always"));
        default_field(m, "terminationGracePeriodSeconds", json!(30));
        default_field(m, "dnsPolicy", json!("ClusterFirst"));
        default_field(m, "schedulerName", json!("default-scheduler"));
        default_field(m, "securityContext", json!({}));
        if !m.contains_key("serviceAccountName") {
            let sa = m.get("serviceAccount").cloned().unwrap_or(json!("default"));
            m.insert("serviceAccountName".into(), sa);
        }
    }
}

fn pod_spec_causes(spec: &Value, prefix: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    let cs = spec.get("containers").and_then(Value::as_array);
    if cs.is_none_or(Vec::is_empty) {
        out.push(cause("FieldValueRequired", &format!("{prefix}.containers"), "Required value"));
    }
    for (i, c) in cs.into_iter().flatten().enumerate() {
        for f in ["name", "image"] {
            if c.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                out.push(cause("FieldValueRequired", &format!("{prefix}.containers[{i}].{f}"), "Required value"));
            }
        }
    }
    out
}

fn secret_string_data(obj: &mut Value) {
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else { return };
    if let Some(m) = obj.as_object_mut() {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if let Value::Object(d) = data {
            for (k, v) in sd {
                d.insert(k, json!(STANDARD.encode(v.as_str().unwrap_or(""))));
            }
        }
    }
}

/// Defaults and validates a new object of a built-in kind.
pub fn on_create(def: &ResourceDef, obj: &mut Value, uid: &str) -> Vec<Cause> {
    let name = super::util::meta_str(obj, "name").to_owned();
    match def.special {
        Special::Namespace => {
            let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
            if let Value::Object(l) = labels {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            Vec::new()
        }
        Special::Pod => {
            if !obj.get("spec").is_some_and(Value::is_object) {
                return vec![cause("FieldValueRequired", "spec.containers", "Required value")];
            }
            let causes = pod_spec_causes(&obj["spec"], "spec");
            default_containers(&mut obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            causes
        }
        Special::Job => on_create_job(obj, &name, uid),
        Special::Secret => {
            secret_string_data(obj);
            if let Some(m) = obj.as_object_mut() {
                default_field(m, "type", json!("Opaque"));
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// The labels and selector the apiserver gives a Job (`manualSelector` unset), which the Job
/// controller and `kubectl logs job/NAME` rely on.
fn on_create_job(obj: &mut Value, name: &str, uid: &str) -> Vec<Cause> {
    if !obj.pointer("/spec/template/spec").is_some_and(Value::is_object)
        || !obj.pointer("/spec/template").is_some_and(Value::is_object)
    {
        return vec![cause("FieldValueRequired", "spec.template.spec.containers", "Required value")];
    }
    if let Some(t) = obj.pointer_mut("/spec/template").and_then(Value::as_object_mut)
        && !t.get("metadata").is_some_and(Value::is_object)
    {
        t.insert("metadata".into(), json!({}));
    }
    let template_spec = &obj["spec"]["template"]["spec"];
    let mut causes = pod_spec_causes(template_spec, "spec.template.spec");
    if !matches!(template_spec.get("restartPolicy").and_then(Value::as_str), Some("Never" | "OnFailure")) {
        causes.push(cause(
            "FieldValueRequired",
            "spec.template.spec.restartPolicy",
            "Required value: valid values: \"OnFailure\", \"Never\"",
        ));
    }
    if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) != Some(true) {
        let labels = json!({
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        });
        obj["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let tl = &mut obj["spec"]["template"]["metadata"]["labels"];
        if !tl.is_object() {
            *tl = json!({});
        }
        super::patch::merge_patch(tl, &labels);
    }
    default_containers(&mut obj["spec"]["template"]["spec"]);
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_field(spec, "backoffLimit", json!(6));
        default_field(spec, "completions", json!(1));
        default_field(spec, "parallelism", json!(1));
        default_field(spec, "completionMode", json!("NonIndexed"));
        default_field(spec, "suspend", json!(false));
        default_field(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    }
    causes
}

/// Applies update rules (defaults, immutability) of a built-in kind.
pub fn on_update(def: &ResourceDef, old: &Value, new: &mut Value) -> Vec<Cause> {
    match def.special {
        Special::Secret => {
            secret_string_data(new);
            Vec::new()
        }
        Special::Namespace => {
            // spec.finalizers only changes through the `finalize` subresource.
            if !new.is_object() {
                return Vec::new();
            }
            new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
            Vec::new()
        }
        Special::Job => {
            if new.pointer("/spec/template/spec").is_some_and(Value::is_object) {
                default_containers(&mut new["spec"]["template"]["spec"]);
            }
            let mut causes = Vec::new();
            for (ptr, field) in [
                ("/spec/template", "spec.template"),
                ("/spec/selector", "spec.selector"),
                ("/spec/completions", "spec.completions"),
            ] {
                if old.pointer(ptr) != new.pointer(ptr) {
                    causes.push(cause("FieldValueInvalid", field, "Invalid value: field is immutable"));
                }
            }
            causes
        }
        Special::Pod => {
            if new.get("spec").is_some_and(Value::is_object) {
                default_containers(&mut new["spec"]);
            }
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(Value::Array(cs)) = s.get_mut("containers") {
                    for c in cs {
                        if let Some(m) = c.as_object_mut() {
                            m.remove("image");
                        }
                    }
                }
                if let Some(m) = s.as_object_mut() {
                    m.remove("activeDeadlineSeconds");
                    m.remove("tolerations");
                }
                s
            };
            if strip(old) == strip(new) {
                Vec::new()
            } else {
                vec![cause(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)",
                )]
            }
        }
        _ => Vec::new(),
    }
}
