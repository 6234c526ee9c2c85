//! The tools policy of an MCPToolConfig: the allow-list (`tools`) and the per-tool overrides
//! (`toolOverrides`: a new name, description or annotations, keyed by the backend's tool name).
//!
//! The semantics are upstream ToolHive's (`pkg/mcp/tool_filter.go`, the `tool-filter` and
//! `tool-call-filter` middlewares):
//! - `tools/list`: each tool is overridden first, then the allow-list is matched against the
//!   name clients see (the new name of a renamed tool), page by page; `nextCursor` stays as the
//!   server sent it.
//! - `tools/call`: the allow-list is matched against the name the client sent; a call of any
//!   other tool gets JSON-RPC error -32602 `tool not found` — exactly what calling a tool that
//!   does not exist gets, so the filter does not reveal which tools are hidden. A call of a new
//!   name goes to the server under the backend's name. Any other name goes through unchanged:
//!   without an allow-list, the backend name of a renamed tool still reaches the server (as
//!   upstream); an allow-list (of the new names) refuses it.
//!
//! Two additions of ours: `annotations` overrides are applied (upstream applies them only in its
//! virtual MCP server), and a server tool whose name another tool was renamed to is left out of
//! the list, since its name now calls the renamed tool (upstream would list two tools of one
//! name).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use serde_json::{Map, Value};

use super::config::ToolOverride;

/// The message of the error a refused `tools/call` gets.
pub const TOOL_NOT_FOUND: &str = "tool not found";

/// The allow-list and the overrides; `None` at the call sites when neither is configured, so
/// that a bridge without them does no work per message.
#[derive(Debug)]
pub struct ToolPolicy {
    /// Allowed names as clients see them; `None` allows every tool.
    allow: Option<HashSet<String>>,
    /// The overrides that change something, by backend name.
    overrides: HashMap<String, Rewrite>,
    /// New name → backend name, for the renamed tools only.
    renamed: HashMap<String, String>,
    /// Whether the log already says that a server tool is shadowed by a rename.
    warned_shadowed: AtomicBool,
}

/// What one override does to a tool in a `tools/list` result.
#[derive(Debug)]
pub(crate) struct Rewrite {
    pub(crate) name: Option<String>,
    description: Option<String>,
    /// `annotations` fields to set, in the MCP spelling.
    annotations: Vec<(&'static str, Value)>,
}

/// A tools configuration that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolsError {
    #[error("the tools allow-list has an empty name")]
    EmptyToolName,
    #[error("toolOverrides has an entry with an empty tool name")]
    EmptyOverrideKey,
    #[error("toolOverrides[{0:?}].name is empty: leave it out to keep the tool's name")]
    EmptyNewName(String),
    #[error("toolOverrides renames both {first:?} and {second:?} to {name:?}")]
    SameNewName {
        name: String,
        first: String,
        second: String,
    },
    #[error("toolOverrides renames {from:?} to {name:?}, the name of another tool that keeps it")]
    RenameOntoTool { from: String, name: String },
}

/// What [`ToolPolicy::screen_call`] did to a `tools/call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screened {
    /// Goes to the server as it is.
    Unchanged,
    /// Goes to the server with the backend's name in `params.name`.
    Renamed,
    /// Must be answered with -32602 [`TOOL_NOT_FOUND`] and never reach the server.
    Refused,
}

impl Rewrite {
    pub(crate) fn of(backend: &str, o: &ToolOverride) -> Self {
        let mut annotations = Vec::new();
        if let Some(a) = &o.annotations {
            if let Some(title) = &a.title {
                annotations.push(("title", Value::from(title.as_str())));
            }
            for (key, hint) in [
                ("readOnlyHint", a.read_only_hint),
                ("destructiveHint", a.destructive_hint),
                ("idempotentHint", a.idempotent_hint),
                ("openWorldHint", a.open_world_hint),
            ] {
                if let Some(hint) = hint {
                    annotations.push((key, Value::Bool(hint)));
                }
            }
        }
        Self {
            name: o.name.clone().filter(|n| n != backend),
            description: o.description.clone(),
            annotations,
        }
    }

    pub(crate) fn is_noop(&self) -> bool {
        self.name.is_none() && self.description.is_none() && self.annotations.is_empty()
    }

    pub(crate) fn apply(&self, tool: &mut Map<String, Value>) {
        if let Some(name) = &self.name {
            tool.insert("name".into(), Value::from(name.as_str()));
        }
        if let Some(description) = &self.description {
            tool.insert("description".into(), Value::from(description.as_str()));
        }
        if self.annotations.is_empty() {
            return;
        }
        let slot = tool
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(annotations) = slot {
            for (key, value) in &self.annotations {
                annotations.insert((*key).into(), value.clone());
            }
        }
    }
}

