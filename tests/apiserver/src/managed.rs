//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Fields are tracked as leaf paths. Objects are walked key by key; lists are walked according to
//! their list type, as structured-merge-diff does: `map` lists (a CRD's
//! `x-kubernetes-list-type: map` with `x-kubernetes-list-map-keys`, or a built-in list with a merge
//! key such as `containers` by `name`) item by item (`k:{"name":"c"}`), `set` lists value by value
//! (`v:"x"`), and every other list whole (atomic). Apply merges into what others own, conflicts
//! on a field another manager set to a different value (unless forced, which takes it over), and
//! removes what a manager stops applying when nobody else owns it.

use serde_json::{json, Map, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Field(String),
    /// An item of a map list, by its key fields.
    Key(Map<String, Value>),
    /// An item of a set list, by value.
    Val(Value),
}

pub type Path = Vec<Seg>;

/// How a list is merged.
#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    Atomic,
    Map(Vec<String>),
    Set,
}

/// Knows the list types of one kind: from a CRD version's schema, or a table for built-ins.
#[derive(Debug, Clone, Default)]
pub struct Typer {
    schema: Option<std::sync::Arc<Value>>,
}

impl Typer {
    pub fn new(schema: Option<std::sync::Arc<Value>>) -> Self {
        Self { schema }
    }

    /// Whether the map at `path` is owned and applied as one value, as a built-in's
    /// `+mapType=atomic` / `+structType=atomic` field is: a Service's `spec.selector`, a
    /// workload's `spec.selector` (a LabelSelector). Applying it replaces the whole map, so keys
    /// another manager added go with a forced apply instead of surviving it.
    pub fn map_is_atomic(&self, path: &[Seg]) -> bool {
        self.schema.is_none()
            && matches!(path, [Seg::Field(a), Seg::Field(b)] if a == "spec" && b == "selector")
    }

    pub fn list_type(&self, path: &[Seg]) -> ListType {
        if matches!(path, [Seg::Field(m), Seg::Field(f)] if m == "metadata" && f == "finalizers") {
            return ListType::Set;
        }
        if matches!(path, [Seg::Field(m), Seg::Field(f)] if m == "metadata" && f == "ownerReferences")
        {
            return ListType::Map(vec!["uid".into()]);
        }
        match &self.schema {
            Some(schema) => {
                let mut node: &Value = schema;
                for seg in path {
                    let next = match seg {
                        Seg::Field(k) => node
                            .get("properties")
                            .and_then(|p| p.get(k))
                            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
                        Seg::Key(_) | Seg::Val(_) => node.get("items"),
                    };
                    match next {
                        Some(n) => node = n,
                        None => return ListType::Atomic,
                    }
                }
                match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("map") => {
                        let keys: Vec<String> = node
                            .get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|k| k.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default();
                        if keys.is_empty() {
                            ListType::Atomic
                        } else {
                            ListType::Map(keys)
                        }
                    }
                    Some("set") => ListType::Set,
                    _ => ListType::Atomic,
                }
            }
            None => {
                let Some(Seg::Field(name)) = path.last() else {
                    return ListType::Atomic;
                };
                let in_containers = path
                    .iter()
                    .any(|s| matches!(s, Seg::Field(f) if f.ends_with("ontainers")));
                match crate::strategic::builtin_merge_key(name, in_containers) {
                    Some(k) => ListType::Map(vec![k.to_string()]),
                    None => ListType::Atomic,
                }
            }
        }
    }
}

/// The key segment of a map-list item, if it has every key field.
fn item_key(item: &Value, keys: &[String]) -> Option<Map<String, Value>> {
    let mut sorted = keys.to_vec();
    sorted.sort();
    let mut m = Map::new();
    for k in sorted {
        m.insert(k.clone(), item.get(&k)?.clone());
    }
    Some(m)
}

/// Leaf paths of a value, skipping identity fields that nobody "owns".
pub fn leaf_paths(v: &Value, typer: &Typer) -> Vec<Path> {
    let mut out = vec![];
    walk(v, &mut vec![], &mut out, typer);
    out.retain(|p| !is_identity(p));
    out
}

fn field(p: &Path, i: usize) -> Option<&str> {
    match p.get(i) {
        Some(Seg::Field(f)) => Some(f),
        _ => None,
    }
}

fn is_identity(p: &Path) -> bool {
    match (field(p, 0), field(p, 1), p.len()) {
        (Some("apiVersion" | "kind" | "metadata"), None, 1) => true,
        (Some("metadata"), Some(f), 2) => matches!(
            f,
            "name"
                | "namespace"
                | "generateName"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "selfLink"
        ),
        (Some("metadata"), Some("managedFields"), _) => true,
        _ => false,
    }
}

