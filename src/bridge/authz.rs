//! Cedar authorization per JSON-RPC call (`auth.authz`), in the entity model of upstream's
//! Cedar authorizer (`pkg/authz/authorizers/cedar`), so a ToolHive policy decides the same here:
//!
//! - principal `Client::"<sub>"`, its attributes the token's claims as `claim_<name>`, a member
//!   of `THVGroup::"<g>"` (or the configured group type) for each group of the group claim
//!   (`groupClaimName`, else the first of `groups`, `roles`, `cognito:groups`) and the role claim;
//! - action `Action::"call_tool"` / `"get_prompt"` / `"read_resource"`, with attribute
//!   `operation` (its own id);
//! - resource `Tool::"<name>"` / `Prompt::"<name>"` / `Resource::"<uri>"`, a member of
//!   `MCP::"<server>"`, with `name`, `operation`, `feature` (and `uri` for resources), the
//!   tool's annotation hints (`readOnlyHint`, ...) as last listed, and the call's arguments as
//!   `arg_<name>` (strings, booleans, numbers; `arg_<name>_present` for anything else);
//! - context: the `claim_*` and `arg_*` attributes again.
//!
//! JSON numbers become Cedar decimals (upstream's claims are float64, mapped to decimals).
//!
//! Which methods are checked is upstream's table (`MCPMethodToFeatureOperation`): calls,
//! prompt gets and resource reads (subscribe and unsubscribe as reads) are decided before they
//! reach the server; `tools/list`, `prompts/list` and `resources/list` answers keep only what
//! the caller may call, get or read; protocol methods pass; any other method is denied.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, ResourceConstraint, RestrictedExpression,
};
use serde_json::{Map, Value};

use super::auth::Identity;
use super::config::AuthzConfig;

/// Upstream's answer to a denied call: HTTP 403 and this JSON-RPC error.
pub const DENIED_CODE: i64 = 403;
pub const DENIED_MESSAGE: &str = "Unauthorized";

/// Claims nested deeper than this are dropped (upstream's bound).
const MAX_CLAIM_DEPTH: usize = 10;
/// The group claims tried when none is configured, in order.
const DEFAULT_GROUP_CLAIMS: &[&str] = &["groups", "roles", "cognito:groups"];
/// Tool annotations remembered from lists (for the resource's attributes on calls).
const MAX_REMEMBERED_TOOLS: usize = 4096;
/// Resources whose applicable policies are remembered (emptied when full).
const MAX_REMEMBERED_RESOURCES: usize = 4096;

/// What the policy has to say about one JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Not subject to policy (protocol methods, notifications upstream lets through).
    Pass,
    /// Denied whatever the policy (a method upstream's table does not know).
    Deny,
    /// Decided before it reaches the server.
    Check(Feature, String),
    /// Answered, then filtered to what the caller may use.
    FilterList(Feature),
}

/// What a call is about, and how upstream names its action and resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    Tool,
    Prompt,
    Resource,
}

impl Feature {
    fn action(self) -> &'static str {
        match self {
            Feature::Tool => "call_tool",
            Feature::Prompt => "get_prompt",
            Feature::Resource => "read_resource",
        }
    }
    fn resource_type(self) -> &'static str {
        match self {
            Feature::Tool => "Tool",
            Feature::Prompt => "Prompt",
            Feature::Resource => "Resource",
        }
    }
    fn feature(self) -> &'static str {
        match self {
            Feature::Tool => "tool",
            Feature::Prompt => "prompt",
            Feature::Resource => "resource",
        }
    }
    fn operation(self) -> &'static str {
        match self {
            Feature::Tool => "call",
            Feature::Prompt => "get",
            Feature::Resource => "read",
        }
    }
    /// The list member's key and the field that names it.
    fn list_field(self) -> (&'static str, &'static str) {
        match self {
            Feature::Tool => ("tools", "name"),
            Feature::Prompt => ("prompts", "name"),
            Feature::Resource => ("resources", "uri"),
        }
    }
}

