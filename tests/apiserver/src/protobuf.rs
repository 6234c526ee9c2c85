//! Just enough of the Kubernetes protobuf encoding to accept writes of a few core kinds from
//! client-go's typed clients (`kubectl create configmap|secret|namespace|serviceaccount`, helm's
//! release Secrets). Responses stay JSON, which those clients also accept.
//!
//! The envelope is `k8s\0` + `runtime.Unknown{typeMeta=1{apiVersion=1,kind=2}, raw=2}`; `raw` is
//! the kind's message with field numbers from `k8s.io/api/core/v1/generated.proto`.

use base64::Engine;
use serde_json::{json, Map, Value};

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Parse one message's fields (field number, value); None on malformed input.
fn fields(b: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, wt) = (key >> 3, key & 7);
        match wt {
            0 => out.push((num, Wire::Varint(varint(b, &mut i)?))),
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).ok()?;
                let end = i.checked_add(len).filter(|e| *e <= b.len())?;
                out.push((num, Wire::Bytes(&b[i..end])));
                i = end;
            }
            1 => i = i.checked_add(8).filter(|e| *e <= b.len())?,
            5 => i = i.checked_add(4).filter(|e| *e <= b.len())?,
            _ => return None,
        }
    }
    Some(out)
}

fn s(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Option<(String, Value)> {
    let mut k = String::new();
    let mut v = json!("");
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => k = String::from_utf8_lossy(x).into_owned(),
            (2, Wire::Bytes(x)) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x))
            }
            (2, Wire::Bytes(x)) => v = s(x),
            _ => {}
        }
    }
    Some((k, v))
}