fn walk(v: &Value, prefix: &mut Path, out: &mut Vec<Path>, typer: &Typer) {
    match v {
        Value::Object(m) if !m.is_empty() && !typer.map_is_atomic(prefix) => {
            for (k, child) in m {
                prefix.push(Seg::Field(k.clone()));
                walk(child, prefix, out, typer);
                prefix.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match typer.list_type(prefix) {
            ListType::Map(keys) if items.iter().all(|i| item_key(i, &keys).is_some()) => {
                for item in items {
                    let Some(key) = item_key(item, &keys) else {
                        continue;
                    };
                    prefix.push(Seg::Key(key));
                    // The item itself (".") and each of its fields.
                    out.push(prefix.clone());
                    if let Some(m) = item.as_object() {
                        for (k, child) in m {
                            prefix.push(Seg::Field(k.clone()));
                            walk(child, prefix, out, typer);
                            prefix.pop();
                        }
                    }
                    prefix.pop();
                }
            }
            ListType::Set if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
                for item in items {
                    prefix.push(Seg::Val(item.clone()));
                    out.push(prefix.clone());
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        },
        _ => {
            if !prefix.is_empty() {
                out.push(prefix.clone())
            }
        }
    }
}

fn find_item(items: &[Value], seg: &Seg) -> Option<usize> {
    items.iter().position(|i| match seg {
        Seg::Key(k) => k.iter().all(|(kk, kv)| i.get(kk) == Some(kv)),
        Seg::Val(v) => i == v,
        Seg::Field(_) => false,
    })
}

pub fn get_path<'a>(v: &'a Value, p: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in p {
        cur = match seg {
            Seg::Field(k) => cur.get(k)?,
            _ => {
                let items = cur.as_array()?;
                &items[find_item(items, seg)?]
            }
        };
    }
    Some(cur)
}

fn remove_path(v: &mut Value, p: &[Seg]) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        let next = match seg {
            Seg::Field(k) => cur.get_mut(k),
            _ => match cur.as_array_mut() {
                Some(items) => match find_item(items, seg) {
                    Some(i) => items.get_mut(i),
                    None => None,
                },
                None => None,
            },
        };
        match next {
            Some(c) => cur = c,
            None => return,
        }
    }
    match last {
        Seg::Field(k) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(k);
            }
        }
        _ => {
            if let Some(items) = cur.as_array_mut() {
                if let Some(i) = find_item(items, last) {
                    items.remove(i);
                }
            }
        }
    }
}

/// Merge `applied` into `target` following list types (objects recursively; map lists by key;
/// set lists by union; anything else replaced).
fn merge(target: &mut Value, applied: &Value, path: &mut Path, typer: &Typer) {
    match (target, applied) {
        (t @ Value::Object(_), a @ Value::Object(_)) if typer.map_is_atomic(path) => {
            *t = a.clone();
        }
        (Value::Object(t), Value::Object(a)) => {
            for (k, av) in a {
                path.push(Seg::Field(k.clone()));
                match t.get_mut(k) {
                    Some(tv) if !av.is_null() => merge(tv, av, path, typer),
                    _ => {
                        t.insert(k.clone(), av.clone());
                    }
                }
                path.pop();
            }
        }
        (t @ Value::Array(_), Value::Array(a)) => match typer.list_type(path) {
            ListType::Map(keys) => {
                let Value::Array(items) = t else { return };
                if !a
                    .iter()
                    .chain(items.iter())
                    .all(|i| item_key(i, &keys).is_some())
                {
                    *items = a.clone();
                    return;
                }
                for ai in a {
                    let Some(key) = item_key(ai, &keys) else {
                        continue;
                    };
                    let seg = Seg::Key(key);
                    path.push(seg.clone());
                    match find_item(items, &seg) {
                        Some(i) => merge(&mut items[i], ai, path, typer),
                        None => items.push(ai.clone()),
                    }
                    path.pop();
                }
            }
            ListType::Set => {
                let Value::Array(items) = t else { return };
                for ai in a {
                    if !items.contains(ai) {
                        items.push(ai.clone());
                    }
                }
            }
            ListType::Atomic => *t = Value::Array(a.clone()),
        },
        (t, a) => *t = a.clone(),
    }
}