/// The gate of a message with this method and body (upstream's table).
pub fn gate(method: &str, body: &Value) -> Gate {
    let param = |key: &str| {
        body.pointer(&format!("/params/{key}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    match method {
        "tools/call" => Gate::Check(Feature::Tool, param("name")),
        "prompts/get" => Gate::Check(Feature::Prompt, param("name")),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            Gate::Check(Feature::Resource, param("uri"))
        }
        "tools/list" => Gate::FilterList(Feature::Tool),
        "prompts/list" => Gate::FilterList(Feature::Prompt),
        "resources/list" => Gate::FilterList(Feature::Resource),
        "initialize"
        | "ping"
        | "resources/templates/list"
        | "features/list"
        | "roots/list"
        | "server/discover"
        | "subscriptions/listen"
        | "logging/setLevel"
        | "completion/complete"
        | "notifications/message"
        | "notifications/initialized"
        | "notifications/progress"
        | "notifications/cancelled"
        | "notifications/roots/list_changed"
        | "notifications/tools/list_changed"
        | "notifications/prompts/list_changed"
        | "notifications/resources/list_changed"
        | "notifications/resources/updated"
        | "notifications/tasks/status" => Gate::Pass,
        _ => Gate::Deny,
    }
}

/// The policy set and what every decision shares.
pub struct Authz {
    /// Every policy (what [`Authz::applicable`] must decide the same as).
    policies: PolicySet,
    /// The policies in their order (`policy<i>`), for [`Authz::applicable`].
    policy_list: Vec<Policy>,
    /// `entitiesJson` and the three action entities: what every decision shares, built once.
    base: Entities,
    authorizer: Authorizer,
    group_type: EntityTypeName,
    group_claim: Option<String>,
    role_claim: Option<String>,
    server: Option<EntityUid>,
    /// Annotation hints of tools by name, from the last lists seen.
    annotations: RwLock<HashMap<String, Map<String, Value>>>,
    /// The policies that can apply to a resource, by resource (see [`Authz::applicable`]).
    applicable: RwLock<Applicable>,
    context_use: ContextUse,
}

/// Which policies a decision evaluates, with what context: those that can apply with the
/// context keys they can read (always, outside tests), or every one with every key (what the
/// tests compare with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policies {
    Applicable,
    #[cfg_attr(not(test), allow(dead_code))]
    Every,
}

/// The policies that can apply to each resource decided on, and the distinct sets of them (most
/// resources share one: the policies whose scope names no resource).
#[derive(Default)]
struct Applicable {
    by_resource: HashMap<(Feature, String), Arc<PolicySet>>,
    sets: HashMap<Vec<usize>, Arc<PolicySet>>,
}

/// The caller as Cedar sees them, built once per request.
pub struct Caller {
    principal: EntityUid,
    /// The shared entities with the caller's own, built once per caller (its transitive
    /// closure too): a decision adds only its resource.
    entities: Entities,
    /// The claims a policy can read from the context (see [`ContextUse`]).
    claims: Vec<(String, RestrictedExpression)>,
    /// Every claim, for the tests' comparison with the unfiltered context.
    #[cfg_attr(not(test), allow(dead_code))]
    every_claim: Vec<(String, RestrictedExpression)>,
    /// The context of a request without arguments (lists, most prompt gets and reads), built
    /// once: claims are the bulk of it.
    context: Context,
}

/// How the policies use the request's context. Upstream puts every claim and argument there,
/// and building it is a large share of a decision (each claim evaluated again on each call with
/// arguments). When every use is `context.<name>`, `context["<name>"]` or `context has <name>`
/// with a literal name, a key no policy names is never observed, so the context holds only the
/// named ones; any other use (the record as a whole) keeps every key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ContextUse {
    Keys(HashSet<String>),
    Whole,
}

impl ContextUse {
    fn of(policies: &[Policy]) -> Self {
        let mut keys = HashSet::new();
        for p in policies {
            let Ok(est) = p.to_json() else {
                return ContextUse::Whole;
            };
            if !context_keys(&est, &mut keys) {
                return ContextUse::Whole;
            }
        }
        ContextUse::Keys(keys)
    }

    fn reads(&self, key: &str) -> bool {
        match self {
            ContextUse::Keys(keys) => keys.contains(key),
            ContextUse::Whole => true,
        }
    }
}

/// Collects the context keys a policy's JSON form reads into `keys`; `false` when it uses the
/// context otherwise than by a literal attribute name.
fn context_keys(v: &Value, keys: &mut HashSet<String>) -> bool {
    let is_context = |v: &Value| v.get("Var").and_then(Value::as_str) == Some("context");
    match v {
        Value::Object(fields) => {
            if is_context(v) {
                return false;
            }
            for op in [".", "has"] {
                if let Some(inner) = fields.get(op) {
                    let left = inner.get("left");
                    if left.is_some_and(is_context) {
                        // `has` with a path names its first step as the context's key.
                        let attr = match inner.get("attr") {
                            Some(Value::String(a)) => Some(a.as_str()),
                            Some(Value::Array(path)) => path.first().and_then(Value::as_str),
                            _ => None,
                        };
                        let Some(attr) = attr else {
                            return false;
                        };
                        keys.insert(attr.to_owned());
                        return fields.len() == 1
                            || fields
                                .iter()
                                .filter(|(k, _)| k.as_str() != op)
                                .all(|(_, v)| context_keys(v, keys));
                    }
                }
            }
            fields.values().all(|v| context_keys(v, keys))
        }
        Value::Array(items) => items.iter().all(|v| context_keys(v, keys)),
        _ => true,
    }
}