fn time(b: &[u8]) -> Option<Value> {
    let mut secs = 0i64;
    for (n, w) in fields(b)? {
        if let (1, Wire::Varint(v)) = (n, w) {
            secs = v as i64;
        }
    }
    let t = jiff::Timestamp::from_second(secs).ok()?;
    Some(json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn owner_ref(b: &[u8]) -> Option<Value> {
    let mut o = Map::new();
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => o.insert("kind".into(), s(x)),
            (3, Wire::Bytes(x)) => o.insert("name".into(), s(x)),
            (4, Wire::Bytes(x)) => o.insert("uid".into(), s(x)),
            (5, Wire::Bytes(x)) => o.insert("apiVersion".into(), s(x)),
            (6, Wire::Varint(v)) => o.insert("controller".into(), json!(v != 0)),
            (7, Wire::Varint(v)) => o.insert("blockOwnerDeletion".into(), json!(v != 0)),
            _ => None,
        };
    }
    Some(Value::Object(o))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut owners = vec![];
    let mut finalizers = vec![];
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => _ = m.insert("name".into(), s(x)),
            (2, Wire::Bytes(x)) => _ = m.insert("generateName".into(), s(x)),
            (3, Wire::Bytes(x)) => _ = m.insert("namespace".into(), s(x)),
            (5, Wire::Bytes(x)) => _ = m.insert("uid".into(), s(x)),
            (6, Wire::Bytes(x)) => _ = m.insert("resourceVersion".into(), s(x)),
            (7, Wire::Varint(v)) => _ = m.insert("generation".into(), json!(v as i64)),
            (8, Wire::Bytes(x)) => _ = m.insert("creationTimestamp".into(), time(x)?),
            (11, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                labels.insert(k, v);
            }
            (12, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                annotations.insert(k, v);
            }
            (13, Wire::Bytes(x)) => owners.push(owner_ref(x)?),
            (14, Wire::Bytes(x)) => finalizers.push(s(x)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !owners.is_empty() {
        m.insert("ownerReferences".into(), Value::Array(owners));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

fn local_object_ref(b: &[u8]) -> Option<Value> {
    let mut o = Map::new();
    for (n, w) in fields(b)? {
        if let (1, Wire::Bytes(x)) = (n, w) {
            o.insert("name".into(), s(x));
        }
    }
    Some(Value::Object(o))
}

/// Decode a protobuf-encoded object of a supported kind into its JSON form; Err says why not.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let unsupported = || "malformed protobuf body".to_string();
    let inner = body
        .strip_prefix(b"k8s\0")
        .ok_or("missing the k8s protobuf envelope")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, w) in fields(inner).ok_or_else(unsupported)? {
        match (n, w) {
            (1, Wire::Bytes(tm)) => {
                for (tn, tw) in fields(tm).ok_or_else(unsupported)? {
                    match (tn, tw) {
                        (1, Wire::Bytes(x)) => {
                            api_version = String::from_utf8_lossy(x).into_owned()
                        }
                        (2, Wire::Bytes(x)) => kind = String::from_utf8_lossy(x).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let mut data = Map::new();
    let mut extra = Map::new();
    let mut list: Vec<Value> = vec![];
    let mut list2: Vec<Value> = vec![];
    for (n, w) in fields(raw).ok_or_else(unsupported)? {
        match (api_version.as_str(), kind.as_str(), n, w) {
            (_, _, 1, Wire::Bytes(x)) => _ = obj.insert("metadata".into(), object_meta(x).ok_or_else(unsupported)?),
            ("v1", "ConfigMap", 2, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x, false).ok_or_else(unsupported)?;
                data.insert(k, v);
            }
            ("v1", "ConfigMap", 3, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x, true).ok_or_else(unsupported)?;
                extra.insert(k, v);
            }
            ("v1", "ConfigMap", 4, Wire::Varint(v)) | ("v1", "Secret", 5, Wire::Varint(v)) => _ = obj.insert("immutable".into(), json!(v != 0)),
            ("v1", "Secret", 2, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x, true).ok_or_else(unsupported)?;
                data.insert(k, v);
            }
            ("v1", "Secret", 3, Wire::Bytes(x)) => _ = obj.insert("type".into(), s(x)),
            ("v1", "Secret", 4, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x, false).ok_or_else(unsupported)?;
                extra.insert(k, v);
            }
            ("v1", "Namespace", 2, Wire::Bytes(x)) => {
                let fins: Vec<Value> = fields(x)
                    .ok_or_else(unsupported)?
                    .into_iter()
                    .filter_map(|(n, w)| match (n, w) {
                        (1, Wire::Bytes(f)) => Some(s(f)),
                        _ => None,
                    })
                    .collect();
                obj.insert("spec".into(), json!({"finalizers": fins}));
            }
            ("v1", "ServiceAccount", 2, Wire::Bytes(x)) => list.push(local_object_ref(x).ok_or_else(unsupported)?),
            ("v1", "ServiceAccount", 3, Wire::Bytes(x)) => list2.push(local_object_ref(x).ok_or_else(unsupported)?),
            ("v1", "ServiceAccount", 4, Wire::Varint(v)) => _ = obj.insert("automountServiceAccountToken".into(), json!(v != 0)),
            ("v1", "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount", _, _) => {}
            _ => return Err(format!("protobuf is supported for core/v1 ConfigMap, Secret, Namespace and ServiceAccount only, not {api_version} {kind}; send JSON")),
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    match kind.as_str() {
        "ConfigMap" if !extra.is_empty() => {
            _ = obj.insert("binaryData".into(), Value::Object(extra))
        }
        "Secret" if !extra.is_empty() => _ = obj.insert("stringData".into(), Value::Object(extra)),
        _ => {}
    }
    if !list.is_empty() {
        obj.insert("secrets".into(), Value::Array(list));
    }
    if !list2.is_empty() {
        obj.insert("imagePullSecrets".into(), Value::Array(list2));
    }
    if kind == "Secret" {
        // The API server folds stringData into data on write.
        if let Some(Value::Object(sd)) = obj.remove("stringData") {
            let d = obj.entry("data").or_insert_with(|| json!({}));
            for (k, v) in sd {
                let enc = base64::engine::general_purpose::STANDARD
                    .encode(v.as_str().unwrap_or_default());
                d[k] = json!(enc);
            }
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn decodes_a_configmap_and_refuses_garbage() {
        let meta = [ld(1, b"c"), ld(11, &[ld(1, b"app"), ld(2, b"x")].concat())].concat();
        let raw = [ld(1, &meta), ld(2, &[ld(1, b"k"), ld(2, b"v")].concat())].concat();
        let tm = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"k": "v"}})
        );
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        assert!(decode(b"{}").is_err());
    }
}
