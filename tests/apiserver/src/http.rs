//! The HTTP edge: path parsing, discovery, faults, the request log, content negotiation.

use crate::error::{ApiError, ApiResult};
use crate::resources;
use crate::server::{Inner, PatchKind, Req, WriteOp};
use crate::store::{self, RequestRecord, Verb};
use crate::watch::{self, Render};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Shared state of the router.
#[derive(Clone)]
pub struct App {
    pub inner: Arc<Inner>,
    pub bookmark_every: Duration,
    pub version: Value,
}

/// The router serving everything (a single fallback: Kubernetes paths are parsed by hand).
pub fn router(app: App) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

fn json_response(code: u16, v: &Value, warnings: &[String]) -> Response {
    let mut resp = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        axum::Json(v),
    )
        .into_response();
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(h) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A resource path, split but not yet resolved.
struct ResPath {
    group: String,
    version: String,
    namespace: String,
    resource: String,
    name: String,
    sub: String,
}

fn split_resource_path(group: &str, version: &str, rest: &[&str]) -> Option<ResPath> {
    let mk = |ns: &str, r: &str, n: &str, s: &str| ResPath {
        group: group.into(),
        version: version.into(),
        namespace: ns.into(),
        resource: r.into(),
        name: n.into(),
        sub: s.into(),
    };
    match rest {
        [r] => Some(mk("", r, "", "")),
        ["namespaces", n] if group.is_empty() => Some(mk("", "namespaces", n, "")),
        ["namespaces", n, s @ ("status" | "finalize")] if group.is_empty() => {
            Some(mk("", "namespaces", n, s))
        }
        ["namespaces", ns, r] => Some(mk(ns, r, "", "")),
        ["namespaces", ns, r, n] => Some(mk(ns, r, n, "")),
        ["namespaces", ns, r, n, s] => Some(mk(ns, r, n, s)),
        [r, n] => Some(mk("", r, n, "")),
        [r, n, s] => Some(mk("", r, n, s)),
        _ => None,
    }
}

