//! JSON and YAML text whose bytes are hashed or compared: every object's keys in sorted order.
//!
//! serde_json keeps an object's keys in the order they were inserted in this build: cedar-policy
//! turns on its `preserve_order` feature for the whole crate graph. That order is an accident of
//! how a value was built (a `json!` literal, a merge, the order a client sent). Text that is
//! hashed (the bridge config's checksum that rolls pods, the applied-hash annotation that skips a
//! write) or compared as text (the conversion stash, a generated `configYAML`) must not depend
//! on it, or an operator upgrade that only reorders keys would roll every pod once.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Serializes the wrapped value with every object's keys sorted, without copying it.
pub struct Sorted<'a>(pub &'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(m) => {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, &Sorted(v))?;
                }
                map.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Sorted(item))?;
                }
                seq.end()
            }
            scalar => scalar.serialize(s),
        }
    }
}

/// Compact JSON with sorted keys.
pub fn to_string(v: &Value) -> String {
    serde_json::to_string(&Sorted(v)).unwrap_or_default()
}

/// Indented JSON with sorted keys (files a person may read, such as the bridge config).
pub fn to_string_pretty(v: &Value) -> String {
    serde_json::to_string_pretty(&Sorted(v)).unwrap_or_default()
}

/// YAML with sorted keys.
pub fn to_yaml(v: &Value) -> String {
    serde_yaml::to_string(&Sorted(v)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn insertion_order_does_not_reach_the_text() {
        let mut a = serde_json::Map::new();
        a.insert("z".into(), json!({"b": 1, "a": [{"y": 1, "x": 2}]}));
        a.insert("a".into(), json!(null));
        let mut b = serde_json::Map::new();
        b.insert("a".into(), json!(null));
        b.insert("z".into(), json!({"a": [{"x": 2, "y": 1}], "b": 1}));
        let (a, b) = (Value::Object(a), Value::Object(b));
        assert_eq!(
            to_string(&a),
            r#"{"a":null,"z":{"a":[{"x":2,"y":1}],"b":1}}"#
        );
        assert_eq!(to_string(&a), to_string(&b));
        assert_eq!(to_string_pretty(&a), to_string_pretty(&b));
        assert_eq!(
            to_yaml(&a),
            "a: null\nz:\n  a:\n  - x: 2\n    y: 1\n  b: 1\n"
        );
    }
}
