//! Fields whose type changed while upstream served `v1alpha1`: both shapes are accepted, so a
//! manifest of any release applies unchanged. The schema keeps such a node untyped
//! (`x-kubernetes-preserve-unknown-fields`); the typed decode here is what refuses anything else,
//! with a message that names both accepted shapes.

use crate::api::shared::NameRef;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::borrow::Cow;

/// `groupRef`: a group name (ToolHive ≤ v0.14) or `{name: ...}` (later v1alpha1 releases, and
/// v1beta1).
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum GroupRef {
    Name(String),
    Object(NameRef),
}

impl GroupRef {
    pub fn name(&self) -> &str {
        match self {
            GroupRef::Name(n) => n,
            GroupRef::Object(r) => &r.name,
        }
    }
}

impl<'de> Deserialize<'de> for GroupRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const SHAPES: &str = "must be a group name or {name: <group name>}";
        match Value::deserialize(d)? {
            Value::String(name) => Ok(GroupRef::Name(name)),
            Value::Object(m) => match (m.len(), m.get("name")) {
                (1, Some(Value::String(name))) => {
                    Ok(GroupRef::Object(NameRef { name: name.clone() }))
                }
                _ => Err(serde::de::Error::custom(SHAPES)),
            },
            _ => Err(serde::de::Error::custom(SHAPES)),
        }
    }
}

impl JsonSchema for GroupRef {
    fn schema_name() -> Cow<'static, str> {
        "GroupRef".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The MCPGroup this object belongs to: its name, or {name: <name>}.",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_shapes_decode_and_nothing_else() {
        let name: GroupRef = serde_json::from_value(json!("research")).unwrap();
        assert_eq!(name, GroupRef::Name("research".into()));
        let object: GroupRef = serde_json::from_value(json!({"name": "research"})).unwrap();
        assert_eq!(object.name(), "research");
        assert_eq!(
            serde_json::to_value(&object).unwrap(),
            json!({"name": "research"})
        );
        for bad in [
            json!(5),
            json!({"name": 5}),
            json!({"nam": "x"}),
            json!({"name": "x", "kind": "y"}),
            json!(["x"]),
        ] {
            let e = serde_json::from_value::<GroupRef>(bad.clone())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("must be a group name or {name: <group name>}"),
                "{bad}: {e}"
            );
        }
    }
}