async fn handle(
    axum::extract::State(app): axum::extract::State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let path = uri.path().trim_end_matches('/').to_string();
    let query = parse_query(uri.query());
    let user_agent = headers
        .get("user-agent")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let parsed = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => split_resource_path("", "v1", rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => split_resource_path(g, v, rest),
        _ => None,
    };
    let mut record = RequestRecord {
        verb: Verb::NonResource,
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or("").to_string(),
        group: String::new(),
        version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        content_type: headers
            .get("content-type")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string(),
        field_manager: query.get("fieldManager").cloned().unwrap_or_default(),
        user_agent: user_agent.clone(),
        status: 0,
    };
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    if let Some(p) = &parsed {
        record.group = p.group.clone();
        record.version = p.version.clone();
        record.resource = p.resource.clone();
        record.subresource = p.sub.clone();
        record.namespace = p.namespace.clone();
        record.name = p.name.clone();
        record.verb = match (&method, p.name.is_empty()) {
            (&Method::GET, false) => Verb::Get,
            (&Method::GET, true) if watching => Verb::Watch,
            (&Method::GET, true) => Verb::List,
            (&Method::POST, _) => Verb::Create,
            (&Method::PUT, _) => Verb::Update,
            (&Method::PATCH, _) => Verb::Patch,
            (&Method::DELETE, false) => Verb::Delete,
            (&Method::DELETE, true) => Verb::DeleteCollection,
            _ => Verb::NonResource,
        };
    }

    // Faults and latency armed by the test.
    let (fault, latency) = {
        let mut st = app.inner.lock();
        let verb = record.verb;
        let res = record.resource.clone();
        let hit = st.faults.iter_mut().find(|f| {
            f.remaining > 0
                && f.verb.is_none_or(|v| v == verb)
                && f.resource.as_ref().is_none_or(|r| *r == res)
        });
        let fault = hit.map(|f| {
            f.remaining -= 1;
            ApiError::new(f.code, reason_for(f.code), f.message.clone())
        });
        st.faults.retain(|f| f.remaining > 0);
        (fault, st.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match fault {
        Some(e) => e.into_response(),
        None => match parsed {
            Some(p) => {
                resource_request(&app, p, query, &headers, body, &user_agent, record.verb).await
            }
            None => non_resource(&app, &segs, &headers).await,
        },
    };
    record.status = response.status().as_u16();
    tracing::debug!(method = %record.method, path = %record.path, query = %record.query, status = record.status, "request");
    // TEST_APISERVER_TRACE=1: one line per request on stderr, to see what a test really did.
    if std::env::var_os("TEST_APISERVER_TRACE").is_some() {
        eprintln!(
            "test-apiserver {} {} {}{}{} -> {} ({} ms)",
            store::now_rfc3339(),
            record.method,
            record.path,
            if record.query.is_empty() { "" } else { "?" },
            record.query,
            record.status,
            started.elapsed().as_millis()
        );
    }
    app.inner.lock().requests.push(record);
    response
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

async fn non_resource(app: &App, segs: &[&str], headers: &HeaderMap) -> Response {
    let all = app.inner.lock().resources();
    let ok = |v: Value| json_response(200, &v, &[]);
    // Aggregated discovery when the client asks for it first (kubectl, client-go), with the
    // content type that says what was served; the legacy documents otherwise.
    let accept = headers
        .get("accept")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let wants_aggregated = accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=APIGroupDiscoveryList") && first.contains("v=v2"));
    if wants_aggregated && matches!(segs, ["api"] | ["apis"]) {
        let doc = resources::aggregated(&all, segs == ["api"]);
        let mut resp = json_response(200, &doc, &[]);
        resp.headers_mut().insert(
            "content-type",
            HeaderValue::from_static(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            ),
        );
        return resp;
    }
    match segs {
        ["version"] => ok(app.version.clone()),
        ["healthz" | "readyz" | "livez"] => (StatusCode::OK, "ok").into_response(),
        ["api"] => ok(
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["api", "v1"] => resources::resource_list(&all, "", "v1")
            .map(ok)
            .unwrap_or_else(|| ApiError::not_found_path().into_response()),
        ["apis"] => ok(resources::group_list(&all)),
        ["apis", g] => resources::api_group(&all, g)
            .map(ok)
            .unwrap_or_else(|| ApiError::not_found_path().into_response()),
        ["openapi", "v3"] => ok(crate::openapi::root(&all)),
        ["openapi", "v3", "api", v] => crate::openapi::gv_document(&all, "", v)
            .map(ok)
            .unwrap_or_else(|| ApiError::not_found_path().into_response()),
        ["openapi", "v3", "apis", g, v] => crate::openapi::gv_document(&all, g, v)
            .map(ok)
            .unwrap_or_else(|| ApiError::not_found_path().into_response()),
        ["apis", g, v] => resources::resource_list(&all, g, v)
            .map(ok)
            .unwrap_or_else(|| ApiError::not_found_path().into_response()),
        _ => ApiError::not_found_path().into_response(),
    }
}

/// `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` (first choice).
fn wants_metadata(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
        })
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let ct = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("protobuf") {
        return crate::protobuf::decode(body).map_err(|why| {
            ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({why})"))
        });
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
        serde_yaml::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource_request(
    app: &App,
    p: ResPath,
    query: HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    user_agent: &str,
    verb: Verb,
) -> Response {
    match resource_request_inner(app, p, query, headers, body, user_agent, verb).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource_request_inner(
    app: &App,
    p: ResPath,
    query: HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    user_agent: &str,
    verb: Verb,
) -> ApiResult<Response> {
    let res = app
        .inner
        .lock()
        .find_resource(&p.group, &p.resource)
        .filter(|r| r.served_version(&p.version).is_some())
        .ok_or_else(ApiError::not_found_path)?;
    if !res.namespaced && !p.namespace.is_empty() {
        return Err(ApiError::not_found_path());
    }
    let vinfo = res
        .version(&p.version)
        .ok_or_else(ApiError::not_found_path)?;
    match p.sub.as_str() {
        "" => {}
        "status" if vinfo.status => {}
        "scale" if vinfo.scale.is_some() => {}
        "finalize" if res.group.is_empty() && res.plural == "namespaces" => {}
        _ => return Err(ApiError::not_found_path()),
    }
    if !p.sub.is_empty() && !matches!(verb, Verb::Get | Verb::Update | Verb::Patch) {
        return Err(ApiError::method_not_allowed());
    }
    let field_manager = query
        .get("fieldManager")
        .cloned()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| match user_agent.split('/').next() {
            Some(ua) if !ua.is_empty() => ua.to_string(),
            _ => "unknown".to_string(),
        });
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    let req = Req {
        res: res.clone(),
        version: p.version.clone(),
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        sub: p.sub.clone(),
        query,
        field_manager,
        dry_run,
    };
    let inner = &app.inner;
    let table = wants_table(headers);
    let metadata_only = wants_metadata(headers);
    let include = req
        .q("includeObject")
        .unwrap_or("PartialObjectMetadata")
        .to_string();
    match verb {
        Verb::Get => {
            let obj = inner.get(&req).await?;
            if table && req.sub.is_empty() {
                return Ok(json_response(
                    200,
                    &crate::table::table(&res, &req.version, &[obj], json!({}), &include),
                    &[],
                ));
            }
            if metadata_only && req.sub.is_empty() {
                return Ok(json_response(
                    200,
                    &crate::table::partial_metadata(&obj),
                    &[],
                ));
            }
            Ok(json_response(200, &obj, &[]))
        }
        Verb::List => {
            let list = inner.list(&req).await?;
            if table {
                let items = list["items"].as_array().cloned().unwrap_or_default();
                return Ok(json_response(
                    200,
                    &crate::table::table(
                        &res,
                        &req.version,
                        &items,
                        list["metadata"].clone(),
                        &include,
                    ),
                    &[],
                ));
            }
            if metadata_only {
                let items: Vec<Value> = list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(crate::table::partial_metadata)
                    .collect();
                let out = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list["metadata"], "items": items});
                return Ok(json_response(200, &out, &[]));
            }
            Ok(json_response(200, &list, &[]))
        }
        Verb::Watch => {
            let render = if table {
                Render::Table
            } else if metadata_only {
                Render::Metadata
            } else {
                Render::Object
            };
            let rx = watch::start(inner.clone(), req, render, app.bookmark_every)?;
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
            });
            let mut resp = Response::new(Body::from_stream(stream));
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            Ok(resp)
        }
        Verb::Create => {
            if !req.name.is_empty() {
                return Err(ApiError::method_not_allowed());
            }
            let obj = parse_body(headers, &body)?;
            let w = inner.write(&req, WriteOp::Create(obj), user_agent).await?;
            Ok(json_response(201, &w.object, &w.warnings))
        }
        Verb::Update => {
            let obj = parse_body(headers, &body)?;
            let w = inner.write(&req, WriteOp::Update(obj), user_agent).await?;
            Ok(json_response(200, &w.object, &w.warnings))
        }
        Verb::Patch => {
            let ct = headers
                .get("content-type")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string();
            let kind = match ct.split(';').next().unwrap_or("").trim() {
                "application/json-patch+json" => PatchKind::Json,
                "application/merge-patch+json" => PatchKind::Merge,
                "application/strategic-merge-patch+json" if res.accepts_strategic_merge() => PatchKind::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+cbor" if !ct.contains("cbor") => PatchKind::Apply,
                _ => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{}", if res.accepts_strategic_merge() { ", application/strategic-merge-patch+json" } else { "" }),
                    ))
                }
            };
            if kind == PatchKind::Apply && req.q("fieldManager").is_none() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            if kind != PatchKind::Apply && req.q("force").is_some() {
                return Err(ApiError::new(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"));
            }
            let text_ct: HeaderMap = if kind == PatchKind::Apply {
                let mut h = HeaderMap::new();
                h.insert("content-type", HeaderValue::from_static("application/yaml"));
                h
            } else {
                HeaderMap::new()
            };
            let patch = parse_body(&text_ct, &body)?;
            let w = inner
                .write(&req, WriteOp::Patch(kind, patch), user_agent)
                .await?;
            Ok(json_response(
                if w.created { 201 } else { 200 },
                &w.object,
                &w.warnings,
            ))
        }
        Verb::Delete => {
            let opts = if body.is_empty() {
                json!({})
            } else {
                parse_body(headers, &body)?
            };
            let (obj, code) = inner.delete(&req, &opts).await?;
            Ok(json_response(code, &obj, &[]))
        }
        Verb::DeleteCollection => {
            let opts = if body.is_empty() {
                json!({})
            } else {
                parse_body(headers, &body)?
            };
            let list = inner.list(&req).await?;
            let mut deleted = vec![];
            for item in list["items"].as_array().cloned().unwrap_or_default() {
                let mut one = req.clone();
                one.name = crate::store::meta_str(&item, "name").to_string();
                one.namespace = crate::store::meta_str(&item, "namespace").to_string();
                match inner.delete(&one, &opts).await {
                    Ok((o, _)) => deleted.push(o),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let out = json!({"apiVersion": res.api_version(&req.version), "kind": res.list_kind, "metadata": list["metadata"], "items": deleted});
            Ok(json_response(200, &out, &[]))
        }
        Verb::NonResource => Err(ApiError::method_not_allowed()),
    }
}
