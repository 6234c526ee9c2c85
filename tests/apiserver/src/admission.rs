//! The admission chain: MutatingWebhookConfigurations, then (after schema validation, done by the
//! caller) ValidatingWebhookConfigurations, called over HTTPS as kube-apiserver calls them.

use crate::conversion;
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;
use crate::selectors::LabelSelector;
use crate::webhook;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Everything about one write that admission needs (a snapshot: no lock is held while calling).
pub struct Attributes<'a> {
    pub operation: &'a str,
    pub res: &'a ResourceInfo,
    pub version: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub dry_run: bool,
    pub options: Value,
    /// Labels of the request's namespace (for `namespaceSelector`).
    pub namespace_labels: Option<Value>,
    pub service_map: &'a HashMap<String, String>,
}

/// Webhook configurations of one kind, in the order the apiserver calls them (by name).
pub fn sorted_configs(mut configs: Vec<Value>) -> Vec<Value> {
    configs
        .sort_by(|a, b| crate::store::meta_str(a, "name").cmp(crate::store::meta_str(b, "name")));
    configs
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn rule_matches(
    rule: &Value,
    op: &str,
    group: &str,
    version: &str,
    resource: &str,
    sub: &str,
    namespaced: bool,
) -> bool {
    let any = |list: Vec<String>, x: &str| list.iter().any(|v| v == "*" || v == x);
    let ops = strs(rule.get("operations"));
    if !ops.iter().any(|o| o == "*" || o == op) {
        return false;
    }
    if !any(strs(rule.get("apiGroups")), group) || !any(strs(rule.get("apiVersions")), version) {
        return false;
    }
    let res_ok = strs(rule.get("resources")).iter().any(|r| {
        let (rr, rs) = r.split_once('/').unwrap_or((r.as_str(), ""));
        (rr == "*" || rr == resource)
            && (rs == sub || (rs == "*" && !sub.is_empty()) || (rs == "*" && r == "*/*"))
    });
    if !res_ok {
        return false;
    }
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Namespaced" => namespaced,
        "Cluster" => !namespaced,
        _ => true,
    }
}

/// The version a webhook sees the object at, if any of its rules match (honouring `matchPolicy`).
fn matched_version(hook: &Value, a: &Attributes) -> Option<String> {
    let rules = hook
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let try_version = |v: &str| {
        rules.iter().any(|r| {
            rule_matches(
                r,
                a.operation,
                &a.res.group,
                v,
                &a.res.plural,
                a.subresource,
                a.res.namespaced,
            )
        })
    };
    if try_version(a.version) {
        return Some(a.version.to_string());
    }
    if hook
        .get("matchPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Equivalent")
        == "Equivalent"
    {
        for v in a
            .res
            .versions
            .iter()
            .filter(|v| v.served && v.name != a.version)
        {
            if try_version(&v.name) {
                return Some(v.name.clone());
            }
        }
    }
    None
}