impl Authz {
    /// Parses the policies (`policy0`, `policy1`, ... as upstream names them) and entities.
    pub fn new(cfg: &AuthzConfig) -> Result<Self, String> {
        let mut policies = PolicySet::new();
        let mut policy_list = Vec::with_capacity(cfg.policies.len());
        for (i, text) in cfg.policies.iter().enumerate() {
            let policy = Policy::parse(Some(PolicyId::new(format!("policy{i}"))), text)
                .map_err(|e| format!("policy {i} does not parse: {e}"))?;
            policies
                .add(policy.clone())
                .map_err(|e| format!("policy {i}: {e}"))?;
            policy_list.push(policy);
        }
        let entities = match cfg
            .entities_json
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            Some(json) => Entities::from_json_str(json, None)
                .map_err(|e| format!("entitiesJson is not valid: {e}"))?,
            None => Entities::empty(),
        };
        // As before a decision's own entities: ours replace an action of `entitiesJson`.
        let actions = [Feature::Tool, Feature::Prompt, Feature::Resource]
            .into_iter()
            .map(action_entity)
            .collect::<Result<Vec<_>, _>>()?;
        let base = entities
            .upsert_entities(actions, None)
            .map_err(|e| format!("the action entities do not fit entitiesJson: {e}"))?;
        let group_type = cfg
            .group_entity_type
            .as_deref()
            .filter(|g| !g.is_empty())
            .unwrap_or(crate::admission::cedar::DEFAULT_GROUP_ENTITY_TYPE);
        let group_type = EntityTypeName::from_str(group_type)
            .map_err(|_| format!("groupEntityType {group_type:?} is not a Cedar type name"))?;
        let server = cfg
            .server_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|name| uid("MCP", name))
            .transpose()?;
        Ok(Self {
            policies,
            base,
            authorizer: Authorizer::new(),
            group_type,
            group_claim: cfg.group_claim_name.clone().filter(|c| !c.is_empty()),
            role_claim: cfg.role_claim_name.clone().filter(|c| !c.is_empty()),
            server,
            annotations: RwLock::new(HashMap::new()),
            applicable: RwLock::new(Applicable::default()),
            context_use: ContextUse::of(&policy_list),
            policy_list,
        })
    }

    /// The policies that can apply to `feature`'s action on `resource`. A policy whose scope
    /// names another action, another resource or another resource type is false for it before
    /// any condition is evaluated (the scope is checked first and cannot fail), so leaving it
    /// out changes no decision and no error; a decision then evaluates only the rest (one
    /// policy of 20 that each name their tool, instead of 20). Scopes with `in` are kept: the
    /// hierarchy decides those.
    fn applicable(&self, feature: Feature, name: &str, resource: &EntityUid) -> Arc<PolicySet> {
        let key = (feature, name.to_owned());
        {
            let cache = self.applicable.read().unwrap_or_else(|e| e.into_inner());
            if let Some(set) = cache.by_resource.get(&key) {
                return set.clone();
            }
        }
        let action = uid("Action", feature.action()).ok();
        let chosen: Vec<usize> = self
            .policy_list
            .iter()
            .enumerate()
            .filter(|(_, p)| may_apply(p, action.as_ref(), resource))
            .map(|(i, _)| i)
            .collect();
        let mut cache = self.applicable.write().unwrap_or_else(|e| e.into_inner());
        if cache.by_resource.len() >= MAX_REMEMBERED_RESOURCES {
            *cache = Applicable::default();
        }
        let set = match cache.sets.get(&chosen) {
            Some(set) => set.clone(),
            None => {
                let mut set = PolicySet::new();
                for &i in &chosen {
                    // Policies of one valid set: adding a subset back cannot clash.
                    let _ = set.add(self.policy_list[i].clone());
                }
                let set = Arc::new(set);
                cache.sets.insert(chosen, set.clone());
                set
            }
        };
        cache.by_resource.insert(key, set.clone());
        set
    }

    /// The caller's principal, or `None` when the token names nobody (no `sub`): upstream
    /// denies everything then.
    pub fn caller(&self, who: &Identity) -> Option<Caller> {
        let sub = who.subject.as_deref()?;
        let principal = uid("Client", sub).ok()?;
        let every_claim: Vec<(String, RestrictedExpression)> = who
            .claims
            .iter()
            .filter_map(|(k, v)| Some((format!("claim_{k}"), to_cedar(v, 0)?)))
            .collect();
        let parents: HashSet<EntityUid> = self
            .groups(&who.claims)
            .iter()
            .map(|g| EntityUid::from_type_name_and_id(self.group_type.clone(), EntityId::new(g)))
            .collect();
        let entity = Entity::new(
            principal.clone(),
            every_claim.iter().cloned().collect(),
            parents,
        )
        .ok()?;
        let entities = self.base.clone().upsert_entities([entity], None).ok()?;
        let claims: Vec<_> = every_claim
            .iter()
            .filter(|(k, _)| self.context_use.reads(k))
            .cloned()
            .collect();
        let context = Context::from_pairs(claims.iter().cloned()).ok()?;
        Some(Caller {
            principal,
            entities,
            claims,
            every_claim,
            context,
        })
    }

    /// Whether `caller` may do what `feature` names on `name`, with these arguments.
    pub fn allows(
        &self,
        caller: &Caller,
        feature: Feature,
        name: &str,
        arguments: Option<&Map<String, Value>>,
    ) -> bool {
        self.decide(caller, feature, name, arguments, None, Policies::Applicable)
    }

    fn decide(
        &self,
        caller: &Caller,
        feature: Feature,
        name: &str,
        arguments: Option<&Map<String, Value>>,
        listed_annotations: Option<&Map<String, Value>>,
        which: Policies,
    ) -> bool {
        let Ok(action) = uid("Action", feature.action()) else {
            return false;
        };
        let Ok(resource) = uid(feature.resource_type(), name) else {
            return false;
        };
        let args = arguments.map(argument_attributes).unwrap_or_default();
        let mut attrs: HashMap<String, RestrictedExpression> = HashMap::new();
        if feature == Feature::Tool {
            let remembered;
            let hints = match listed_annotations {
                Some(hints) => Some(hints),
                None => {
                    remembered = self.remembered_annotations(name);
                    remembered.as_ref()
                }
            };
            for (k, v) in hints.into_iter().flatten() {
                if let Some(v) = to_cedar(v, 0) {
                    attrs.insert(k.clone(), v);
                }
            }
        }
        attrs.extend(args.iter().cloned());
        let text = RestrictedExpression::new_string;
        attrs.insert("name".into(), text(name.to_owned()));
        attrs.insert("operation".into(), text(feature.operation().into()));
        attrs.insert("feature".into(), text(feature.feature().into()));
        if feature == Feature::Resource {
            attrs.insert("uri".into(), text(name.to_owned()));
        }
        let parents: HashSet<EntityUid> = self.server.iter().cloned().collect();
        let Ok(resource_entity) = Entity::new(resource.clone(), attrs, parents) else {
            return false;
        };
        let Ok(entities) = caller
            .entities
            .clone()
            .upsert_entities([resource_entity], None)
        else {
            return false;
        };
        let (claims, context_args) = match which {
            Policies::Applicable => {
                let read = |(k, _): &&(String, RestrictedExpression)| self.context_use.reads(k);
                (&caller.claims, args.iter().filter(read).cloned().collect())
            }
            Policies::Every => (&caller.every_claim, args),
        };
        let context = if context_args.is_empty() && which == Policies::Applicable {
            caller.context.clone()
        } else {
            match Context::from_pairs(claims.iter().cloned().chain(context_args)) {
                Ok(context) => context,
                Err(_) => return false,
            }
        };
        let policies = match which {
            Policies::Applicable => self.applicable(feature, name, &resource),
            Policies::Every => Arc::new(self.policies.clone()),
        };
        let Ok(request) = Request::new(caller.principal.clone(), action, resource, context, None)
        else {
            return false;
        };
        let response = self
            .authorizer
            .is_authorized(&request, &policies, &entities);
        // Like upstream: an evaluation error is a denial.
        response.decision() == Decision::Allow && response.diagnostics().errors().next().is_none()
    }

    /// A list answer (single message) with only the members the caller may use; anything that
    /// is not a successful list passes unchanged.
    pub fn filter_list(&self, caller: Option<&Caller>, feature: Feature, msg: Bytes) -> Bytes {
        let Ok(mut reply) = serde_json::from_slice::<Value>(&msg) else {
            return msg;
        };
        let (key, field) = feature.list_field();
        let Some(items) = reply
            .get_mut("result")
            .and_then(|r| r.get_mut(key))
            .and_then(Value::as_array_mut)
        else {
            return msg;
        };
        if feature == Feature::Tool {
            self.remember_annotations(items);
        }
        items.retain(|item| {
            let name = item.get(field).and_then(Value::as_str).unwrap_or("");
            let hints = item.get("annotations").and_then(Value::as_object);
            caller.is_some_and(|c| {
                self.decide(
                    c,
                    feature,
                    name,
                    None,
                    hints.map(hint_fields).as_ref(),
                    Policies::Applicable,
                )
            })
        });
        serde_json::to_vec(&reply).map(Bytes::from).unwrap_or(msg)
    }

    /// Every list answer in `msg` (one message or a batch's answers) filtered, each known by
    /// its shape (`result.tools`, `result.prompts`, `result.resources`): an HTTP backend's answer
    /// may come on a stream where the request it answers is not at hand.
    pub fn filter_lists_by_shape(&self, caller: Option<&Caller>, msg: Bytes) -> Bytes {
        let Ok(mut value) = serde_json::from_slice::<Value>(&msg) else {
            return msg;
        };
        let mut changed = false;
        let replies: Vec<&mut Value> = match &mut value {
            Value::Array(batch) => batch.iter_mut().collect(),
            single => vec![single],
        };
        for reply in replies {
            for feature in [Feature::Tool, Feature::Prompt, Feature::Resource] {
                let (key, _) = feature.list_field();
                if reply
                    .pointer(&format!("/result/{key}"))
                    .is_some_and(Value::is_array)
                {
                    let one = Bytes::from(reply.to_string());
                    if let Ok(filtered) =
                        serde_json::from_slice(&self.filter_list(caller, feature, one))
                    {
                        *reply = filtered;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return msg;
        }
        serde_json::to_vec(&value).map(Bytes::from).unwrap_or(msg)
    }

    fn remember_annotations(&self, tools: &[Value]) {
        let mut cache = self.annotations.write().unwrap_or_else(|e| e.into_inner());
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            let hints = tool
                .get("annotations")
                .and_then(Value::as_object)
                .map(hint_fields)
                .unwrap_or_default();
            if cache.len() >= MAX_REMEMBERED_TOOLS && !cache.contains_key(name) {
                cache.clear();
            }
            cache.insert(name.to_owned(), hints);
        }
    }

    fn remembered_annotations(&self, name: &str) -> Option<Map<String, Value>> {
        self.annotations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The caller's groups: the group claim (configured, else the first default one present)
    /// and the role claim, de-duplicated.
    fn groups(&self, claims: &Map<String, Value>) -> Vec<String> {
        let mut groups = match &self.group_claim {
            Some(name) => string_list(claims, name),
            None => DEFAULT_GROUP_CLAIMS
                .iter()
                .find_map(|name| string_list(claims, name)),
        }
        .unwrap_or_default();
        if let Some(role) = &self.role_claim {
            groups.extend(string_list(claims, role).unwrap_or_default());
        }
        let mut seen = HashSet::new();
        groups.retain(|g| seen.insert(g.clone()));
        groups
    }
}

/// Whether a policy's scope lets it apply to `action` on `resource` (see [`Authz::applicable`]).
fn may_apply(p: &Policy, action: Option<&EntityUid>, resource: &EntityUid) -> bool {
    let action_fits = match (p.action_constraint(), action) {
        (ActionConstraint::Eq(a), Some(action)) => &a == action,
        _ => true,
    };
    let resource_fits = match p.resource_constraint() {
        ResourceConstraint::Eq(r) => &r == resource,
        ResourceConstraint::Is(t) | ResourceConstraint::IsIn(t, _) => &t == resource.type_name(),
        ResourceConstraint::Any | ResourceConstraint::In(_) => true,
    };
    action_fits && resource_fits
}

/// The action entity of a feature (`Action::"call_tool"` with `operation`), as upstream adds
/// it to every request.
fn action_entity(feature: Feature) -> Result<Entity, String> {
    let attrs = HashMap::from([(
        "operation".to_owned(),
        RestrictedExpression::new_string(feature.action().to_owned()),
    )]);
    let action = uid("Action", feature.action())?;
    Entity::new(action, attrs, HashSet::new()).map_err(|e| format!("action entity: {e}"))
}

/// The four hints upstream carries over from a tool's annotations, when they are booleans.
fn hint_fields(annotations: &Map<String, Value>) -> Map<String, Value> {
    [
        "readOnlyHint",
        "destructiveHint",
        "idempotentHint",
        "openWorldHint",
    ]
    .iter()
    .filter_map(|k| {
        let v = annotations.get(*k)?;
        v.is_boolean().then(|| ((*k).to_owned(), v.clone()))
    })
    .collect()
}

/// The strings of a claim that is a list (a dotted name reaches into nested claims when no
/// claim has the dotted name itself). `None` when absent or not a list.
fn string_list(claims: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    let value = claims.get(name).or_else(|| {
        let mut parts = name.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, part| v.get(part))
    })?;
    let list = value.as_array()?;
    Some(
        list.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

/// `arg_<name>` for scalar arguments, `arg_<name>_present` for the rest (upstream's mapping).
fn argument_attributes(args: &Map<String, Value>) -> Vec<(String, RestrictedExpression)> {
    args.iter()
        .filter_map(|(k, v)| match v {
            Value::String(_) | Value::Bool(_) | Value::Number(_) => {
                Some((format!("arg_{k}"), to_cedar(v, 0)?))
            }
            _ => Some((
                format!("arg_{k}_present"),
                RestrictedExpression::new_bool(true),
            )),
        })
        .collect()
}

/// A JSON value as Cedar sees it; `None` for what upstream drops (null, numbers a decimal
/// cannot hold, nesting deeper than ten).
fn to_cedar(v: &Value, depth: usize) -> Option<RestrictedExpression> {
    if depth > MAX_CLAIM_DEPTH {
        return None;
    }
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Number(n) => RestrictedExpression::new_decimal(decimal_text(n.as_f64()?)?),
        Value::Array(items) => {
            RestrictedExpression::new_set(items.iter().filter_map(|item| to_cedar(item, depth + 1)))
        }
        Value::Object(fields) => RestrictedExpression::new_record(
            fields
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), to_cedar(v, depth + 1)?))),
        )
        .ok()?,
    })
}

