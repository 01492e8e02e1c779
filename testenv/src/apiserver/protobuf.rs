//! A small decoder for the Kubernetes protobuf encoding, enough for the built-in kinds kubectl's
//! typed clients POST/PUT as `application/vnd.kubernetes.protobuf` (`kubectl create
//! configmap|secret|namespace|serviceaccount|role|rolebinding|clusterrole|clusterrolebinding`,
//! `kubectl auth can-i`, `kubectl create token`). The envelope is the `k8s\0` magic + a `runtime.Unknown` whose `raw`
//! bytes are the object; field numbers follow the `protobuf:` tags of the k8s.io/api types.
//! Unsupported kinds are a 415, and responses are always JSON (clients accept it).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum F {
    Str,
    Bytes,
    Int,
    Bool,
    Msg(&'static [Field]),
    MapStr,
    MapBytes,
    RepStr,
    RepMsg(&'static [Field]),
}

type Field = (u64, &'static str, F);

const OWNER_REF: &[Field] = &[
    (1, "kind", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (5, "apiVersion", F::Str),
    (6, "controller", F::Bool),
    (7, "blockOwnerDeletion", F::Bool),
];
const META: &[Field] = &[
    (1, "name", F::Str),
    (2, "generateName", F::Str),
    (3, "namespace", F::Str),
    (5, "uid", F::Str),
    (6, "resourceVersion", F::Str),
    (7, "generation", F::Int),
    (11, "labels", F::MapStr),
    (12, "annotations", F::MapStr),
    (13, "ownerReferences", F::RepMsg(OWNER_REF)),
    (14, "finalizers", F::RepStr),
];
const CONFIG_MAP: &[Field] =
    &[(1, "metadata", F::Msg(META)), (2, "data", F::MapStr), (3, "binaryData", F::MapBytes), (4, "immutable", F::Bool)];
const SECRET: &[Field] = &[
    (1, "metadata", F::Msg(META)),
    (2, "data", F::MapBytes),
    (3, "type", F::Str),
    (4, "stringData", F::MapStr),
    (5, "immutable", F::Bool),
];
const NS_SPEC: &[Field] = &[(1, "finalizers", F::RepStr)];
const NAMESPACE: &[Field] = &[(1, "metadata", F::Msg(META)), (2, "spec", F::Msg(NS_SPEC))];
const LOCAL_REF: &[Field] = &[(1, "name", F::Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    (1, "metadata", F::Msg(META)),
    (3, "imagePullSecrets", F::RepMsg(LOCAL_REF)),
    (4, "automountServiceAccountToken", F::Bool),
];
const RULE: &[Field] = &[
    (1, "verbs", F::RepStr),
    (2, "apiGroups", F::RepStr),
    (3, "resources", F::RepStr),
    (4, "resourceNames", F::RepStr),
    (5, "nonResourceURLs", F::RepStr),
];
const ROLE: &[Field] = &[(1, "metadata", F::Msg(META)), (2, "rules", F::RepMsg(RULE))];
const SUBJECT: &[Field] =
    &[(1, "kind", F::Str), (2, "apiGroup", F::Str), (3, "name", F::Str), (4, "namespace", F::Str)];
const ROLE_REF: &[Field] = &[(1, "apiGroup", F::Str), (2, "kind", F::Str), (3, "name", F::Str)];
const BINDING: &[Field] =
    &[(1, "metadata", F::Msg(META)), (2, "subjects", F::RepMsg(SUBJECT)), (3, "roleRef", F::Msg(ROLE_REF))];
const RES_ATTRS: &[Field] = &[
    (1, "namespace", F::Str),
    (2, "verb", F::Str),
    (3, "group", F::Str),
    (4, "version", F::Str),
    (5, "resource", F::Str),
    (6, "subresource", F::Str),
    (7, "name", F::Str),
];
const NONRES_ATTRS: &[Field] = &[(1, "path", F::Str), (2, "verb", F::Str)];
const SSAR_SPEC: &[Field] =
    &[(1, "resourceAttributes", F::Msg(RES_ATTRS)), (2, "nonResourceAttributes", F::Msg(NONRES_ATTRS))];
const SSAR: &[Field] = &[(1, "metadata", F::Msg(META)), (2, "spec", F::Msg(SSAR_SPEC))];
const BOUND_REF: &[Field] = &[(1, "kind", F::Str), (2, "apiVersion", F::Str), (3, "name", F::Str), (4, "uid", F::Str)];
const TOKEN_SPEC: &[Field] =
    &[(1, "audiences", F::RepStr), (3, "boundObjectRef", F::Msg(BOUND_REF)), (4, "expirationSeconds", F::Int)];
const TOKEN_REQUEST: &[Field] = &[(1, "metadata", F::Msg(META)), (2, "spec", F::Msg(TOKEN_SPEC))];
const TYPE_META: &[Field] = &[(1, "apiVersion", F::Str), (2, "kind", F::Str)];
const UNKNOWN: &[Field] = &[(1, "typeMeta", F::Msg(TYPE_META)), (2, "raw", F::Bytes)];

fn schema_for(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "Namespace" => NAMESPACE,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Role" | "ClusterRole" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => BINDING,
        "SelfSubjectAccessReview" => SSAR,
        "TokenRequest" => TOKEN_REQUEST,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&[u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        let end = self.pos.checked_add(len).filter(|e| *e <= self.buf.len()).ok_or("truncated field")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => {
                self.pos += 8;
                Ok(())
            }
            2 => self.bytes().map(|_| ()),
            5 => {
                self.pos += 4;
                Ok(())
            }
            w => Err(format!("unsupported wire type {w}")),
        }
    }
}

fn string(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

fn map_entry(entry: &[u8], bytes: bool) -> Result<(String, Value), String> {
    let mut reader = Reader { buf: entry, pos: 0 };
    let (mut key, mut value) = (String::new(), json!(""));
    while reader.pos < reader.buf.len() {
        let tag = reader.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => key = String::from_utf8_lossy(reader.bytes()?).into_owned(),
            (2, 2) => {
                let raw = reader.bytes()?;
                value = if bytes { json!(STANDARD.encode(raw)) } else { string(raw) };
            }
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok((key, value))
}

fn message(b: &[u8], schema: &[Field]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut out = Map::new();
    while r.pos < r.buf.len() {
        let tag = r.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let Some((_, name, kind)) = schema.iter().find(|(n, _, _)| *n == num) else {
            r.skip(wire)?;
            continue;
        };
        let name = (*name).to_owned();
        match *kind {
            F::Int => {
                let v = r.varint()?;
                out.insert(name, json!(v));
            }
            F::Bool => {
                let v = r.varint()?;
                out.insert(name, json!(v != 0));
            }
            F::Str => {
                out.insert(name, string(r.bytes()?));
            }
            F::Bytes => {
                out.insert(name, json!(STANDARD.encode(r.bytes()?)));
            }
            F::Msg(s) => {
                out.insert(name, message(r.bytes()?, s)?);
            }
            F::MapStr | F::MapBytes => {
                let (k, v) = map_entry(r.bytes()?, matches!(kind, F::MapBytes))?;
                if let Value::Object(m) = out.entry(name).or_insert_with(|| json!({})) {
                    m.insert(k, v);
                }
            }
            F::RepStr => {
                let v = string(r.bytes()?);
                if let Value::Array(a) = out.entry(name).or_insert_with(|| json!([])) {
                    a.push(v);
                }
            }
            F::RepMsg(s) => {
                let v = message(r.bytes()?, s)?;
                if let Value::Array(a) = out.entry(name).or_insert_with(|| json!([])) {
                    a.push(v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf-encoded object into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body.strip_prefix(b"k8s\0").ok_or("missing the k8s protobuf envelope")?;
    let unknown = message(rest, UNKNOWN)?;
    let kind = unknown.pointer("/typeMeta/kind").and_then(Value::as_str).unwrap_or("").to_owned();
    let api_version = unknown.pointer("/typeMeta/apiVersion").and_then(Value::as_str).unwrap_or("").to_owned();
    let schema = schema_for(&kind).ok_or_else(|| format!("protobuf decoding of {kind} is not supported"))?;
    let raw = unknown.get("raw").and_then(Value::as_str).unwrap_or("");
    let raw = STANDARD.decode(raw).map_err(|e| e.to_string())?;
    let mut obj = message(&raw, schema)?;
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}