fn selectors_match(
    hook: &Value,
    a: &Attributes,
    object: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<bool> {
    if let Some(sel) = hook.get("namespaceSelector") {
        let sel = LabelSelector::from_structured(sel)?;
        let labels = if a.res.group.is_empty() && a.res.plural == "namespaces" {
            object
                .or(old)
                .and_then(|o| o.pointer("/metadata/labels"))
                .cloned()
        } else if a.res.namespaced {
            a.namespace_labels.clone()
        } else {
            // Cluster-scoped objects are never excluded by a namespaceSelector.
            return object_selector_matches(hook, object, old);
        };
        if !sel.matches(labels.as_ref()) {
            return Ok(false);
        }
    }
    object_selector_matches(hook, object, old)
}

fn object_selector_matches(
    hook: &Value,
    object: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<bool> {
    let Some(sel) = hook.get("objectSelector") else {
        return Ok(true);
    };
    let sel = LabelSelector::from_structured(sel)?;
    Ok([object, old]
        .into_iter()
        .flatten()
        .any(|o| sel.matches_object(o)))
}

/// Result of running a chain: the (possibly mutated) object and the warnings to return.
pub struct Outcome {
    pub object: Option<Value>,
    pub warnings: Vec<String>,
}

/// Run every matching webhook of `configs`. `mutating` applies their patches in order.
pub async fn run(
    configs: &[Value],
    mutating: bool,
    a: &Attributes<'_>,
    object: Option<Value>,
    old: Option<&Value>,
) -> ApiResult<Outcome> {
    let mut object = object;
    let mut warnings = vec![];
    let hooks: Vec<Value> = configs
        .iter()
        .flat_map(|c| {
            c.get("webhooks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    // For reinvocationPolicy IfNeeded: how many changes had been made when each hook last ran.
    let mut seen_changes: Vec<Option<usize>> = vec![None; hooks.len()];
    let mut changes = 0;
    for (i, hook) in hooks.iter().enumerate() {
        if let Some(changed) = invoke(hook, mutating, a, &mut object, old, &mut warnings).await? {
            changes += usize::from(changed);
            seen_changes[i] = Some(changes);
        }
    }
    if mutating {
        // Hooks that asked for it run once more if a later hook changed the object.
        for (i, hook) in hooks.iter().enumerate() {
            let if_needed =
                hook.get("reinvocationPolicy").and_then(Value::as_str) == Some("IfNeeded");
            if if_needed && seen_changes[i].is_some_and(|c| c < changes) {
                invoke(hook, mutating, a, &mut object, old, &mut warnings).await?;
            }
        }
    }
    Ok(Outcome { object, warnings })
}

/// Call one webhook if it matches. `Some(changed)` when it was called.
async fn invoke(
    hook: &Value,
    mutating: bool,
    a: &Attributes<'_>,
    object: &mut Option<Value>,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> ApiResult<Option<bool>> {
    let Some(version) = matched_version(hook, a) else {
        return Ok(None);
    };
    if !selectors_match(hook, a, object.as_ref(), old)?
        || !match_conditions(hook, a, object.as_ref(), old)
    {
        return Ok(None);
    }
    let name = hook
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let side_effects = hook
        .get("sideEffects")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    if a.dry_run && !matches!(side_effects, "None" | "NoneOnDryRun") {
        return Err(ApiError::bad_request(format!(
            "admission webhook \"{name}\" does not support dry run"
        )));
    }
    let fail_open = hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore");
    match call(hook, &name, &version, a, object.as_ref(), old, mutating).await {
        Ok(Called {
            patched,
            warnings: w,
        }) => {
            warnings.extend(w);
            let changed = patched.as_ref().is_some_and(|p| Some(p) != object.as_ref());
            if let Some(p) = patched {
                *object = Some(p);
            }
            Ok(Some(changed))
        }
        Err(CallError::Denied(e)) => Err(e),
        Err(CallError::Failed(msg)) if fail_open => {
            tracing::warn!(webhook = %name, "failed calling webhook, failurePolicy Ignore: {msg}");
            Ok(Some(false))
        }
        Err(CallError::Failed(msg)) => Err(ApiError::internal(format!(
            "failed calling webhook \"{name}\": {msg}"
        ))),
    }
}

/// `matchConditions`: CEL expressions over `object`, `oldObject` and `request`; all must hold.
/// (An expression that fails to compile or evaluate counts as not matching.)
fn match_conditions(
    hook: &Value,
    a: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> bool {
    let Some(conds) = hook
        .get("matchConditions")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    else {
        return true;
    };
    use kube::core::cel::{
        AdmissionRequest, GroupVersionKind, GroupVersionResource, VapEvaluator, VapExpression,
    };
    let request = AdmissionRequest {
        operation: a.operation.to_string(),
        username: "test-admin".into(),
        uid: "test-admin".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
        name: a.name.to_string(),
        namespace: a.namespace.to_string(),
        dry_run: a.dry_run,
        kind: GroupVersionKind {
            group: a.res.group.clone(),
            version: a.version.to_string(),
            kind: a.res.kind.clone(),
        },
        resource: GroupVersionResource {
            group: a.res.group.clone(),
            version: a.version.to_string(),
            resource: a.res.plural.clone(),
        },
    };
    let eval = VapEvaluator::builder()
        .object(object.cloned().unwrap_or(Value::Null))
        .old_object(old.cloned().unwrap_or(Value::Null))
        .request(request)
        .build();
    let exprs: Vec<VapExpression> = conds
        .iter()
        .map(|c| VapExpression {
            expression: c
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or("false")
                .to_string(),
            message: None,
            message_expression: None,
        })
        .collect();
    eval.evaluate(&exprs).iter().all(|r| r.passed)
}

struct Called {
    patched: Option<Value>,
    warnings: Vec<String>,
}

enum CallError {
    Denied(ApiError),
    Failed(String),
}

async fn call(
    hook: &Value,
    name: &str,
    version: &str,
    a: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
    mutating: bool,
) -> Result<Called, CallError> {
    let review_versions = strs(hook.get("admissionReviewVersions"));
    if !review_versions.iter().any(|v| v == "v1") {
        return Err(CallError::Failed(format!(
            "webhook does not accept v1 AdmissionReview (admissionReviewVersions {review_versions:?})"
        )));
    }
    // With matchPolicy Equivalent the webhook sees the object at the version its rule names.
    let obj_v = at_version(a, version, object).await?;
    let old_v = at_version(a, version, old).await?;
    let uid = crate::server::new_uid();
    let request = json!({
        "uid": uid,
        "kind": {"group": a.res.group, "version": version, "kind": a.res.kind},
        "resource": {"group": a.res.group, "version": version, "resource": a.res.plural},
        "subResource": if a.subresource.is_empty() { Value::Null } else { json!(a.subresource) },
        "requestKind": {"group": a.res.group, "version": a.version, "kind": a.res.kind},
        "requestResource": {"group": a.res.group, "version": a.version, "resource": a.res.plural},
        "requestSubResource": if a.subresource.is_empty() { Value::Null } else { json!(a.subresource) },
        "name": a.name,
        "namespace": if a.namespace.is_empty() { Value::Null } else { json!(a.namespace) },
        "operation": a.operation,
        "userInfo": {"username": "test-admin", "uid": "test-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": obj_v.clone().unwrap_or(Value::Null),
        "oldObject": old_v.unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": a.options,
    });
    let review =
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
    let timeout = Duration::from_secs(
        hook.get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(10)
            .clamp(1, 30),
    );
    let client_config = hook.get("clientConfig").cloned().unwrap_or(json!({}));
    let answer = webhook::post_review(&client_config, a.service_map, &review, timeout)
        .await
        .map_err(|e| CallError::Failed(format!("failed to call webhook: {e}")))?;
    let response = answer.get("response").ok_or_else(|| {
        CallError::Failed("received invalid webhook response: response is missing".into())
    })?;
    if response.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
        return Err(CallError::Failed(format!(
            "expected response.uid=\"{uid}\", got {:?}",
            response.get("uid")
        )));
    }
    let warnings = strs(response.get("warnings"));
    if !response
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        // AdmissionResponse carries its metav1.Status under `status`.
        let result = response.get("status").cloned().unwrap_or(json!({}));
        let msg = result
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let message = if msg.is_empty() {
            format!("admission webhook \"{name}\" denied the request without explanation")
        } else {
            format!("admission webhook \"{name}\" denied the request: {msg}")
        };
        let code = result.get("code").and_then(Value::as_u64).unwrap_or(0);
        let code = if code < 400 { 400 } else { code.min(599) } as u16;
        let reason = result
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut err = ApiError::new(code, reason, message);
        if let Some(d) = result.get("details") {
            err = err.with_details(d.clone());
        }
        return Err(CallError::Denied(err));
    }
    let mut patched = None;
    if mutating {
        if let Some(patch) = response.get("patch").and_then(Value::as_str) {
            if response.get("patchType").and_then(Value::as_str) != Some("JSONPatch") {
                return Err(CallError::Failed(
                    "received invalid webhook response: patchType must be JSONPatch".into(),
                ));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .map_err(|e| CallError::Failed(format!("patch is not base64: {e}")))?;
            let p: json_patch::Patch = serde_json::from_slice(&raw)
                .map_err(|e| CallError::Failed(format!("patch is not a JSON patch: {e}")))?;
            let mut target = obj_v.unwrap_or(Value::Null);
            json_patch::patch(&mut target, &p)
                .map_err(|e| CallError::Failed(format!("applying the webhook's patch: {e}")))?;
            if version != a.version {
                target = conversion::convert(a.res, vec![target], a.version, a.service_map)
                    .await
                    .map_err(|e| CallError::Failed(e.message))?
                    .pop()
                    .unwrap_or(Value::Null);
            }
            patched = Some(target);
        }
    }
    Ok(Called { patched, warnings })
}

/// With matchPolicy Equivalent the webhook sees the object at the version its rule names.
async fn at_version(
    a: &Attributes<'_>,
    version: &str,
    o: Option<&Value>,
) -> Result<Option<Value>, CallError> {
    match o {
        Some(o) if version != a.version => {
            conversion::convert(a.res, vec![o.clone()], version, a.service_map)
                .await
                .map(|mut v| v.pop())
                .map_err(|e| CallError::Failed(e.message))
        }
        other => Ok(other.cloned()),
    }
}