/// A Cedar decimal literal (four fractional digits, within i64 / 10^4), or `None`.
fn decimal_text(f: f64) -> Option<String> {
    const LIMIT: f64 = 922_337_203_685_477.0;
    (f.is_finite() && f.abs() < LIMIT).then(|| format!("{f:.4}"))
}

/// The entity types every decision names, parsed once: running Cedar's parser for them on each
/// call was a measurable share of a decision.
static KNOWN_TYPES: std::sync::LazyLock<HashMap<&'static str, EntityTypeName>> =
    std::sync::LazyLock::new(|| {
        ["Action", "Tool", "Prompt", "Resource", "MCP", "Client"]
            .into_iter()
            .filter_map(|t| Some((t, EntityTypeName::from_str(t).ok()?)))
            .collect()
    });

fn uid(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let name = match KNOWN_TYPES.get(type_name) {
        Some(name) => name.clone(),
        None => EntityTypeName::from_str(type_name)
            .map_err(|_| format!("{type_name:?} is not a Cedar type name"))?,
    };
    Ok(EntityUid::from_type_name_and_id(name, EntityId::new(id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn authz(policies: &[&str]) -> Authz {
        Authz::new(&AuthzConfig {
            policies: policies.iter().map(|p| p.to_string()).collect(),
            server_name: Some("fetch".into()),
            ..AuthzConfig::default()
        })
        .unwrap()
    }

    fn who(claims: Value) -> Identity {
        let claims = claims.as_object().unwrap().clone();
        Identity {
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            claims,
            valid_until: None,
        }
    }

    /// A decision evaluates only the policies whose scope can apply to its action and
    /// resource; it decides exactly as the whole set does, for scopes of every shape (`==`,
    /// `is`, `is ... in`, `in`, action lists, none), permits and forbids, with and without
    /// arguments, on first use and from the cache.
    #[test]
    fn the_applicable_policies_decide_as_every_policy_does() {
        let z = authz(&[
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"echo") when { principal.claim_groups.contains("dev") };"#,
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"add") when { principal.claim_groups.contains("ops") };"#,
            r#"permit(principal in THVGroup::"ops", action == Action::"get_prompt", resource);"#,
            r#"permit(principal, action, resource is Resource) when { resource.uri like "file://*" };"#,
            r#"permit(principal, action in [Action::"call_tool", Action::"get_prompt"], resource is Prompt in MCP::"fetch");"#,
            r#"permit(principal, action, resource in MCP::"fetch") when { context has arg_all && context.arg_all == true };"#,
            r#"forbid(principal, action == Action::"call_tool", resource) when { context has arg_message && context.arg_message == "no" };"#,
            r#"forbid(principal, action, resource == Tool::"echo") when { resource.arg_count > decimal("3.0") };"#,
            r#"permit(principal, action == Action::"get_prompt", resource) when { context["claim_sub"] == "c" };"#,
        ]);
        let callers = [
            z.caller(&who(json!({"sub": "a", "groups": ["dev"]})))
                .unwrap(),
            z.caller(&who(json!({"sub": "b", "groups": ["ops"]})))
                .unwrap(),
            z.caller(&who(json!({"sub": "c"}))).unwrap(),
        ];
        let requests: Vec<(Feature, &str, Value)> = vec![
            (Feature::Tool, "echo", json!({})),
            (Feature::Tool, "echo", json!({"message": "hi"})),
            (Feature::Tool, "echo", json!({"message": "no"})),
            (Feature::Tool, "echo", json!({"count": 5})),
            (Feature::Tool, "add", json!({"a": 1})),
            (Feature::Tool, "other", json!({"all": true})),
            (Feature::Prompt, "greeting", json!({})),
            (Feature::Resource, "file:///etc/hosts", json!({})),
            (Feature::Resource, "https://x", json!({})),
        ];
        let mut allowed = 0;
        for round in 0..2 {
            for (c, caller) in callers.iter().enumerate() {
                for (feature, name, args) in &requests {
                    let args = args.as_object().filter(|a| !a.is_empty());
                    let every = z.decide(caller, *feature, name, args, None, Policies::Every);
                    let applicable = z.allows(caller, *feature, name, args);
                    assert_eq!(
                        applicable, every,
                        "round {round}, caller {c}: {feature:?} {name} {args:?}"
                    );
                    allowed += usize::from(every);
                }
            }
        }
        // Both answers occur (the rows are not all one way).
        assert!(
            allowed > 0 && allowed < 2 * callers.len() * requests.len(),
            "{allowed}"
        );
        let sizes: Vec<usize> = [(Feature::Tool, "echo"), (Feature::Tool, "other")]
            .iter()
            .map(|(f, n)| {
                z.applicable(*f, n, &uid(f.resource_type(), n).unwrap())
                    .policies()
                    .count()
            })
            .collect();
        assert_eq!(
            sizes,
            [4, 2],
            "echo: its permit, the `in`, both forbids; other: the `in`, one forbid"
        );
        let keys = ["arg_all", "arg_message", "claim_sub"];
        assert_eq!(
            z.context_use,
            ContextUse::Keys(keys.map(str::to_owned).into())
        );
    }

    /// The context keys the policies read: literal attribute names only; any other use of the
    /// context keeps every key.
    #[test]
    fn context_use_is_read_from_the_policies() {
        let rows: [(&[&str], Option<&[&str]>); 5] = [
            (&[r#"permit(principal, action, resource);"#], Some(&[])),
            (
                &[
                    r#"permit(principal, action, resource) when { context.claim_a == "x" && context has arg_b && context["arg_c"] == 1 };"#,
                ],
                Some(&["claim_a", "arg_b", "arg_c"]),
            ),
            (
                &[r#"permit(principal, action, resource) when { context has claim_a.b };"#],
                Some(&["claim_a"]),
            ),
            (
                &[r#"permit(principal, action, resource) when { context == {} };"#],
                None,
            ),
            (
                &[
                    r#"permit(principal, action, resource) when { context.claim_a == "x" };"#,
                    r#"permit(principal, action, resource) when { principal.claim_set.contains(context) };"#,
                ],
                None,
            ),
        ];
        for (i, (policies, want)) in rows.iter().enumerate() {
            let z = authz(policies);
            let want = match want {
                Some(keys) => ContextUse::Keys(keys.iter().map(|k| k.to_string()).collect()),
                None => ContextUse::Whole,
            };
            assert_eq!(z.context_use, want, "row {i}");
        }
    }

    /// Upstream's documented example policies decide here as they do there.
    #[test]
    fn upstream_examples_decide_the_same() {
        let a = authz(&[
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"echo") when { principal has claim_groups && principal.claim_groups.contains("dev") };"#,
            r#"permit(principal in THVGroup::"admins", action, resource);"#,
            r#"permit(principal, action == Action::"get_prompt", resource) when { resource.name == "greet" };"#,
            r#"permit(principal, action == Action::"call_tool", resource in MCP::"fetch") when { context has claim_role && context.claim_role == "reader" && resource has readOnlyHint && resource.readOnlyHint == true };"#,
            r#"forbid(principal, action == Action::"call_tool", resource == Tool::"echo") when { context has arg_message && context.arg_message == "forbidden" };"#,
            r#"permit(principal == Client::"carol", action == Action::"read_resource", resource) when { resource.uri like "file:///public/*" };"#,
        ]);
        let dev = a
            .caller(&who(json!({"sub": "alice", "groups": ["dev"]})))
            .unwrap();
        let admin = a
            .caller(&who(json!({"sub": "bob", "roles": ["admins"]})))
            .unwrap();
        let reader = a
            .caller(&who(json!({"sub": "r", "role": "reader"})))
            .unwrap();
        let carol = a
            .caller(&who(json!({"sub": "carol", "exp": 1.8e9})))
            .unwrap();
        let args = json!({"message": "hi"});
        let forbidden = json!({"message": "forbidden"});
        let rows: &[(&Caller, Feature, &str, Option<&Value>, bool)] = &[
            (&dev, Feature::Tool, "echo", Some(&args), true),
            (&dev, Feature::Tool, "echo", Some(&forbidden), false),
            (&dev, Feature::Tool, "get-env", None, false),
            (&admin, Feature::Tool, "get-env", None, true),
            (&admin, Feature::Resource, "file:///x", None, true),
            (&dev, Feature::Prompt, "greet", None, true),
            (&dev, Feature::Prompt, "other", None, false),
            (&carol, Feature::Resource, "file:///public/a", None, true),
            (&carol, Feature::Resource, "file:///private/a", None, false),
            (&reader, Feature::Tool, "echo", None, false),
        ];
        for (i, (caller, feature, name, args, want)) in rows.iter().enumerate() {
            let args = args.and_then(Value::as_object);
            assert_eq!(a.allows(caller, *feature, name, args), *want, "row {i}");
        }
        // Annotations from a list make the read-only rule match on the call.
        let list = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
            {"name": "look", "annotations": {"readOnlyHint": true}},
            {"name": "write", "annotations": {"readOnlyHint": false}}
        ], "nextCursor": "c"}});
        let out = a.filter_list(Some(&reader), Feature::Tool, Bytes::from(list.to_string()));
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["result"]["tools"].as_array().unwrap().len(), 1);
        assert_eq!(out["result"]["tools"][0]["name"], "look");
        assert_eq!(out["result"]["nextCursor"], "c");
        assert!(a.allows(&reader, Feature::Tool, "look", None));
    }

    /// Policies as upstream's docs and examples write them, unchanged.
    #[test]
    fn upstream_documented_policies_decide_the_same() {
        let a = authz(&[
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"weather");"#,
            r#"permit(principal, action == Action::"get_prompt", resource == Prompt::"greeting");"#,
            r#"permit(principal, action == Action::"read_resource", resource == Resource::"data");"#,
            r#"permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("admin") };"#,
            r#"permit(principal == Client::"user123", action == Action::"call_tool", resource);"#,
        ]);
        let admin = a
            .caller(&who(json!({"sub": "a", "roles": ["admin"]})))
            .unwrap();
        let user = a
            .caller(&who(json!({"sub": "u", "roles": ["user"]})))
            .unwrap();
        let user123 = a
            .caller(&who(json!({"sub": "user123", "roles": []})))
            .unwrap();
        let rows: &[(&Caller, Feature, &str, bool)] = &[
            (&user, Feature::Tool, "weather", true),
            (&user, Feature::Tool, "calculator", false),
            (&admin, Feature::Tool, "calculator", true),
            (&user123, Feature::Tool, "calculator", true),
            (&user, Feature::Prompt, "greeting", true),
            (&user, Feature::Prompt, "other", false),
            (&user, Feature::Resource, "data", true),
            (&user, Feature::Resource, "secret", false),
        ];
        for (i, (caller, feature, name, want)) in rows.iter().enumerate() {
            assert_eq!(a.allows(caller, *feature, name, None), *want, "row {i}");
        }
    }

    /// As upstream (cedar-go's diagnostics): a policy that fails to evaluate for this request
    /// (here: a claim the token does not carry) makes the request denied, even when another
    /// policy permits it.
    #[test]
    fn an_evaluation_error_denies_like_upstream() {
        let a = authz(&[
            r#"permit(principal, action, resource) when { principal.claim_roles.contains("admin") };"#,
            r#"permit(principal, action == Action::"call_tool", resource == Tool::"weather");"#,
        ]);
        let admin = a
            .caller(&who(json!({"sub": "a", "roles": ["admin"]})))
            .unwrap();
        let plain = a.caller(&who(json!({"sub": "p"}))).unwrap();
        assert!(a.allows(&admin, Feature::Tool, "anything", None));
        assert!(!a.allows(&plain, Feature::Tool, "weather", None));
    }

    #[test]
    fn nobody_without_a_subject_and_unknown_methods_are_denied() {
        let a = authz(&[r#"permit(principal, action, resource);"#]);
        assert!(a.caller(&who(json!({"groups": ["dev"]}))).is_none());
        let list = Bytes::from(json!({"result": {"tools": [{"name": "x"}]}}).to_string());
        let out: Value = serde_json::from_slice(&a.filter_list(None, Feature::Tool, list)).unwrap();
        assert_eq!(out["result"]["tools"], json!([]));
        assert_eq!(gate("tasks/get", &json!({})), Gate::Deny);
        assert_eq!(gate("ping", &json!({})), Gate::Pass);
        assert_eq!(
            gate("resources/subscribe", &json!({"params": {"uri": "u"}})),
            Gate::Check(Feature::Resource, "u".into())
        );
    }

    #[test]
    fn claims_map_to_cedar_values() {
        assert_eq!(decimal_text(1.5).as_deref(), Some("1.5000"));
        assert!(decimal_text(1e300).is_none());
        assert!(to_cedar(&json!(null), 0).is_none());
        let mut deep = json!("x");
        for _ in 0..12 {
            deep = json!([deep]);
        }
        // The innermost levels are dropped, the outer set stays.
        assert!(to_cedar(&deep, 0).is_some());
        let a = authz(&[
            r#"permit(principal, action, resource) when { principal.claim_exp.greaterThan(decimal("1000.0")) && principal.claim_org.name == "acme" };"#,
        ]);
        let c = a
            .caller(&who(
                json!({"sub": "s", "exp": 2000, "org": {"name": "acme"}}),
            ))
            .unwrap();
        assert!(a.allows(&c, Feature::Tool, "t", None));
    }
}
