//! Schema helpers shared by the CRD types: free-form objects and their kin.

use schemars::{json_schema, Schema, SchemaGenerator};

/// An object kept verbatim (`x-kubernetes-preserve-unknown-fields`), e.g. a raw PodTemplateSpec.
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A list whose items are kept verbatim (raw `corev1.Volume` objects and the like).
pub fn free_form_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "atomic",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

/// `map[string]string`.
pub fn string_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string"},
    })
}

/// Standard `metav1.Condition` list, a list-map keyed by `type` as upstream declares it.
pub fn conditions(gen: &mut SchemaGenerator) -> Schema {
    let item = gen.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": item,
    })
}
