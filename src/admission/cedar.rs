//! Cedar policies, checked the way the data path will read them: each string is one policy
//! (as upstream's authorizer parses them), and the set must validate against the entity model
//! of upstream's Cedar authorizer (`pkg/authz/authorizers/cedar`):
//!
//! - principal `Client::"<sub claim>"`, a member of group entities (`THVGroup`, or the
//!   configured `groupEntityType`) synthesised from the token's group and role claims;
//! - actions `Action::"call_tool"`, `"get_prompt"`, `"read_resource"` on `Tool`, `Prompt` and
//!   `Resource`, and `"list_tools"`, `"list_prompts"`, `"list_resources"` on `FeatureType`;
//! - every resource a member of `MCP::"<server name>"`;
//! - entity types that `entities_json` declares (with their parents), which policies may use.
//!
//! Attributes are not declared: claims (`principal.claim_*`, `context.claim_*`), arguments
//! (`arg_*`) and the attributes of entities from `entities_json` are whatever the caller's
//! token and the request carry, so a typed record would refuse policies upstream runs. What the
//! validator is trusted with is the shape: unknown entity types and actions, an action applied
//! to a resource type it never sees (a policy that can never match), wrong extension calls.

use cedar_policy::{
    Policy, PolicyId, PolicySet, Schema, ValidationError, ValidationMode, ValidationWarning,
    Validator,
};
use miette::Diagnostic;
use serde_json::Value;
use std::collections::BTreeSet;

/// The group entity type when none is configured (upstream's default).
pub const DEFAULT_GROUP_ENTITY_TYPE: &str = "THVGroup";

/// The actions of upstream's authorizer, with the resource type each one is asked about.
pub const ACTIONS: &[(&str, &str)] = &[
    ("call_tool", "Tool"),
    ("get_prompt", "Prompt"),
    ("read_resource", "Resource"),
    ("list_tools", "FeatureType"),
    ("list_prompts", "FeatureType"),
    ("list_resources", "FeatureType"),
];

/// Entity types of the model besides the group type.
const MODEL_TYPES: &[&str] = &["Client", "MCP", "Tool", "Prompt", "Resource", "FeatureType"];

