//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Fields are tracked as leaf paths: objects are walked key by key, while lists and scalars are
//! owned whole (every list is treated as `x-kubernetes-list-type: atomic`). That is coarser than
//! the real structured-merge-diff, which merges associative lists by key, but it gives the
//! behaviours controllers rely on: apply creates, apply merges into what others own, apply
//! conflicts on a field another manager set to a different value (unless forced), and a field a
//! manager stops applying is removed when nobody else owns it.

use serde_json::{json, Map, Value};

pub type Path = Vec<String>;

/// Leaf paths of a value, skipping identity fields that nobody "owns".
pub fn leaf_paths(v: &Value) -> Vec<Path> {
    let mut out = vec![];
    walk(v, &mut vec![], &mut out);
    out.retain(|p| !is_identity(p));
    out
}

fn is_identity(p: &Path) -> bool {
    let s: Vec<&str> = p.iter().map(String::as_str).collect();
    matches!(
        s.as_slice(),
        ["apiVersion"]
            | ["kind"]
            | ["metadata"]
            | ["metadata", "name"]
            | ["metadata", "namespace"]
            | ["metadata", "generateName"]
            | ["metadata", "uid"]
            | ["metadata", "resourceVersion"]
            | ["metadata", "generation"]
            | ["metadata", "creationTimestamp"]
            | ["metadata", "deletionTimestamp"]
            | ["metadata", "deletionGracePeriodSeconds"]
            | ["metadata", "selfLink"]
    ) || s.first() == Some(&"metadata") && s.get(1) == Some(&"managedFields")
}

fn walk(v: &Value, prefix: &mut Path, out: &mut Vec<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.push(prefix.clone())
            }
        }
    }
}

pub fn get_path<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for k in p {
        cur = cur.get(k)?;
    }
    Some(cur)
}

fn remove_path(v: &mut Value, p: &[String]) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        match cur.get_mut(k) {
            Some(c) => cur = c,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn overlaps(a: &Path, b: &Path) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Paths to fieldsV1 (`{"f:spec": {"f:replicas": {}}}`).
pub fn to_fields_v1(paths: &[Path]) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            let entry = cur.entry(format!("f:{k}")).or_insert_with(|| json!({}));
            cur = match entry.as_object_mut() {
                Some(m) => m,
                None => break,
            };
        }
    }
    Value::Object(root)
}

/// fieldsV1 back to leaf paths (other key kinds such as `k:`/`v:`/`.` are treated as leaves of
/// their parent).
pub fn from_fields_v1(v: &Value) -> Vec<Path> {
    fn go(v: &Value, prefix: &mut Path, out: &mut Vec<Path>) {
        let fields: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if fields.is_empty() {
            if !prefix.is_empty() {
                out.push(prefix.clone());
            }
            return;
        }
        for (k, child) in fields {
            prefix.push(k[2..].to_string());
            go(child, prefix, out);
            prefix.pop();
        }
    }
    let mut out = vec![];
    go(v, &mut vec![], &mut out);
    out
}

/// One managedFields entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub time: String,
    pub paths: Vec<Path>,
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e
                        .get("manager")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    operation: e
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or("Update")
                        .into(),
                    api_version: e
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    subresource: e
                        .get("subresource")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    time: e
                        .get("time")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    paths: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.paths.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.paths),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            md.remove("managedFields");
        } else {
            md.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Which leaf paths belong to a write through the main resource or a subresource.
pub fn in_scope(p: &Path, subresource: &str, has_status: bool) -> bool {
    let is_status = p.first().map(String::as_str) == Some("status");
    match subresource {
        "status" => is_status || p.first().map(String::as_str) == Some("metadata"),
        _ => !(has_status && is_status),
    }
}

/// Record an Update-operation write: the manager takes the fields whose values changed; fields
/// that disappeared are owned by nobody.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    has_status: bool,
    now: &str,
) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let empty = json!({});
    let old_v = old.unwrap_or(&empty);
    let new_paths = leaf_paths(new);
    let changed: Vec<Path> = new_paths
        .iter()
        .filter(|p| in_scope(p, subresource, has_status) && get_path(old_v, p) != get_path(new, p))
        .cloned()
        .collect();
    for e in entries.iter_mut() {
        e.paths
            .retain(|p| get_path(new, p).is_some() && !changed.iter().any(|c| c == p));
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(e) => {
                e.paths.extend(changed);
                e.time = now.to_string();
                e.api_version = api_version.to_string();
            }
            None => entries.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                subresource: subresource.into(),
                time: now.into(),
                paths: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: Path,
}

