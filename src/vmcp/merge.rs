//! Merging the backends' lists into one (pure): each backend's tool selection and overrides,
//! then the conflict strategy, then one last rule shared by all strategies — a name that two
//! tools still share is left out (with a warning), so a client never calls the wrong tool.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::settings::{Selection, Strategy};
use crate::bridge::filter::Rewrite;

/// One tool as clients see it, and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// The name clients see and call.
    pub name: String,
    pub backend: usize,
    /// The backend's own name of the tool.
    pub original: String,
    /// The tool object clients get (name, description, annotations rewritten).
    pub tool: Value,
}

/// The tools of one backend after its selection and overrides; what the status counts.
pub fn select(sel: &Selection, tools: &[Value]) -> Vec<(String, Value)> {
    if sel.exclude_all {
        return Vec::new();
    }
    let rewrites: HashMap<&str, Rewrite> = sel
        .overrides
        .iter()
        .map(|(backend, o)| (backend.as_str(), Rewrite::of(backend, o)))
        .collect();
    // A tool whose name another tool was renamed to is shadowed by the rename (as the bridge).
    let renamed_to: Vec<&str> = rewrites
        .values()
        .filter_map(|r| r.name.as_deref())
        .collect();
    let mut out = Vec::new();
    for tool in tools {
        let Some(obj) = tool.as_object() else {
            continue;
        };
        let Some(original) = obj.get("name").and_then(Value::as_str) else {
            continue;
        };
        let rewrite = rewrites.get(original);
        if rewrite.is_none() && renamed_to.contains(&original) {
            continue;
        }
        let mut obj: Map<String, Value> = obj.clone();
        if let Some(r) = rewrite {
            r.apply(&mut obj);
        }
        let served = obj.get("name").and_then(Value::as_str).unwrap_or(original);
        if sel.filter.as_ref().is_some_and(|f| !f.contains(served)) {
            continue;
        }
        out.push((original.to_owned(), Value::Object(obj)));
    }
    out
}

/// The merged tool list: `lists[b]` is backend `b`'s tools after [`select`] (`None`: the
/// backend did not answer and takes no part), `names[b]` its name. Sorted by the backend's
/// order then the backend's own order, so pages are stable.
pub fn tools(
    strategy: &Strategy,
    names: &[String],
    lists: &[Option<Vec<(String, Value)>>],
) -> (Vec<Routed>, Vec<String>) {
    let mut offered: HashMap<String, usize> = HashMap::new();
    for list in lists.iter().flatten() {
        for (_, tool) in list {
            *offered.entry(served_name(tool)).or_default() += 1;
        }
    }
    let mut routed = Vec::new();
    let order: Vec<usize> = match strategy {
        Strategy::Priority(order) => order.clone(),
        _ => (0..lists.len()).collect(),
    };
    let mut taken: HashMap<String, usize> = HashMap::new();
    for b in order {
        let Some(list) = lists.get(b).and_then(Option::as_ref) else {
            continue;
        };
        for (original, tool) in list {
            let served = served_name(tool);
            let name = match strategy {
                Strategy::Prefix {
                    format,
                    only_conflicts,
                } => {
                    if *only_conflicts && offered.get(&served).copied().unwrap_or(0) < 2 {
                        served
                    } else {
                        format!("{}{served}", format.replace("{workload}", &names[b]))
                    }
                }
                Strategy::Priority(_) => {
                    if taken.contains_key(&served) {
                        continue;
                    }
                    served
                }
                Strategy::Manual => served,
            };
            *taken.entry(name.clone()).or_default() += 1;
            let mut tool = tool.clone();
            if let Some(obj) = tool.as_object_mut() {
                obj.insert("name".into(), Value::from(name.as_str()));
            }
            routed.push(Routed {
                name,
                backend: b,
                original: original.clone(),
                tool,
            });
        }
    }
    // Still two tools of one name (manual without overrides for it, or a prefix that made two
    // names equal): neither is served.
    let clashing: Vec<String> = taken
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| name)
        .collect();
    if !clashing.is_empty() {
        routed.retain(|r| !clashing.contains(&r.name));
    }
    let mut clashing = clashing;
    clashing.sort();
    routed.sort_by_key(|r| r.backend);
    (routed, clashing)
}

fn served_name(tool: &Value) -> String {
    tool.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Resources, templates or prompts: every backend's items in backend order; an item whose key
/// (`uri`, `uriTemplate` or `name`) an earlier backend already offers is left out. Returns the
/// items and, per item, its backend.
pub fn first_wins(key: &str, lists: &[Option<Vec<Value>>]) -> Vec<(usize, Value)> {
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut out = Vec::new();
    for (b, list) in lists.iter().enumerate() {
        for item in list.iter().flatten() {
            let Some(k) = item.get(key).and_then(Value::as_str) else {
                continue;
            };
            if seen.insert(k.to_owned(), ()).is_none() {
                out.push((b, item.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools_of(names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({"name": n, "description": n}))
            .collect()
    }

    fn merged(strategy: Strategy, sels: Vec<Selection>) -> (Vec<(String, String)>, Vec<String>) {
        let backends = ["a".to_string(), "b".to_string()];
        let raw = [tools_of(&["echo", "add"]), tools_of(&["echo", "time"])];
        let lists: Vec<_> = sels
            .iter()
            .zip(&raw)
            .map(|(s, t)| Some(select(s, t)))
            .collect();
        let (routed, clashing) = tools(&strategy, &backends, &lists);
        (
            routed
                .into_iter()
                .map(|r| (r.name, format!("{}:{}", backends[r.backend], r.original)))
                .collect(),
            clashing,
        )
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn strategies() {
        let none = || vec![Selection::default(), Selection::default()];
        let prefix = |only| Strategy::Prefix {
            format: "{workload}_".into(),
            only_conflicts: only,
        };
        assert_eq!(
            merged(prefix(false), none()).0,
            pairs(&[
                ("a_echo", "a:echo"),
                ("a_add", "a:add"),
                ("b_echo", "b:echo"),
                ("b_time", "b:time")
            ])
        );
        assert_eq!(
            merged(prefix(true), none()).0,
            pairs(&[
                ("a_echo", "a:echo"),
                ("add", "a:add"),
                ("b_echo", "b:echo"),
                ("time", "b:time")
            ])
        );
        assert_eq!(
            merged(Strategy::Priority(vec![1, 0]), none()).0,
            pairs(&[("add", "a:add"), ("echo", "b:echo"), ("time", "b:time")])
        );
        let (manual, clashing) = merged(Strategy::Manual, none());
        assert_eq!(manual, pairs(&[("add", "a:add"), ("time", "b:time")]));
        assert_eq!(clashing, vec!["echo".to_string()]);
        let renamed = Selection {
            overrides: serde_json::from_value(json!({"echo": {"name": "echo_a"}})).unwrap(),
            ..Default::default()
        };
        let filtered = Selection {
            filter: Some(["echo".to_string()].into_iter().collect()),
            ..Default::default()
        };
        assert_eq!(
            merged(Strategy::Manual, vec![renamed, filtered]).0,
            pairs(&[("echo_a", "a:echo"), ("add", "a:add"), ("echo", "b:echo")])
        );
    }
}