/// Whether a path holds the same thing before and after: for a list item that is its presence
/// (its fields are owned and compared on their own), for anything else its value.
fn same_at(before: &Value, after: &Value, p: &Path) -> bool {
    match p.last() {
        Some(Seg::Key(_) | Seg::Val(_)) => {
            get_path(before, p).is_some() == get_path(after, p).is_some()
        }
        _ => get_path(before, p) == get_path(after, p),
    }
}

fn overlaps(a: &Path, b: &Path) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn seg_key(s: &Seg) -> String {
    match s {
        Seg::Field(f) => format!("f:{f}"),
        Seg::Key(k) => format!("k:{}", Value::Object(k.clone())),
        Seg::Val(v) => format!("v:{v}"),
    }
}

/// Paths to fieldsV1 (`{"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}}}}`).
pub fn to_fields_v1(paths: &[Path]) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for (i, seg) in p.iter().enumerate() {
            let entry = cur.entry(seg_key(seg)).or_insert_with(|| json!({}));
            let Some(m) = entry.as_object_mut() else {
                break;
            };
            // An owned list item is marked with "." inside its entry.
            if i + 1 == p.len() && !matches!(seg, Seg::Field(_)) {
                m.insert(".".into(), json!({}));
            }
            cur = m;
        }
    }
    Value::Object(root)
}