/// One problem with a policy set, placed as precisely as Cedar places it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The index of the policy in the list (`None`: the entities, or the set as a whole).
    pub index: Option<usize>,
    /// 1-based line and column inside that policy's text, when Cedar points at a place.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl PolicyProblem {
    /// `line L, column C: message`, or the message alone.
    pub fn detail(&self) -> String {
        match self.position {
            Some((line, column)) => format!("line {line}, column {column}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// Checks `policies` (one Cedar policy per string) against the authorizer's entity model, with
/// `entities_json` (upstream's format: a JSON array of `{uid, attrs, parents}`) and the group
/// entity type in force. Empty when everything parses and validates.
pub fn check(
    policies: &[String],
    entities_json: Option<&str>,
    group_entity_type: Option<&str>,
) -> Vec<PolicyProblem> {
    let mut problems = Vec::new();
    let extra_types = match entities_json.map(entity_types) {
        Some(Err(message)) => {
            problems.push(PolicyProblem {
                index: None,
                position: None,
                message,
            });
            BTreeSet::new()
        }
        Some(Ok(types)) => types,
        None => BTreeSet::new(),
    };
    let mut set = PolicySet::new();
    for (i, text) in policies.iter().enumerate() {
        match Policy::parse(Some(policy_id(i)), text) {
            Ok(p) => {
                // Ids are unique by construction; a failure would be ours, not the user's.
                let _ = set.add(p);
            }
            Err(errors) => {
                for e in errors.iter() {
                    problems.push(PolicyProblem {
                        index: Some(i),
                        position: first_label(e, text),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    let group = group_entity_type
        .filter(|g| !g.is_empty())
        .unwrap_or(DEFAULT_GROUP_ENTITY_TYPE);
    let schema = match schema(group, &extra_types) {
        Ok(s) => s,
        Err(message) => {
            problems.push(PolicyProblem {
                index: None,
                position: None,
                message,
            });
            return problems;
        }
    };
    let result = Validator::new(schema).validate(&set, ValidationMode::Strict);
    for e in result.validation_errors() {
        if is_about_attributes(e) {
            continue;
        }
        problems.push(located(e.policy_id(), e, policies, e.to_string()));
    }
    for w in result.validation_warnings() {
        // Only what makes a policy dead on arrival: the rest (confusable identifiers, ...) is
        // style.
        if let ValidationWarning::InvalidActionApplication(_) = w {
            problems.push(located(
                w.policy_id(),
                w,
                policies,
                format!("{w}: no request the authorizer makes can match this policy"),
            ));
        }
    }
    problems.sort_by_key(|p| (p.index, p.position));
    problems
}

/// Errors about attributes (claims, arguments, entity attributes): undeclared on purpose, see
/// the module documentation. Everything else is a real problem.
fn is_about_attributes(e: &ValidationError) -> bool {
    matches!(
        e,
        ValidationError::UnsafeAttributeAccess(_)
            | ValidationError::UnsafeOptionalAttributeAccess(_)
            | ValidationError::UnsafeTagAccess(_)
            | ValidationError::NoTagsAllowed(_)
    )
}

fn policy_id(i: usize) -> PolicyId {
    PolicyId::new(format!("policy{i}"))
}

fn index_of(id: &PolicyId) -> Option<usize> {
    id.to_string().strip_prefix("policy")?.parse().ok()
}

fn located(
    id: &PolicyId,
    d: &dyn Diagnostic,
    policies: &[String],
    message: String,
) -> PolicyProblem {
    let index = index_of(id);
    let position = index
        .and_then(|i| policies.get(i))
        .and_then(|text| first_label(d, text));
    PolicyProblem {
        index,
        position,
        message,
    }
}

/// The 1-based line and column of the first place a diagnostic points at in `text`.
fn first_label(d: &dyn Diagnostic, text: &str) -> Option<(usize, usize)> {
    let offset = d.labels()?.next()?.offset();
    Some(line_column(text, offset))
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `str::floor_char_boundary` is not stable on our MSRV.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, i: usize) -> usize {
        let mut i = i.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// The entity types named in upstream's `entities_json` (uids and parents), or why it cannot
/// be read. Upstream accepts a uid as `{"type": T, "id": I}`, `{"__entity": {...}}` or the
/// string `T::"id"` (also written `T::id`).
fn entity_types(json: &str) -> Result<BTreeSet<String>, String> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("entitiesJson is not valid JSON: {e}"))?;
    let Value::Array(entities) = value else {
        return Err("entitiesJson must be a JSON array of entities".into());
    };
    let mut types = BTreeSet::new();
    for (i, entity) in entities.iter().enumerate() {
        let uid = entity
            .get("uid")
            .ok_or_else(|| format!("entitiesJson[{i}] has no uid"))?;
        types.insert(uid_type(uid).ok_or_else(|| {
            format!("entitiesJson[{i}].uid is not an entity uid (Type::\"id\" or {{type, id}})")
        })?);
        for (j, parent) in entity
            .get("parents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            types.insert(
                uid_type(parent).ok_or_else(|| {
                    format!("entitiesJson[{i}].parents[{j}] is not an entity uid")
                })?,
            );
        }
    }
    Ok(types)
}

fn uid_type(uid: &Value) -> Option<String> {
    match uid {
        Value::String(s) => {
            let (t, id) = s.rsplit_once("::")?;
            (!t.is_empty() && !id.is_empty()).then(|| t.to_string())
        }
        Value::Object(m) => match m.get("__entity") {
            Some(inner) => uid_type(inner),
            None => m.get("type")?.as_str().map(str::to_string),
        },
        _ => None,
    }
}

/// A Cedar entity type name: identifiers joined by `::`.
fn is_type_name(t: &str) -> bool {
    t.split("::").all(|part| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The schema of the authorizer's requests. Every non-action type may be a member of every
/// other (upstream's `entities_json` builds any hierarchy it likes, and group parents are
/// synthesised at request time), so `in` is never refused for membership reasons.
fn schema(group: &str, extra: &BTreeSet<String>) -> Result<Schema, String> {
    let mut types: BTreeSet<String> = MODEL_TYPES.iter().map(|t| t.to_string()).collect();
    types.insert(group.to_string());
    types.extend(
        extra
            .iter()
            .filter(|t| t.as_str() != "Action" && is_type_name(t))
            .cloned(),
    );
    // Namespaced types (`A::B`) would need namespaces in the schema; upstream's model has none
    // and refuses them for groups. They stay undeclared, so a policy using one is refused.
    types.retain(|t| !t.contains("::"));
    let all: Vec<&String> = types.iter().collect();
    let members = all
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut src = String::new();
    for t in &types {
        src.push_str(&format!("entity {t} in [{members}];\n"));
    }
    for (action, resource) in ACTIONS {
        src.push_str(&format!(
            "action \"{action}\" appliesTo {{ principal: [Client], resource: [{resource}] }};\n"
        ));
    }
    Schema::from_cedarschema_str(&src)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| format!("the entity types in force do not make a Cedar schema: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(policies: &[&str]) -> Vec<PolicyProblem> {
        let p: Vec<String> = policies.iter().map(|s| s.to_string()).collect();
        check(&p, None, None)
    }

    /// Upstream's documented policies (docs/authz.md, examples/authz-config*.json).
    #[test]
    fn upstream_examples_validate() {
        let documented = [
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"weather");"#,
            r#"permit(principal, action == Action::"get_prompt", resource == Prompt::"greeting");"#,
            r#"permit(principal, action == Action::"read_resource", resource == Resource::"data");"#,
            r#"permit(principal, action == Action::"read_resource", resource == Resource::"file:///etc/passwd");"#,
            r#"permit(principal == Client::"user123", action == Action::"call_tool", resource);"#,
            r#"permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("admin") };"#,
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"calculator") when { resource.arg_operation == "add" || resource.arg_operation == "subtract" };"#,
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"weather") when { context.arg_location == "New York" || context.arg_location == "London" };"#,
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"weather") when { principal.claim_name == "John Doe" };"#,
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"sensitive_data") when { principal.claim_roles.contains("admin") && context.arg_level > 3 };"#,
            r#"permit(principal, action == Action::"call_tool", resource) when { resource.owner == principal.claim_sub };"#,
            r#"permit(principal, action == Action::"get_prompt", resource) when { resource.visibility == "private" && resource.owner == principal.claim_sub };"#,
            r#"permit(principal, action, resource) when { principal.claim_roles.contains("admin") };"#,
            r#"permit(principal in THVGroup::"dev", action == Action::"call_tool", resource == Tool::"echo");"#,
            r#"permit(principal, action == Action::"list_tools", resource);"#,
            r#"permit(principal, action, resource in MCP::"github");"#,
            r#"forbid(principal, action == Action::"call_tool", resource) when { resource.readOnlyHint == false };"#,
        ];
        for p in documented {
            assert_eq!(problems(&[p]), vec![], "{p}");
        }
    }

    #[test]
    fn a_syntax_error_names_the_policy_line_and_column() {
        let got = problems(&[
            r#"permit(principal, action, resource);"#,
            "permit(principal,\n  action == Action::\"call_tool\"\n  resource);",
        ]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].index, Some(1));
        assert_eq!(got[0].position.map(|p| p.0), Some(3), "{got:?}");
    }

    #[test]
    fn unknown_actions_types_and_impossible_scopes_are_refused() {
        for bad in [
            r#"permit(principal, action == Action::"call-tool", resource);"#,
            r#"permit(principal in Group::"dev", action, resource);"#,
            r#"permit(principal, action == Action::"call_tool", resource == Prompt::"x");"#,
            r#"permit(principal, action, resource) when { ip("10.0.0.1").isFoo() };"#,
            r#"permit(principal, action, resource) when { decimal(1) };"#,
            // In upstream's examples/authz-config.json, but not Cedar: a scope `in` takes one
            // entity, and `Tool::[...]` is no entity at all: the grammar has no such form.
            r#"permit(principal, action == Action::"call_tool", resource in Tool::["calculator", "translator"]) when { principal.claim_roles.contains("admin") };"#,
        ] {
            let got = problems(&[bad]);
            assert!(!got.is_empty(), "{bad} was accepted");
            assert_eq!(got[0].index, Some(0));
            assert!(got[0].position.is_some(), "{bad}: {got:?}");
        }
    }

    #[test]
    fn entity_types_come_from_entities_json_and_the_group_type() {
        let p = vec![r#"permit(principal in Role::"admin", action, resource);"#.to_string()];
        assert!(!check(&p, None, None).is_empty());
        let entities = r#"[{"uid": "Role::admin", "attrs": {}, "parents": []}]"#;
        assert_eq!(check(&p, Some(entities), None), vec![]);
        let team = vec![r#"permit(principal in Team::"a", action, resource);"#.to_string()];
        assert_eq!(check(&team, None, Some("Team")), vec![]);
        assert!(!check(&p, Some("{"), None).is_empty());
    }
}
