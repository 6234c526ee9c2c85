//! Merging a user's raw PodTemplateSpec into ours: user values win, ours fill the gaps, and
//! lists of named things (containers, volumes, env, ...) merge item by item, as a strategic
//! merge patch would. The selector labels always stay ours, or the Deployment would not own its
//! pods.

use serde_json::Value;
use std::collections::BTreeMap;

/// List fields whose items merge by a key, as Kubernetes' strategic merge does for them.
const KEYED_LISTS: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("volumes", "name"),
    ("env", "name"),
    ("ports", "containerPort"),
    ("volumeMounts", "mountPath"),
    ("imagePullSecrets", "name"),
    ("tolerations", "key"),
];

/// A workload Deployment's `spec`: our pod `template` with the owner's `podTemplateSpec` (if
/// any) merged over it, selected by `selector`, and `replicas` only when the owner sets them —
/// unset, scaling is left to `kubectl scale` and HPAs and we never fight over the field.
pub fn deployment_spec(
    template: Value,
    user: Option<&Value>,
    selector: &BTreeMap<String, String>,
    replicas: Option<i32>,
) -> Value {
    let template = match user {
        Some(user) => merge_pod_template(template, user, selector),
        None => template,
    };
    let mut spec = serde_json::json!({"selector": {"matchLabels": selector}, "template": template});
    if let Some(r) = replicas {
        spec["replicas"] = serde_json::json!(r);
    }
    spec
}

/// Our template with the user's merged over it.
pub fn merge_pod_template(ours: Value, user: &Value, selector: &BTreeMap<String, String>) -> Value {
    let mut merged = merge(ours, user, "");
    if let Some(labels) = merged
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for (k, v) in selector {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
    }
    merged
}

fn merge(ours: Value, user: &Value, field: &str) -> Value {
    match (ours, user) {
        (Value::Object(mut o), Value::Object(u)) => {
            for (k, uv) in u {
                let merged = match o.remove(k) {
                    Some(ov) => merge(ov, uv, k),
                    None => uv.clone(),
                };
                o.insert(k.clone(), merged);
            }
            Value::Object(o)
        }
        (Value::Array(o), Value::Array(u)) => match KEYED_LISTS.iter().find(|(f, _)| *f == field) {
            Some((_, key)) => Value::Array(merge_keyed(o, u, key)),
            None => Value::Array(u.clone()),
        },
        (_, u) if u.is_null() => Value::Null,
        (_, u) => u.clone(),
    }
}

/// Items with the same key merge; the user's other items are appended in their order.
fn merge_keyed(ours: Vec<Value>, user: &[Value], key: &str) -> Vec<Value> {
    let mut out: Vec<Value> = ours;
    for u in user {
        let k = u.get(key);
        match out.iter_mut().find(|o| k.is_some() && o.get(key) == k) {
            Some(slot) => {
                let current = std::mem::take(slot);
                // `merge` recurses with field names, so keyed lists inside (a container's
                // env) merge by their own keys too.
                *slot = merge(current, u, "");
            }
            None => out.push(u.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_wins_and_ours_fill_gaps() {
        let ours = json!({
            "metadata": {"labels": {"app.kubernetes.io/instance": "x", "team": "ops"}},
            "spec": {
                "containers": [{"name": "mcp", "image": "a", "env": [{"name": "A", "value": "1"}], "resources": {}}],
                "volumes": [{"name": "bridge-bin", "emptyDir": {}}],
            }
        });
        let user = json!({
            "metadata": {"labels": {"app.kubernetes.io/instance": "hijack", "team": "dev"}},
            "spec": {
                "nodeSelector": {"disk": "ssd"},
                "containers": [
                    {"name": "mcp", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}], "resources": {"limits": {"cpu": "1"}}},
                    {"name": "sidecar", "image": "s"}
                ],
                "volumes": [{"name": "extra", "emptyDir": {}}],
            }
        });
        let sel = BTreeMap::from([("app.kubernetes.io/instance".to_string(), "x".to_string())]);
        let m = merge_pod_template(ours, &user, &sel);
        assert_eq!(
            m["metadata"]["labels"]["app.kubernetes.io/instance"], "x",
            "selector stays ours"
        );
        assert_eq!(m["metadata"]["labels"]["team"], "dev", "user wins");
        assert_eq!(m["spec"]["nodeSelector"]["disk"], "ssd");
        let c = &m["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert_eq!(c[0]["image"], "a", "ours fill gaps");
        assert_eq!(c[0]["resources"]["limits"]["cpu"], "1");
        assert_eq!(
            c[0]["env"],
            json!([{"name": "A", "value": "9"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(c[1]["name"], "sidecar");
        assert_eq!(m["spec"]["volumes"].as_array().unwrap().len(), 2);
    }
}
