//! Converting stored objects between the served versions of a CRD: strategy `None` rewrites
//! `apiVersion`; strategy `Webhook` sends a `ConversionReview` to the CRD's conversion webhook.

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;
use crate::webhook;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Whether any of `objs` is not at `version` of `res` (so [`convert`] has work to do).
pub fn needed(res: &ResourceInfo, objs: &[Value], version: &str) -> bool {
    let desired = res.api_version(version);
    objs.iter()
        .any(|o| o.get("apiVersion").and_then(Value::as_str) != Some(desired.as_str()))
}

/// Convert `objs` to `version` of `res`. Objects already at that version pass through untouched.
pub async fn convert(
    res: &ResourceInfo,
    objs: Vec<Value>,
    version: &str,
    service_map: &HashMap<String, String>,
) -> ApiResult<Vec<Value>> {
    let desired = res.api_version(version);
    let needs = |o: &Value| o.get("apiVersion").and_then(Value::as_str) != Some(desired.as_str());
    if !objs.iter().any(needs) {
        return Ok(objs);
    }
    let conversion = res.crd.as_ref().and_then(|c| c.pointer("/spec/conversion"));
    let strategy = conversion
        .and_then(|c| c.get("strategy"))
        .and_then(Value::as_str)
        .unwrap_or("None");
    if strategy != "Webhook" {
        return Ok(objs
            .into_iter()
            .map(|mut o| {
                o["apiVersion"] = json!(desired);
                o
            })
            .collect());
    }
    let fail = |msg: String| {
        ApiError::internal(format!(
            "conversion webhook for {}, Kind={} failed: {msg}",
            desired, res.kind
        ))
    };
    let wh = conversion
        .and_then(|c| c.get("webhook"))
        .ok_or_else(|| fail("no webhook configured".into()))?;
    let review_versions: Vec<&str> = wh
        .get("conversionReviewVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !review_versions.contains(&"v1") {
        return Err(fail(format!(
            "no supported conversionReviewVersions in {review_versions:?} (this server speaks v1)"
        )));
    }
    let client_config = wh.get("clientConfig").cloned().unwrap_or(json!({}));
    let to_convert: Vec<Value> = objs.iter().filter(|o| needs(o)).cloned().collect();
    let uid = crate::server::new_uid();
    let review = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": to_convert},
    });
    let answer = webhook::post_review(
        &client_config,
        service_map,
        &review,
        Duration::from_secs(30),
    )
    .await
    .map_err(&fail)?;
    let response = answer
        .get("response")
        .ok_or_else(|| fail("response is missing".into()))?;
    if response.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
        return Err(fail(format!("expected response uid {uid:?}")));
    }
    if response.pointer("/result/status").and_then(Value::as_str) != Some("Success") {
        let msg = response
            .pointer("/result/message")
            .and_then(Value::as_str)
            .unwrap_or("conversion failed");
        return Err(fail(msg.to_string()));
    }
    let converted = response
        .get("convertedObjects")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| fail("convertedObjects is missing".into()))?;
    if converted.len() != to_convert.len() {
        return Err(fail(format!(
            "expected {} converted objects, got {}",
            to_convert.len(),
            converted.len()
        )));
    }
    let mut converted = converted.into_iter();
    let mut out = Vec::with_capacity(objs.len());
    for original in objs {
        if !needs(&original) {
            out.push(original);
            continue;
        }
        let mut c = converted.next().unwrap_or_default();
        if c.get("apiVersion").and_then(Value::as_str) != Some(desired.as_str()) {
            return Err(fail(format!(
                "invalid converted object: expected apiVersion {desired}"
            )));
        }
        // Like the apiserver, only labels and annotations may be changed by a conversion.
        let mut md = original.get("metadata").cloned().unwrap_or(json!({}));
        for k in ["labels", "annotations"] {
            match c.pointer(&format!("/metadata/{k}")) {
                Some(v) => md[k] = v.clone(),
                None => {
                    if let Some(m) = md.as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        c["metadata"] = md;
        c["kind"] = original.get("kind").cloned().unwrap_or(json!(res.kind));
        out.push(c);
    }
    Ok(out)
}
