//! Strategic merge patch, for the built-in kinds: a JSON merge patch that merges lists of objects
//! by their merge key (containers by `name`, ports by `containerPort`/`port`, webhooks by
//! `name`...) and honours the `$patch`, `$setElementOrder/`, `$deleteFromPrimitiveList/` and
//! `$retainKeys` directives kubectl sends. Merge keys come from a table of field names (the real
//! server reads them from each Go type), so a field not in the table is replaced whole.

use serde_json::{Map, Value};

/// Merge key of a list field, by field name.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let key = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "webhooks"
        | "secrets"
        | "volumeClaimTemplates" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" => {
            // Container ports merge by containerPort, Service ports by port.
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    };
    Some(key)
}

/// The merge key of a built-in list field, for server-side apply (`in_containers`: the list is
/// inside a container, where `ports` merge by `containerPort`).
pub fn builtin_merge_key(field: &str, in_containers: bool) -> Option<&'static str> {
    match field {
        "ports" if in_containers => Some("containerPort"),
        "ports" => Some("port"),
        "finalizers" | "ownerReferences" => None,
        other => merge_key(other, &[]),
    }
}

/// Primitive lists whose strategy is "merge" (union) rather than replace.
fn merges_primitives(field: &str) -> bool {
    matches!(field, "finalizers")
}

pub fn apply(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => merge_map(t, p),
        _ => *target = strip_directives(patch),
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn merge_map(t: &mut Map<String, Value>, p: &Map<String, Value>) {
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        *t = strip_directives(&Value::Object(p.clone()))
            .as_object()
            .cloned()
            .unwrap_or_default();
        return;
    }
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, pv) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (t.get_mut(field), pv.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), pv) {
            (Some(tv @ Value::Object(_)), Value::Object(pm)) => {
                if let Some(tm) = tv.as_object_mut() {
                    merge_map(tm, pm);
                }
            }
            (Some(Value::Array(tl)), Value::Array(pl)) => merge_list(k, tl, pl),
            _ => {
                t.insert(k.clone(), strip_directives(pv));
            }
        }
    }
    for (k, pv) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let (Some(Value::Array(list)), Some(order)) = (t.get_mut(field), pv.as_array()) {
                reorder(field, list, order);
            }
        }
    }
}

fn merge_list(field: &str, t: &mut Vec<Value>, p: &[Value]) {
    let all_objects = p.iter().all(Value::is_object) && t.iter().all(Value::is_object);
    if let Some(key) = merge_key(field, p).filter(|_| all_objects) {
        if p.iter()
            .any(|x| x.get("$patch").and_then(Value::as_str) == Some("replace"))
        {
            *t = p
                .iter()
                .filter(|x| x.get("$patch").is_none())
                .map(strip_directives)
                .collect();
            return;
        }
        for item in p {
            let id = item.get(key);
            let pos = t.iter().position(|x| x.get(key) == id && id.is_some());
            let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
            match (pos, delete) {
                (Some(i), true) => {
                    t.remove(i);
                }
                (None, true) => {}
                (Some(i), false) => {
                    if let (Some(tm), Some(pm)) = (t[i].as_object_mut(), item.as_object()) {
                        merge_map(tm, pm);
                    }
                }
                (None, false) => t.push(strip_directives(item)),
            }
        }
    } else if merges_primitives(field) {
        for item in p {
            if !t.contains(item) {
                t.push(item.clone());
            }
        }
    } else {
        *t = p.iter().map(strip_directives).collect();
    }
}

fn reorder(field: &str, list: &mut Vec<Value>, order: &[Value]) {
    let key = merge_key(field, order);
    let id = |v: &Value| match key {
        Some(k) => v.get(k).cloned(),
        None => Some(v.clone()),
    };
    let mut ordered = vec![];
    for o in order {
        let want = id(o);
        if let Some(i) = list.iter().position(|x| id(x) == want) {
            ordered.push(list.remove(i));
        }
    }
    ordered.append(list);
    *list = ordered;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_merge_by_key_with_directives() {
        let mut t = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}, "metadata": {"finalizers": ["x"]}});
        let p = json!({
            "spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                     "containers": [{"name": "a", "image": "2"}, {"name": "c", "$patch": "delete"}]},
            "metadata": {"finalizers": ["y"]}
        });
        apply(&mut t, &p);
        assert_eq!(t["spec"]["containers"][0]["image"], "1");
        assert_eq!(t["spec"]["containers"][1]["name"], "a");
        assert_eq!(t["spec"]["containers"][1]["image"], "2");
        assert_eq!(t["metadata"]["finalizers"], json!(["x", "y"]));
        apply(
            &mut t,
            &json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}),
        );
        assert_eq!(t["spec"]["containers"].as_array().unwrap().len(), 1);
    }
}
