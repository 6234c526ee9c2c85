//! The tools allow-list (`tools` / MCPToolConfig).
//!
//! Compatible with upstream: a `tools/list` result keeps only allowed tools, page by page (the
//! `nextCursor` stays as the server sent it), and a `tools/call` of any other tool gets JSON-RPC
//! error -32602 `tool not found` — exactly what calling a tool that does not exist gets, so the
//! filter does not reveal which tools are hidden.

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::Value;

/// The message of the error a disallowed `tools/call` gets.
pub const TOOL_NOT_FOUND: &str = "tool not found";

/// A set of tool names; an empty configuration means "no filter" and is represented by `None`
/// at the call sites.
#[derive(Debug, Clone)]
pub struct AllowList {
    names: HashSet<String>,
}

/// An allow-list entry that cannot be right.
#[derive(Debug, thiserror::Error)]
#[error("the tools allow-list has an empty name")]
pub struct EmptyToolName;

impl AllowList {
    /// Builds the list; `None` when `names` is empty (everything allowed).
    pub fn new<I, S>(names: I) -> Result<Option<Self>, EmptyToolName>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = HashSet::new();
        for name in names {
            let name = name.as_ref().trim();
            if name.is_empty() {
                return Err(EmptyToolName);
            }
            set.insert(name.to_owned());
        }
        Ok((!set.is_empty()).then_some(Self { names: set }))
    }

    pub fn allows(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Whether a `tools/call` request (its whole body) may go to the server. A call with no
    /// string `params.name` is let through: the server answers it with its own error.
    pub fn allows_call(&self, body: &Value) -> bool {
        match body.pointer("/params/name").and_then(Value::as_str) {
            Some(name) => self.allows(name),
            None => true,
        }
    }

    /// Filters a serialized `tools/list` response; returns it unchanged when it has no
    /// `result.tools` array (an error response, say).
    pub fn filter_list_response(&self, msg: Bytes) -> Bytes {
        let Ok(mut value) = serde_json::from_slice::<Value>(&msg) else {
            return msg;
        };
        let Some(tools) = value
            .pointer_mut("/result/tools")
            .and_then(Value::as_array_mut)
        else {
            return msg;
        };
        tools.retain(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| self.allows(name))
        });
        serde_json::to_vec(&value).map(Bytes::from).unwrap_or(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_allowed_tools_and_the_cursor() {
        let list = AllowList::new(["echo"]).unwrap().unwrap();
        let msg = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"secret"}],"nextCursor":"c2"}}"#,
        );
        let out: Value = serde_json::from_slice(&list.filter_list_response(msg)).unwrap();
        assert_eq!(out["result"]["tools"].as_array().unwrap().len(), 1);
        assert_eq!(out["result"]["nextCursor"], "c2");
    }

    #[test]
    fn empty_list_means_no_filter_and_blank_names_are_errors() {
        assert!(AllowList::new(Vec::<String>::new()).unwrap().is_none());
        assert!(AllowList::new([" "]).is_err());
    }
}