impl ToolPolicy {
    /// Checks and builds the policy; `None` when `allow` is empty (everything allowed) and no
    /// override changes anything.
    ///
    /// Every override reserves the name it leaves its tool with, so two tools renamed to one
    /// name, or a rename onto the name of another overridden tool that keeps it, are errors.
    /// Renames onto tools the file does not mention cannot be checked before the server
    /// answers: such a tool is left out of the list (see the module documentation).
    pub fn new<I, S>(
        allow: I,
        overrides: &BTreeMap<String, ToolOverride>,
    ) -> Result<Option<Self>, ToolsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names = HashSet::new();
        for name in allow {
            let name = name.as_ref().trim();
            if name.is_empty() {
                return Err(ToolsError::EmptyToolName);
            }
            names.insert(name.to_owned());
        }
        // The name each overridden tool is served under → its backend name.
        let mut served: HashMap<&str, &str> = HashMap::new();
        for (backend, o) in overrides {
            if backend.trim().is_empty() {
                return Err(ToolsError::EmptyOverrideKey);
            }
            if o.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                return Err(ToolsError::EmptyNewName(backend.clone()));
            }
            let name = o.name.as_deref().unwrap_or(backend);
            let Some(other) = served.insert(name, backend) else {
                continue;
            };
            let renames = |b: &str| b != name;
            return Err(match (renames(other), renames(backend)) {
                (true, true) => ToolsError::SameNewName {
                    name: name.to_owned(),
                    first: other.to_owned(),
                    second: backend.clone(),
                },
                (true, false) => ToolsError::RenameOntoTool {
                    from: other.to_owned(),
                    name: name.to_owned(),
                },
                _ => ToolsError::RenameOntoTool {
                    from: backend.clone(),
                    name: name.to_owned(),
                },
            });
        }
        let overrides: HashMap<String, Rewrite> = overrides
            .iter()
            .map(|(backend, o)| (backend.clone(), Rewrite::of(backend, o)))
            .filter(|(_, r)| !r.is_noop())
            .collect();
        let renamed: HashMap<String, String> = overrides
            .iter()
            .filter_map(|(backend, r)| Some((r.name.clone()?, backend.clone())))
            .collect();
        if names.is_empty() && overrides.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            allow: (!names.is_empty()).then_some(names),
            overrides,
            renamed,
            warned_shadowed: AtomicBool::new(false),
        }))
    }

    /// Whether clients may see and call the tool they know as `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.allow.as_ref().is_none_or(|allow| allow.contains(name))
    }

    /// Allow-list entries that name a renamed tool by its backend name (and are nobody's new
    /// name): they hide the tool from the list and let clients call its old name, which is
    /// rarely what was meant. Pairs of (entry, the new name to list instead).
    pub fn allowed_old_names(&self) -> Vec<(&str, &str)> {
        let Some(allow) = &self.allow else {
            return Vec::new();
        };
        let mut found: Vec<(&str, &str)> = allow
            .iter()
            .filter(|name| !self.renamed.contains_key(name.as_str()))
            .filter_map(|name| {
                let new = self.overrides.get(name)?.name.as_deref()?;
                Some((name.as_str(), new))
            })
            .collect();
        found.sort_unstable();
        found
    }

    /// Screens a `tools/call` request (its whole body): refused, or allowed with the backend's
    /// name put in for a new one. A call with no string `params.name` (positional params, no
    /// name) fails closed under an allow-list, which cannot vouch for it; without one it goes
    /// through and the server answers it with its own error.
    pub fn screen_call(&self, body: &mut Value) -> Screened {
        let unnamed = if self.allow.is_some() {
            Screened::Refused
        } else {
            Screened::Unchanged
        };
        let Some(slot) = body.get_mut("params").and_then(|p| p.get_mut("name")) else {
            return unnamed;
        };
        let Some(called) = slot.as_str() else {
            return unnamed;
        };
        if !self.allows(called) {
            return Screened::Refused;
        }
        match self.renamed.get(called) {
            Some(backend) => {
                *slot = Value::from(backend.as_str());
                Screened::Renamed
            }
            None => Screened::Unchanged,
        }
    }

    /// Overrides and filters a serialized `tools/list` response; returns it unchanged when it
    /// has no `result.tools` array (an error response, say) or nothing in it changes.
    pub fn rewrite_list_response(&self, msg: Bytes) -> Bytes {
        let Ok(mut value) = serde_json::from_slice::<Value>(&msg) else {
            return msg;
        };
        let changed = match &mut value {
            // A batch's answer (protocol revisions before 2025-06-18): each reply on its own.
            Value::Array(replies) => replies.iter_mut().fold(false, |changed, reply| {
                self.rewrite_list_value(reply) | changed
            }),
            reply => self.rewrite_list_value(reply),
        };
        if !changed {
            return msg;
        }
        serde_json::to_vec(&value).map(Bytes::from).unwrap_or(msg)
    }

    /// Rewrites one reply's `result.tools` in place; whether anything changed.
    fn rewrite_list_value(&self, reply: &mut Value) -> bool {
        let Some(tools) = reply
            .pointer_mut("/result/tools")
            .and_then(Value::as_array_mut)
        else {
            return false;
        };
        let before = tools.len();
        let mut changed = false;
        tools.retain_mut(|tool| match self.rewrite_tool(tool) {
            Some(rewritten) => {
                changed |= rewritten;
                true
            }
            None => false,
        });
        changed || tools.len() != before
    }

    /// One tool of a list: `None` when it is left out, else whether it was rewritten.
    fn rewrite_tool(&self, tool: &mut Value) -> Option<bool> {
        // A tool without a name breaks the spec; only an allow-list hides anything.
        let Some(obj) = tool.as_object_mut() else {
            return self.allow.is_none().then_some(false);
        };
        let Some(name) = obj.get("name").and_then(Value::as_str) else {
            return self.allow.is_none().then_some(false);
        };
        let rewrite = self.overrides.get(name);
        if rewrite.is_none() && self.renamed.contains_key(name) {
            self.warn_shadowed(name);
            return None;
        }
        let served = rewrite.and_then(|r| r.name.as_deref()).unwrap_or(name);
        if !self.allows(served) {
            return None;
        }
        match rewrite {
            Some(rewrite) => {
                rewrite.apply(obj);
                Some(true)
            }
            None => Some(false),
        }
    }

    fn warn_shadowed(&self, name: &str) {
        if !self.warned_shadowed.swap(true, Ordering::Relaxed) {
            let backend = self.renamed.get(name).map_or("", String::as_str);
            tracing::warn!(
                tool = name,
                renamed = backend,
                "toolOverrides renames a tool to the name of another tool of the server: that \
                 tool is left out of tools/list, and calls of its name go to the renamed tool"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn overrides(v: Value) -> BTreeMap<String, ToolOverride> {
        serde_json::from_value(v).unwrap()
    }

    fn policy(allow: &[&str], o: Value) -> ToolPolicy {
        ToolPolicy::new(allow, &overrides(o)).unwrap().unwrap()
    }

    fn list(policy: &ToolPolicy, tools: Value) -> Value {
        let msg =
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools, "nextCursor": "c2"}});
        let out = policy.rewrite_list_response(Bytes::from(msg.to_string()));
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["result"]["nextCursor"], "c2", "the cursor is kept");
        out["result"]["tools"].clone()
    }

    #[test]
    fn keeps_only_allowed_tools_and_the_cursor() {
        let p = policy(&["echo"], json!({}));
        let tools = list(&p, json!([{"name": "echo"}, {"name": "secret"}]));
        assert_eq!(tools, json!([{"name": "echo"}]));
    }

    #[test]
    fn nothing_configured_means_no_policy() {
        let none = BTreeMap::new();
        assert!(ToolPolicy::new(Vec::<String>::new(), &none)
            .unwrap()
            .is_none());
        // An override that changes nothing is no policy either (admission accepts `{}`).
        assert!(ToolPolicy::new(
            Vec::<String>::new(),
            &overrides(json!({"a": {}, "b": {"name": "b"}}))
        )
        .unwrap()
        .is_none());
    }

    /// Config validation: each case is (allow-list, overrides, the error or `null` when valid).
    #[test]
    fn configurations_are_checked() {
        let cases = [
            (json!([" "]), json!({}), Some(ToolsError::EmptyToolName)),
            (
                json!([]),
                json!({"": {"name": "x"}}),
                Some(ToolsError::EmptyOverrideKey),
            ),
            (
                json!([]),
                json!({"fetch": {"name": " "}}),
                Some(ToolsError::EmptyNewName("fetch".into())),
            ),
            (
                json!([]),
                json!({"a": {"name": "x"}, "b": {"name": "x"}}),
                Some(ToolsError::SameNewName {
                    name: "x".into(),
                    first: "a".into(),
                    second: "b".into(),
                }),
            ),
            // `a` keeps its name (only its description changes); `b` may not take it.
            (
                json!([]),
                json!({"a": {"description": "d"}, "b": {"name": "a"}}),
                Some(ToolsError::RenameOntoTool {
                    from: "b".into(),
                    name: "a".into(),
                }),
            ),
            (
                json!([]),
                json!({"a": {"name": "z"}, "z": {}}),
                Some(ToolsError::RenameOntoTool {
                    from: "a".into(),
                    name: "z".into(),
                }),
            ),
            // A swap and a chain are fine: every tool ends up with a name of its own.
            (
                json!([]),
                json!({"a": {"name": "b"}, "b": {"name": "a"}}),
                None,
            ),
            (
                json!([]),
                json!({"a": {"name": "b"}, "b": {"name": "c"}}),
                None,
            ),
            (
                json!([]),
                json!({"a": {"name": "a", "description": "same name"}}),
                None,
            ),
        ];
        for (allow, o, want) in cases {
            let allow: Vec<String> = serde_json::from_value(allow).unwrap();
            let got = ToolPolicy::new(&allow, &overrides(o.clone())).err();
            assert_eq!(got, want, "{o}");
        }
    }

    #[test]
    fn unknown_override_fields_are_config_errors() {
        let bad: Result<BTreeMap<String, ToolOverride>, _> =
            serde_json::from_value(json!({"a": {"nmae": "b"}}));
        assert!(bad.is_err());
        let bad: Result<BTreeMap<String, ToolOverride>, _> =
            serde_json::from_value(json!({"a": {"annotations": {"readOnly": true}}}));
        assert!(bad.is_err());
    }

    /// `tools/list` rewriting: (allow-list, overrides, the server's tools, what clients see).
    #[test]
    fn lists_are_overridden_then_filtered() {
        let everything = json!([
            {"name": "echo", "description": "Echoes", "inputSchema": {"type": "object"}},
            {"name": "get-sum", "description": "Adds", "annotations": {"title": "Sum", "readOnlyHint": false}},
            {"name": "get-env"},
        ]);
        let cases = [
            // A rename with a new description; the rest of the tool is kept.
            (
                json!([]),
                json!({"echo": {"name": "say", "description": "Says it back"}}),
                json!([
                    {"name": "say", "description": "Says it back", "inputSchema": {"type": "object"}},
                    {"name": "get-sum", "description": "Adds", "annotations": {"title": "Sum", "readOnlyHint": false}},
                    {"name": "get-env"},
                ]),
            ),
            // The allow-list matches the new name, not the backend's.
            (
                json!(["say", "get-sum"]),
                json!({"echo": {"name": "say"}}),
                json!([
                    {"name": "say", "description": "Echoes", "inputSchema": {"type": "object"}},
                    {"name": "get-sum", "description": "Adds", "annotations": {"title": "Sum", "readOnlyHint": false}},
                ]),
            ),
            (json!(["echo"]), json!({"echo": {"name": "say"}}), json!([])),
            // Annotations: per field; unset fields keep the server's; created when absent.
            (
                json!(["get-sum", "get-env"]),
                json!({
                    "get-sum": {"annotations": {"readOnlyHint": true, "idempotentHint": true}},
                    "get-env": {"annotations": {"title": "Environment", "openWorldHint": false}},
                }),
                json!([
                    {"name": "get-sum", "description": "Adds",
                     "annotations": {"title": "Sum", "readOnlyHint": true, "idempotentHint": true}},
                    {"name": "get-env", "annotations": {"title": "Environment", "openWorldHint": false}},
                ]),
            ),
            // A swap.
            (
                json!([]),
                json!({"echo": {"name": "get-env"}, "get-env": {"name": "echo"}}),
                json!([
                    {"name": "get-env", "description": "Echoes", "inputSchema": {"type": "object"}},
                    {"name": "get-sum", "description": "Adds", "annotations": {"title": "Sum", "readOnlyHint": false}},
                    {"name": "echo"},
                ]),
            ),
            // A rename onto a server tool without an override of its own shadows that tool.
            (
                json!([]),
                json!({"echo": {"name": "get-env"}}),
                json!([
                    {"name": "get-env", "description": "Echoes", "inputSchema": {"type": "object"}},
                    {"name": "get-sum", "description": "Adds", "annotations": {"title": "Sum", "readOnlyHint": false}},
                ]),
            ),
        ];
        for (allow, o, want) in cases {
            let allow: Vec<String> = serde_json::from_value(allow).unwrap();
            let p = ToolPolicy::new(&allow, &overrides(o.clone()))
                .unwrap()
                .unwrap();
            assert_eq!(list(&p, everything.clone()), want, "{allow:?} {o}");
        }
    }

    #[test]
    fn unchanged_lists_are_passed_through_byte_for_byte() {
        let p = policy(&[], json!({"other": {"name": "x"}}));
        let msg = Bytes::from_static(
            br#"{"id":1,"jsonrpc":"2.0","result":{"tools":[{"name":"echo", "z":1,"a":2}]}}"#,
        );
        assert_eq!(p.rewrite_list_response(msg.clone()), msg);
        let error = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1}}"#);
        assert_eq!(p.rewrite_list_response(error.clone()), error);
    }

    #[test]
    fn a_batch_answer_has_each_tools_list_rewritten() {
        let p = policy(&["echo"], json!({}));
        let batch = json!([
            {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "echo"}, {"name": "get-env"}]}},
            {"jsonrpc": "2.0", "id": 2, "result": {"content": []}},
        ]);
        let out: Value =
            serde_json::from_slice(&p.rewrite_list_response(Bytes::from(batch.to_string())))
                .unwrap();
        assert_eq!(
            out[0]["result"]["tools"],
            json!([{"name": "echo"}]),
            "{out}"
        );
        assert_eq!(out[1], batch[1]);
    }

    /// `tools/call` screening: (allow-list, overrides, the name called, the outcome, the name
    /// the server gets).
    #[test]
    fn calls_are_screened_and_renamed() {
        let rename =
            json!({"echo": {"name": "say", "description": "d"}, "get-sum": {"description": "d"}});
        let cases = [
            (json!([]), rename.clone(), "say", Screened::Renamed, "echo"),
            // Upstream: with no allow-list, the old name of a renamed tool goes through.
            (
                json!([]),
                rename.clone(),
                "echo",
                Screened::Unchanged,
                "echo",
            ),
            (
                json!([]),
                rename.clone(),
                "get-sum",
                Screened::Unchanged,
                "get-sum",
            ),
            (
                json!(["say", "get-sum"]),
                rename.clone(),
                "say",
                Screened::Renamed,
                "echo",
            ),
            // With one (of the names clients see), the old name is refused like any other.
            (
                json!(["say", "get-sum"]),
                rename.clone(),
                "echo",
                Screened::Refused,
                "echo",
            ),
            (
                json!(["say", "get-sum"]),
                rename.clone(),
                "get-env",
                Screened::Refused,
                "get-env",
            ),
            (
                json!(["say"]),
                rename.clone(),
                "nope",
                Screened::Refused,
                "nope",
            ),
            (
                json!([]),
                json!({"a": {"name": "b"}, "b": {"name": "a"}}),
                "a",
                Screened::Renamed,
                "b",
            ),
            (
                json!([]),
                json!({"a": {"name": "b"}, "b": {"name": "a"}}),
                "b",
                Screened::Renamed,
                "a",
            ),
        ];
        for (allow, o, called, outcome, sent) in cases {
            let allow: Vec<String> = serde_json::from_value(allow).unwrap();
            let p = ToolPolicy::new(&allow, &overrides(o.clone()))
                .unwrap()
                .unwrap();
            let mut body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                  "params": {"name": called, "arguments": {"x": 1}}});
            assert_eq!(p.screen_call(&mut body), outcome, "{allow:?} {o} {called}");
            assert_eq!(body["params"]["name"], sent, "{allow:?} {o} {called}");
            assert_eq!(body["params"]["arguments"], json!({"x": 1}));
        }
        // No name to screen: refused under an allow-list (positional params would otherwise
        // reach a server that accepts them); without one, the server answers.
        let with_list = policy(&["say"], rename.clone());
        let without = ToolPolicy::new(Vec::<String>::new(), &overrides(rename))
            .unwrap()
            .unwrap();
        for params in [json!({}), json!(["say"]), json!({"name": 5})] {
            let mut body =
                json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params});
            assert_eq!(
                with_list.screen_call(&mut body),
                Screened::Refused,
                "{params}"
            );
            assert_eq!(
                without.screen_call(&mut body),
                Screened::Unchanged,
                "{params}"
            );
        }
    }

    #[test]
    fn allow_lists_naming_old_names_are_found() {
        let p = policy(
            &["fetch", "b", "c"],
            json!({"fetch": {"name": "web_fetch"}, "a": {"name": "b"}, "b": {"name": "c"}}),
        );
        // `b` is renamed, but `a` now goes by `b`: listing `b` is fine.
        assert_eq!(p.allowed_old_names(), [("fetch", "web_fetch")]);
    }
}