/// Server-side apply of `applied` by `manager` onto `current` (which carries managedFields).
/// Who applies, through which endpoint, and how.
pub struct Applier<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    /// `""` for the main resource, `"status"` for the status subresource.
    pub subresource: &'a str,
    /// Whether the resource has a status subresource (then the main resource ignores status).
    pub has_status: bool,
    pub force: bool,
    pub now: &'a str,
}

pub fn apply(current: &Value, applied: &Value, who: &Applier) -> Result<Value, Vec<Conflict>> {
    let Applier {
        manager,
        api_version,
        subresource,
        has_status,
        force,
        now,
    } = *who;
    let mut entries = read_entries(current);
    let applied_paths: Vec<Path> = leaf_paths(applied)
        .into_iter()
        .filter(|p| in_scope(p, subresource, has_status))
        .collect();
    let mine =
        |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource == subresource;
    let previously: Vec<Path> = entries
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.paths.clone())
        .collect();

    let mut merged = current.clone();
    let mut scoped = applied.clone();
    // Fields outside the scope of this endpoint are ignored, as a status apply ignores spec.
    for p in leaf_paths(applied) {
        if !in_scope(&p, subresource, has_status) {
            remove_path(&mut scoped, &p);
        }
    }
    json_patch::merge(&mut merged, &scoped);

    let mut conflicts = vec![];
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        let mut keep = vec![];
        for q in std::mem::take(&mut e.paths) {
            let hit = applied_paths.iter().any(|p| overlaps(p, &q))
                && get_path(current, &q) != get_path(&merged, &q);
            if hit && !force {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: q.clone(),
                });
            }
            // A forced apply (or an equal value) takes the field over / shares it.
            if !(hit && force) {
                keep.push(q);
            }
        }
        e.paths = keep;
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    // Fields this manager applied before and dropped now go away unless someone else owns them.
    for p in previously.iter().filter(|p| {
        !applied_paths
            .iter()
            .any(|a| a.len() >= p.len() && a[..p.len()] == p[..])
    }) {
        let owned = entries
            .iter()
            .filter(|e| !mine(e))
            .any(|e| e.paths.iter().any(|q| overlaps(q, p)));
        if !owned {
            remove_path(&mut merged, p);
        }
    }
    entries.retain(|e| !mine(e));
    entries.push(Entry {
        manager: manager.into(),
        operation: "Apply".into(),
        api_version: api_version.into(),
        subresource: subresource.into(),
        time: now.into(),
        paths: applied_paths,
    });
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// The apiserver's conflict message: `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let dotted = |p: &Path| format!(".{}", p.join("."));
    if conflicts.len() == 1 {
        let c = &conflicts[0];
        format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
            c.manager,
            c.api_version,
            dotted(&c.path)
        )
    } else {
        let mut s = format!("Apply failed with {} conflicts: ", conflicts.len());
        let lines: Vec<String> = conflicts
            .iter()
            .map(|c| {
                format!(
                    "conflict with \"{}\" using {}: {}",
                    c.manager,
                    c.api_version,
                    dotted(&c.path)
                )
            })
            .collect();
        s.push_str(&lines.join("\n"));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(manager: &str, force: bool) -> Applier<'_> {
        Applier {
            manager,
            api_version: "v1",
            subresource: "",
            has_status: false,
            force,
            now: "t",
        }
    }

    fn obj() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d"}})
    }

    #[test]
    fn apply_conflicts_force_and_removal() {
        let a = apply(
            &obj(),
            &json!({"data": {"x": "1", "y": "2"}}),
            &who("m1", false),
        )
        .unwrap();
        // Same value from another manager: shared ownership, no conflict.
        let b = apply(&a, &json!({"data": {"x": "1"}}), &who("m2", false)).unwrap();
        // Different value: conflict.
        let err = apply(&b, &json!({"data": {"x": "9"}}), &who("m2", false)).unwrap_err();
        assert_eq!(err[0].manager, "m1");
        assert!(conflict_message(&err).contains(".data.x"));
        let c = apply(&b, &json!({"data": {"x": "9"}}), &who("m2", true)).unwrap();
        assert_eq!(c["data"]["x"], "9");
        // m1 stops applying y: removed. It stops applying x: kept, since m2 owns it.
        let d = apply(&c, &json!({"data": {}}), &who("m1", false)).unwrap();
        assert!(d["data"].get("y").is_none());
        assert_eq!(d["data"]["x"], "9");
    }
}