/// fieldsV1 back to leaf paths.
pub fn from_fields_v1(v: &Value) -> Vec<Path> {
    fn parse(k: &str) -> Option<Seg> {
        if let Some(f) = k.strip_prefix("f:") {
            Some(Seg::Field(f.to_string()))
        } else if let Some(j) = k.strip_prefix("k:") {
            serde_json::from_str::<Map<String, Value>>(j)
                .ok()
                .map(Seg::Key)
        } else if let Some(j) = k.strip_prefix("v:") {
            serde_json::from_str::<Value>(j).ok().map(Seg::Val)
        } else {
            None
        }
    }
    fn go(v: &Value, prefix: &mut Path, out: &mut Vec<Path>) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<(Seg, &Value)> = m
            .iter()
            .filter_map(|(k, c)| parse(k).map(|s| (s, c)))
            .collect();
        if m.contains_key(".") || (children.is_empty() && !prefix.is_empty()) {
            out.push(prefix.clone());
        }
        for (seg, child) in children {
            prefix.push(seg);
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
    let is_status = field(p, 0) == Some("status");
    match subresource {
        "status" => is_status || field(p, 0) == Some("metadata"),
        _ => !(has_status && is_status),
    }
}

/// Record an Update-operation write: the manager takes the fields whose values changed; fields
/// that disappeared are owned by nobody.
pub fn record_update(old: Option<&Value>, new: &mut Value, who: &Applier) {
    let Applier {
        manager,
        api_version,
        subresource,
        has_status,
        now,
        typer,
        ..
    } = *who;
    let mut entries = old.map(read_entries).unwrap_or_default();
    let empty = json!({});
    let old_v = old.unwrap_or(&empty);
    let new_paths = leaf_paths(new, typer);
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
                for c in changed {
                    if !e.paths.contains(&c) {
                        e.paths.push(c);
                    }
                }
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

/// Who writes, through which endpoint, and how.
pub struct Applier<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    /// `""` for the main resource, `"status"` for the status subresource.
    pub subresource: &'a str,
    /// Whether the resource has a status subresource (then the main resource ignores status).
    pub has_status: bool,
    pub force: bool,
    pub now: &'a str,
    pub typer: &'a Typer,
}

/// Server-side apply of `applied` onto `current` (which carries managedFields).
pub fn apply(current: &Value, applied: &Value, who: &Applier) -> Result<Value, Vec<Conflict>> {
    let Applier {
        manager,
        api_version,
        subresource,
        has_status,
        force,
        now,
        typer,
    } = *who;
    let mut entries = read_entries(current);
    let applied_paths: Vec<Path> = leaf_paths(applied, typer)
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

    let mut scoped = applied.clone();
    // Fields outside the scope of this endpoint are ignored, as a status apply ignores spec.
    for p in leaf_paths(applied, typer) {
        if !in_scope(&p, subresource, has_status) {
            remove_path(&mut scoped, &p);
        }
    }
    let mut merged = current.clone();
    merge(&mut merged, &scoped, &mut vec![], typer);

    let mut conflicts = vec![];
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        let mut keep = vec![];
        for q in std::mem::take(&mut e.paths) {
            let hit =
                applied_paths.iter().any(|p| overlaps(p, &q)) && !same_at(current, &merged, &q);
            if hit && !force {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: q.clone(),
                });
            }
            // A forced apply takes the field over; an equal value is shared.
            if !(hit && force) {
                keep.push(q);
            }
        }
        e.paths = keep;
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    // Fields this manager applied before and dropped now go away unless someone else owns them
    // (or something inside them).
    let dropped: Vec<&Path> = previously
        .iter()
        .filter(|p| {
            !applied_paths
                .iter()
                .any(|a| a.len() >= p.len() && a[..p.len()] == p[..])
        })
        .collect();
    for p in dropped {
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

fn dotted(p: &Path) -> String {
    let mut s = String::new();
    for seg in p {
        match seg {
            Seg::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Seg::Key(k) => s.push_str(&format!(
                "[{}]",
                k.iter()
                    .map(|(a, b)| format!("{a}={b}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            Seg::Val(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// The field of a conflict as the apiserver prints it (`.spec.containers[name="c"].image`).
pub fn conflict_field(c: &Conflict) -> String {
    dotted(&c.path)
}

/// The apiserver's conflict message: `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let line = |c: &Conflict| {
        format!(
            "conflict with \"{}\" using {}: {}",
            c.manager,
            c.api_version,
            dotted(&c.path)
        )
    };
    if conflicts.len() == 1 {
        format!("Apply failed with 1 conflict: {}", line(&conflicts[0]))
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            conflicts.iter().map(line).collect::<Vec<_>>().join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who<'a>(manager: &'a str, force: bool, typer: &'a Typer) -> Applier<'a> {
        Applier {
            manager,
            api_version: "v1",
            subresource: "",
            has_status: false,
            force,
            now: "t",
            typer,
        }
    }

    fn obj() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d"}})
    }

    #[test]
    fn apply_conflicts_force_and_removal() {
        let t = Typer::default();
        let a = apply(
            &obj(),
            &json!({"data": {"x": "1", "y": "2"}}),
            &who("m1", false, &t),
        )
        .unwrap();
        // Same value from another manager: shared ownership, no conflict.
        let b = apply(&a, &json!({"data": {"x": "1"}}), &who("m2", false, &t)).unwrap();
        // Different value: conflict.
        let err = apply(&b, &json!({"data": {"x": "9"}}), &who("m2", false, &t)).unwrap_err();
        assert_eq!(err[0].manager, "m1");
        assert!(conflict_message(&err).contains(".data.x"));
        let c = apply(&b, &json!({"data": {"x": "9"}}), &who("m2", true, &t)).unwrap();
        assert_eq!(c["data"]["x"], "9");
        // m1 stops applying y: removed. It stops applying x: kept, since m2 owns it.
        let d = apply(&c, &json!({"data": {}}), &who("m1", false, &t)).unwrap();
        assert!(d["data"].get("y").is_none());
        assert_eq!(d["data"]["x"], "9");
    }

    #[test]
    fn map_lists_are_owned_item_by_item() {
        let t = Typer::default();
        let dep =
            |containers: Value| json!({"spec": {"template": {"spec": {"containers": containers}}}});
        let base =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let a = apply(
            &base,
            &dep(json!([{"name": "main", "image": "a:1"}])),
            &who("operator", true, &t),
        )
        .unwrap();
        // Another manager adds a sidecar: both containers stay, each with its owner.
        let b = apply(
            &a,
            &dep(json!([{"name": "side", "image": "s:1"}])),
            &who("injector", false, &t),
        )
        .unwrap();
        let names: Vec<&str> = b["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["main", "side"]);
        let mf = b["metadata"]["managedFields"].to_string();
        assert!(mf.contains(r#"k:{\"name\":\"side\"}"#), "{mf}");
        // The operator re-applies (forced) its own container: the sidecar survives.
        let c = apply(
            &b,
            &dep(json!([{"name": "main", "image": "a:2"}])),
            &who("operator", true, &t),
        )
        .unwrap();
        assert_eq!(
            c["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            c["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:2"
        );
        // Conflict on a field inside another manager's item.
        let err = apply(
            &c,
            &dep(json!([{"name": "side", "image": "s:2"}])),
            &who("operator", false, &t),
        )
        .unwrap_err();
        assert_eq!(
            conflict_field(&err[0]),
            r#".spec.template.spec.containers[name="side"].image"#
        );
        // The injector stops applying its sidecar: the item goes.
        let d = apply(&c, &json!({}), &who("injector", false, &t)).unwrap();
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // fieldsV1 round-trips.
        for e in read_entries(&c) {
            assert_eq!(from_fields_v1(&to_fields_v1(&e.paths)).len(), e.paths.len());
        }
    }
}
