//! The verbs: get, list, create, update, patch, delete, over the store, with the admission chain,
//! schema checks and conversion in the order kube-apiserver runs them.

use crate::admission::{self, Attributes};
use crate::conversion;
use crate::error::{ApiError, ApiResult, FieldCause};
use crate::managed;
use crate::resources::ResourceInfo;
use crate::schema;
use crate::selectors::{builtin_fields, FieldSelector, LabelSelector};
use crate::store::{finalizers, meta_str, now_rfc3339, set_finalizers, State, CRD_RES, NS_RES};
use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, Notify};

pub struct Inner {
    pub state: Mutex<State>,
    /// Bumped to close every open watch stream.
    pub kill_watches: tokio::sync::watch::Sender<u64>,
    /// Wakes the garbage collector.
    pub gc: Notify,
}

/// A random RFC 4122 version-4 uid.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    let var = format!("{:02x}", (b[8] & 0x3f) | 0x80);
    format!(
        "{}-{}-4{}-{}{}-{}",
        h(0..4),
        h(4..6),
        &h(6..8)[1..],
        var,
        h(9..10),
        h(10..16)
    )
}

fn random_suffix() -> String {
    // The alphabet of apimachinery's name generator (no vowels, no confusable characters).
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..5)
        .map(|_| ALPHA[r.random_range(0..ALPHA.len())] as char)
        .collect()
}

/// One parsed resource request.
#[derive(Clone, Debug)]
pub struct Req {
    pub res: Arc<ResourceInfo>,
    pub version: String,
    /// Empty for cluster-scoped resources and all-namespace lists.
    pub namespace: String,
    pub name: String,
    pub sub: String,
    pub query: HashMap<String, String>,
    pub field_manager: String,
    pub dry_run: bool,
}

impl Req {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// What a write asks for.
pub enum WriteOp {
    Create(Value),
    Update(Value),
    /// A parsed patch body with its content type.
    Patch(PatchKind, Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// The answer to a write.
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

fn is_valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !p.starts_with('-')
                && !p.ends_with('-')
        })
}

/// Kinds whose `metadata.generation` the apiserver maintains (custom resources and the built-ins
/// with a spec it versions; ConfigMaps, Secrets and most core kinds have none).
fn tracks_generation(res: &ResourceInfo) -> bool {
    res.crd.is_some()
        || matches!(
            res.group.as_str(),
            "apps"
                | "batch"
                | "autoscaling"
                | "policy"
                | "networking.k8s.io"
                | "apiextensions.k8s.io"
                | "admissionregistration.k8s.io"
        )
}

fn strip_for_generation(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// The object as compared for no-op detection: without resourceVersion and managedFields times.
fn without_rv_and_managed(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("resourceVersion");
        if let Some(Value::Array(entries)) = md.get_mut("managedFields") {
            for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("time");
            }
        }
    }
    o
}

impl Inner {
    pub fn new() -> Arc<Self> {
        let (tx, _) = broadcast::channel(crate::store::WATCH_BUFFER);
        let (kill, _) = tokio::sync::watch::channel(0);
        let mut st = State::new(tx);
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = namespace_object(ns);
            st.put(&(NS_RES.0.into(), NS_RES.1.into()), obj);
        }
        Arc::new(Self {
            state: Mutex::new(st),
            kill_watches: kill,
            gc: Notify::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not wedge every later request.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn service_map(&self) -> HashMap<String, String> {
        self.lock().service_map.clone()
    }

    pub async fn to_version(
        &self,
        res: &ResourceInfo,
        objs: Vec<Value>,
        version: &str,
    ) -> ApiResult<Vec<Value>> {
        if !conversion::needed(res, &objs, version) {
            // The common case (every watch event of every watcher): no lock, no copy.
            return Ok(objs);
        }
        let map = self.service_map();
        conversion::convert(res, objs, version, &map).await
    }

    async fn one_to_version(
        &self,
        res: &ResourceInfo,
        obj: Value,
        version: &str,
    ) -> ApiResult<Value> {
        Ok(self
            .to_version(res, vec![obj], version)
            .await?
            .pop()
            .unwrap_or(Value::Null))
    }

    pub async fn get(&self, req: &Req) -> ApiResult<Value> {
        let obj = self
            .lock()
            .get(&req.res.key(), &req.namespace, &req.name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&req.res.qualified(), &req.name))?;
        let obj = self.one_to_version(&req.res, obj, &req.version).await?;
        if req.sub == "scale" {
            return scale_of(&req.res, &req.version, &obj);
        }
        Ok(obj)
    }

    /// Parse and check `labelSelector` / `fieldSelector` for a resource.
    pub fn selectors(&self, req: &Req) -> ApiResult<(LabelSelector, FieldSelector)> {
        let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(req.q("fieldSelector").unwrap_or(""))?;
        let mut allowed: Vec<String> = vec!["metadata.name".into(), "metadata.namespace".into()];
        allowed.extend(
            builtin_fields(&req.res.group, &req.res.plural)
                .iter()
                .map(|s| s.to_string()),
        );
        if let Some(v) = req.res.version(&req.version) {
            allowed.extend(
                v.selectable_fields
                    .iter()
                    .map(|f| f.trim_start_matches('.').to_string()),
            );
        }
        for f in fields.fields() {
            if !allowed.iter().any(|a| a == f) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {f}"
                )));
            }
        }
        Ok((labels, fields))
    }

    pub async fn list(&self, req: &Req) -> ApiResult<Value> {
        let (labels, fields) = self.selectors(req)?;
        let limit: usize = req.q("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        let after: Option<(String, String)> = match req.q("continue") {
            Some(tok) => Some(decode_continue(tok)?),
            None => None,
        };
        let (items, rv, more) = {
            let st = self.lock();
            let mut matching: Vec<Value> = st.list_matching(&req.res.key(), &req.namespace, |o| {
                labels.matches_object(o)
                    && fields.matches(o)
                    && match &after {
                        Some((ns, n)) => {
                            (meta_str(o, "namespace"), meta_str(o, "name"))
                                > (ns.as_str(), n.as_str())
                        }
                        None => true,
                    }
            });
            let mut more = 0;
            if limit > 0 && matching.len() > limit {
                more = matching.len() - limit;
                matching.truncate(limit);
            }
            (matching, st.rv, more)
        };
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if more > 0 {
            if let Some(last) = items.last() {
                let tok = format!("{}/{}", meta_str(last, "namespace"), meta_str(last, "name"));
                metadata["continue"] =
                    json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok));
                metadata["remainingItemCount"] = json!(more);
            }
        }
        let items = self.to_version(&req.res, items, &req.version).await?;
        Ok(json!({
            "apiVersion": req.res.api_version(&req.version), "kind": req.res.list_kind,
            "metadata": metadata, "items": items,
        }))
    }

    /// Create, update or patch, with admission, schema checks and conversion; retried when the
    /// object changes underneath (as the apiserver's GuaranteedUpdate does).
    pub async fn write(&self, req: &Req, op: WriteOp, user_agent: &str) -> ApiResult<Written> {
        for _ in 0..16 {
            if let Some(w) = self.try_write(req, &op, user_agent).await? {
                return Ok(w);
            }
        }
        Err(ApiError::conflict(&req.res.qualified(), &req.name))
    }

    async fn try_write(
        &self,
        req: &Req,
        op: &WriteOp,
        _user_agent: &str,
    ) -> ApiResult<Option<Written>> {
        let res = &req.res;
        let key = res.key();
        let (stored, ns_labels, ns_state, mutating, validating, service_map) = {
            let st = self.lock();
            let ns_obj = if res.namespaced {
                st.get(&(NS_RES.0.into(), NS_RES.1.into()), "", &req.namespace)
            } else {
                None
            };
            let configs = |plural: &str| {
                admission::sorted_configs(
                    st.list(&("admissionregistration.k8s.io".into(), plural.into()), ""),
                )
            };
            (
                st.get(&key, &req.namespace, &req.name).cloned(),
                ns_obj
                    .as_ref()
                    .and_then(|n| n.pointer("/metadata/labels"))
                    .cloned(),
                ns_obj.map(|n| !meta_str(n, "deletionTimestamp").is_empty()),
                configs("mutatingwebhookconfigurations"),
                configs("validatingwebhookconfigurations"),
                st.service_map.clone(),
            )
        };
        if res.namespaced && req.namespace.is_empty() {
            return Err(ApiError::bad_request(
                "the server could not find the requested resource: a namespace is required",
            ));
        }
        let stored_rv = stored
            .as_ref()
            .map(|s| meta_str(s, "resourceVersion").to_string());
        let old = match stored {
            Some(o) => Some(
                conversion::convert(res, vec![o], &req.version, &service_map)
                    .await?
                    .pop()
                    .unwrap_or(Value::Null),
            ),
            None => None,
        };
        let api_version = res.api_version(&req.version);
        let now = now_rfc3339();
        let has_status = res.version(&req.version).is_some_and(|v| v.status);
        let typer = managed::Typer::new(res.version(&req.version).and_then(|v| v.schema.clone()));

        // 1. The object the request asks for.
        let (mut new, creating) = match (op, &old) {
            (WriteOp::Create(body), _) => (body.clone(), true),
            (WriteOp::Update(_) | WriteOp::Patch(..), None) if req.sub == "scale" => {
                return Err(ApiError::not_found(&res.qualified(), &req.name))
            }
            (WriteOp::Update(_), None) => {
                return Err(ApiError::not_found(&res.qualified(), &req.name))
            }
            (WriteOp::Patch(PatchKind::Apply, body), None) => {
                if !req.sub.is_empty() {
                    return Err(ApiError::not_found(&res.qualified(), &req.name));
                }
                let skeleton = json!({"apiVersion": api_version, "kind": res.kind, "metadata": {"name": req.name, "namespace": req.namespace}});
                let applied = managed::apply(
                    &skeleton,
                    body,
                    &managed::Applier {
                        manager: &req.field_manager,
                        api_version: &api_version,
                        subresource: "",
                        has_status,
                        force: true,
                        now: &now,
                        typer: &typer,
                    },
                )
                .map_err(|c| ApiError::new(409, "Conflict", managed::conflict_message(&c)))?;
                (applied, true)
            }
            (WriteOp::Patch(..), None) => {
                return Err(ApiError::not_found(&res.qualified(), &req.name))
            }
            (WriteOp::Update(body), Some(old)) if req.sub == "scale" => {
                (apply_scale(res, &req.version, old, body)?, false)
            }
            (WriteOp::Patch(kind, body), Some(old)) if req.sub == "scale" => {
                let scale = scale_of(res, &req.version, old)?;
                let patched = patch_value(&scale, *kind, body, req, has_status, &now)?;
                (apply_scale(res, &req.version, old, &patched)?, false)
            }
            (WriteOp::Update(body), Some(_)) => (body.clone(), false),
            (WriteOp::Patch(kind, body), Some(old)) => {
                (patch_value(old, *kind, body, req, has_status, &now)?, false)
            }
        };
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        check_type_and_names(req, &mut new, creating)?;
        if creating && res.namespaced && ns_state.is_none() {
            return Err(ApiError::not_found("namespaces", &req.namespace));
        }
        if creating && ns_state == Some(true) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated", res.qualified(), meta_str(&new, "name"), req.namespace),
            ));
        }

        // 2. Optimistic concurrency: a resourceVersion in the body is a precondition.
        if let (Some(old_rv), false) = (&stored_rv, creating) {
            let asked = meta_str(&new, "resourceVersion");
            if !asked.is_empty() && asked != old_rv {
                return Err(ApiError::conflict(&res.qualified(), &req.name));
            }
        }

        // 3. What the endpoint lets through (status vs main resource) and what the server owns.
        if let Some(old) = &old {
            isolate_update(res, has_status, &req.sub, old, &mut new);
        } else if has_status {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }

        // 4. Built-ins get the apiserver's defaults; custom resources are pruned and defaulted
        //    from their schema. Both before admission, as on decode.
        if req.sub.is_empty() && res.crd.is_none() {
            crate::defaults::apply(&res.group, &res.kind, &mut new);
        }
        // (custom resources)
        let schema = res.version(&req.version).and_then(|v| v.schema.clone());
        let mut warnings = vec![];
        if let Some(s) = &schema {
            let unknown = schema::prune(s, &mut new);
            // fieldValidation: Strict fails on unknown fields, Warn (the default) warns, Ignore drops.
            match req.q("fieldValidation").unwrap_or("Warn") {
                "Strict" if !unknown.is_empty() => {
                    let list: Vec<String> = unknown
                        .iter()
                        .map(|u| format!("unknown field \"{u}\""))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        res.kind,
                        req.version,
                        res.kind,
                        list.join(", ")
                    )));
                }
                "Ignore" | "Strict" => {}
                _ => warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\""))),
            }
            new = schema::default(s, &new);
        }

        // 5. Mutating admission, schema validation, validating admission.
        let skip_webhooks = res.group == "admissionregistration.k8s.io" || req.sub == "scale";
        let admitted_name = if creating {
            meta_str(&new, "name").to_string()
        } else {
            req.name.clone()
        };
        let attrs = Attributes {
            operation: if creating { "CREATE" } else { "UPDATE" },
            res,
            version: &req.version,
            subresource: &req.sub,
            namespace: &req.namespace,
            name: &admitted_name,
            dry_run: req.dry_run,
            options: if creating {
                json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": req.field_manager})
            } else {
                json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": req.field_manager})
            },
            namespace_labels: ns_labels,
            service_map: &service_map,
        };
        if !skip_webhooks {
            let out =
                admission::run(&mutating, true, &attrs, Some(new.clone()), old.as_ref()).await?;
            warnings.extend(out.warnings);
            if let Some(o) = out.object {
                new = o;
            }
            if let Some(s) = &schema {
                schema::prune(s, &mut new);
            }
        }
        let mut causes = vec![];
        if let Some(s) = &schema {
            causes.extend(schema::validate(s, &new));
            if causes.is_empty() {
                causes.extend(schema::validate_cel(s, &new, old.as_ref()));
            }
        }
        causes.extend(builtin_validation(res, &new, old.as_ref()));
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                &res.kind_group(),
                meta_str(&new, "name"),
                causes,
            ));
        }
        if !skip_webhooks {
            let out =
                admission::run(&validating, false, &attrs, Some(new.clone()), old.as_ref()).await?;
            warnings.extend(out.warnings);
        }

        // 6. Ownership of fields; then down to the storage version.
        let is_apply = matches!(op, WriteOp::Patch(PatchKind::Apply, _));
        if !is_apply {
            let manager_sub = if req.sub == "status" { "status" } else { "" };
            let who = managed::Applier {
                manager: &req.field_manager,
                api_version: &api_version,
                subresource: manager_sub,
                has_status,
                force: false,
                now: &now,
                typer: &typer,
            };
            managed::record_update(old.as_ref(), &mut new, &who);
        }
        let storage_version = res.storage_version().to_string();
        let to_store = conversion::convert(res, vec![new], &storage_version, &service_map)
            .await?
            .pop()
            .unwrap_or(Value::Null);

        // 7. Commit, unless someone else wrote in between (then start over).
        let committed = {
            let mut st = self.lock();
            let current = st.get(&key, &req.namespace, &req.name).cloned();
            let current_rv = current
                .as_ref()
                .map(|c| meta_str(c, "resourceVersion").to_string());
            if creating {
                commit_create(&mut st, req, to_store, current.as_ref(), &now)?
            } else if current_rv != stored_rv {
                return Ok(None);
            } else {
                commit_update(&mut st, req, to_store, current.as_ref())?
            }
        };
        self.gc.notify_one();
        let object = conversion::convert(res, vec![committed], &req.version, &service_map)
            .await?
            .pop()
            .unwrap_or(Value::Null);
        let object = if req.sub == "scale" {
            scale_of(res, &req.version, &object)?
        } else {
            object
        };
        Ok(Some(Written {
            object,
            warnings,
            created: creating,
        }))
    }

    /// DELETE of one object: finalizers and propagation policy decide whether it goes now.
    pub async fn delete(&self, req: &Req, options: &Value) -> ApiResult<(Value, u16)> {
        let res = &req.res;
        let key = res.key();
        let (stored, validating, service_map, ns_labels) = {
            let st = self.lock();
            let ns_labels = st
                .get(&(NS_RES.0.into(), NS_RES.1.into()), "", &req.namespace)
                .and_then(|n| n.pointer("/metadata/labels"))
                .cloned();
            (
                st.get(&key, &req.namespace, &req.name).cloned(),
                admission::sorted_configs(st.list(
                    &(
                        "admissionregistration.k8s.io".into(),
                        "validatingwebhookconfigurations".into(),
                    ),
                    "",
                )),
                st.service_map.clone(),
                ns_labels,
            )
        };
        let stored = stored.ok_or_else(|| ApiError::not_found(&res.qualified(), &req.name))?;
        check_preconditions(res, &req.name, &stored, options)?;
        let policy = options
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or(req.q("propagationPolicy"))
            .map(String::from)
            .or_else(|| {
                (options.get("orphanDependents").and_then(Value::as_bool) == Some(true))
                    .then(|| "Orphan".to_string())
            })
            .unwrap_or_else(|| "Background".into());
        if !matches!(policy.as_str(), "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{policy}\""
            )));
        }
        if res.group != "admissionregistration.k8s.io" {
            let old = conversion::convert(res, vec![stored.clone()], &req.version, &service_map)
                .await?
                .pop();
            let attrs = Attributes {
                operation: "DELETE",
                res,
                version: &req.version,
                subresource: "",
                namespace: &req.namespace,
                name: &req.name,
                dry_run: req.dry_run,
                options: json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "propagationPolicy": policy}),
                namespace_labels: ns_labels,
                service_map: &service_map,
            };
            admission::run(&validating, false, &attrs, None, old.as_ref()).await?;
        }
        if req.dry_run {
            let obj = conversion::convert(res, vec![stored], &req.version, &service_map)
                .await?
                .pop()
                .unwrap_or(Value::Null);
            return Ok((obj, 200));
        }
        let (obj, code) = {
            let mut st = self.lock();
            delete_locked(&mut st, &key, &req.namespace, &req.name, &policy)
                .ok_or_else(|| ApiError::not_found(&res.qualified(), &req.name))?
        };
        self.gc.notify_one();
        let obj = conversion::convert(res, vec![obj], &req.version, &service_map)
            .await?
            .pop()
            .unwrap_or(Value::Null);
        Ok((obj, code))
    }
}

pub fn namespace_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": new_uid(), "creationTimestamp": now_rfc3339(),
                     "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn decode_continue(tok: &str) -> ApiResult<(String, String)> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (ns, name) = s.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

fn check_preconditions(
    res: &ResourceInfo,
    name: &str,
    stored: &Value,
    options: &Value,
) -> ApiResult<()> {
    let pre = options.get("preconditions");
    let want = |k: &str| {
        pre.and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(uid) = want("uid") {
        if uid != meta_str(stored, "uid") {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}", res.qualified(), meta_str(stored, "uid")),
            ));
        }
    }
    if let Some(rv) = want("resourceVersion") {
        if rv != meta_str(stored, "resourceVersion") {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", res.qualified(), meta_str(stored, "resourceVersion")),
            ));
        }
    }
    Ok(())
}

/// Apply a patch document to `old` (at the request's version).
fn patch_value(
    old: &Value,
    kind: PatchKind,
    body: &Value,
    req: &Req,
    has_status: bool,
    now: &str,
) -> ApiResult<Value> {
    let mut new = old.clone();
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_value(body.clone()).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            json_patch::patch(&mut new, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchKind::Merge | PatchKind::Strategic => {
            if !body.is_object() {
                return Err(ApiError::bad_request("the server rejected our request due to an error in our request: patch must be a JSON object"));
            }
            if kind == PatchKind::Strategic {
                crate::strategic::apply(&mut new, body);
            } else {
                json_patch::merge(&mut new, body);
            }
        }
        PatchKind::Apply => {
            let api_version = req.res.api_version(&req.version);
            if let Some(v) = body.get("apiVersion").and_then(Value::as_str) {
                if v != api_version && req.sub != "scale" {
                    return Err(ApiError::bad_request(format!("apiVersion in the applied object ({v}) does not match the request ({api_version})")));
                }
            }
            let who = managed::Applier {
                manager: &req.field_manager,
                api_version: &api_version,
                subresource: &req.sub,
                has_status,
                force: req.q("force") == Some("true"),
                now,
                typer: &managed::Typer::new(
                    req.res.version(&req.version).and_then(|v| v.schema.clone()),
                ),
            };
            new = managed::apply(old, body, &who)
                .map_err(|c| {
                    let causes: Vec<Value> = c
                        .iter()
                        .map(|x| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", x.manager, x.api_version), "field": managed::conflict_field(x)}))
                        .collect();
                    ApiError::new(409, "Conflict", managed::conflict_message(&c)).with_details(json!({"causes": causes}))
                })?;
        }
    }
    Ok(new)
}

/// Server-owned metadata is kept from the stored object; status and main writes see only their part.
fn isolate_update(res: &ResourceInfo, has_status: bool, sub: &str, old: &Value, new: &mut Value) {
    for k in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
    ] {
        match old.get("metadata").and_then(|m| m.get(k)) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(md) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                    md.remove(k);
                }
            }
        }
    }
    if new
        .pointer("/metadata/resourceVersion")
        .is_none_or(|v| v.as_str().unwrap_or_default().is_empty())
    {
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    }
    let is_namespace = res.group.is_empty() && res.plural == "namespaces";
    match sub {
        // A namespace's spec (its finalizers) changes only through /finalize.
        "finalize" => {
            let spec = new.get("spec").cloned();
            *new = old.clone();
            if let Some(spec) = spec {
                new["spec"] = spec;
            }
        }
        "" if is_namespace => match old.get("spec") {
            Some(s) => new["spec"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("spec");
                }
            }
        },
        "status" => {
            let status = new.get("status").cloned();
            let managed = new.pointer("/metadata/managedFields").cloned();
            *new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = managed {
                new["metadata"]["managedFields"] = mf;
            }
        }
        _ if has_status => match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        },
        _ => {}
    }
}

fn check_type_and_names(req: &Req, new: &mut Value, creating: bool) -> ApiResult<()> {
    let res = &req.res;
    let api_version = res.api_version(&req.version);
    if req.sub != "scale" {
        if let Some(v) = new.get("apiVersion").and_then(Value::as_str) {
            if v != api_version {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        if let Some(k) = new.get("kind").and_then(Value::as_str) {
            if k != res.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    res.kind
                )));
            }
        }
        new["apiVersion"] = json!(api_version);
        new["kind"] = json!(res.kind);
    }
    if !new.get("metadata").is_some_and(Value::is_object) {
        new["metadata"] = json!({});
    }
    let body_ns = meta_str(new, "namespace").to_string();
    if res.namespaced {
        if !body_ns.is_empty() && body_ns != req.namespace {
            return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
        new["metadata"]["namespace"] = json!(req.namespace);
    } else if let Some(md) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("namespace");
    }
    let body_name = meta_str(new, "name").to_string();
    if creating {
        if body_name.is_empty() && meta_str(new, "generateName").is_empty() {
            return Err(ApiError::invalid(&res.kind_group(), "", vec![FieldCause::required("metadata.name")]).tap_message(
                format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", res.kind_group()),
            ));
        }
        if !req.name.is_empty() && !body_name.is_empty() && body_name != req.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                req.name
            )));
        }
    } else if !body_name.is_empty() && body_name != req.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            req.name
        )));
    }
    let name = meta_str(new, "name").to_string();
    if !name.is_empty()
        && !is_valid_dns_subdomain(&name)
        && res.group != "rbac.authorization.k8s.io"
    {
        return Err(ApiError::invalid(
            &res.kind_group(),
            &name,
            vec![FieldCause::invalid("metadata.name", &json!(name), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")],
        ));
    }
    Ok(())
}

trait TapMessage {
    fn tap_message(self, m: String) -> Self;
}
impl TapMessage for ApiError {
    fn tap_message(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}

/// The checks the apiserver makes on the built-in kinds this server has to be strict about.
fn builtin_validation(res: &ResourceInfo, new: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    let mut causes = vec![];
    if let Some(old) = old {
        if !meta_str(old, "deletionTimestamp").is_empty() {
            let before = finalizers(old);
            let added: Vec<String> = finalizers(new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                causes.push(FieldCause::forbidden(
                    "metadata.finalizers",
                    format!("no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
                ));
            }
        }
    }
    if res.group == CRD_RES.0 && res.plural == CRD_RES.1 {
        causes.extend(validate_crd(new));
    }
    causes.extend(crate::validation::validate(&res.group, &res.kind, new, old));
    if res.group == "admissionregistration.k8s.io" {
        causes.extend(validate_webhook_configuration(
            new,
            res.kind.starts_with("Mutating"),
        ));
    }
    causes
}

/// What the apiserver insists on in a webhook configuration (so a broken one is refused instead
/// of breaking every later write).
fn validate_webhook_configuration(cfg: &Value, mutating: bool) -> Vec<FieldCause> {
    let mut c = vec![];
    let Some(hooks) = cfg.get("webhooks") else {
        return c;
    };
    let Some(hooks) = hooks.as_array() else {
        return vec![FieldCause::invalid("webhooks", hooks, "must be a list")];
    };
    let mut names = vec![];
    for (i, h) in hooks.iter().enumerate() {
        let at = |f: &str| format!("webhooks[{i}].{f}");
        let Some(m) = h.as_object() else {
            c.push(FieldCause::invalid(
                &format!("webhooks[{i}]"),
                h,
                "must be an object",
            ));
            continue;
        };
        match m.get("name").and_then(Value::as_str) {
            Some(n) if n.split('.').filter(|s| !s.is_empty()).count() >= 3 => {
                if names.contains(&n) {
                    c.push(FieldCause::invalid(
                        &at("name"),
                        &json!(n),
                        "Duplicate value",
                    ));
                }
                names.push(n);
            }
            Some(n) => c.push(FieldCause::invalid(
                &at("name"),
                &json!(n),
                "should be a domain with at least three segments separated by dots",
            )),
            None => c.push(FieldCause::required(&at("name"))),
        }
        let cc = m.get("clientConfig");
        let has_target = cc.is_some_and(|cc| {
            cc.get("url").is_some_and(Value::is_string)
                || cc.pointer("/service/name").is_some_and(Value::is_string)
        });
        if !has_target {
            c.push(
                FieldCause::required(&at("clientConfig"))
                    .with_detail("exactly one of url or service is required"),
            );
        }
        if !m.get("admissionReviewVersions").is_some_and(|v| {
            v.as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
        }) {
            c.push(
                FieldCause::required(&at("admissionReviewVersions"))
                    .with_detail("must specify one of v1, v1beta1"),
            );
        }
        match m.get("sideEffects").and_then(Value::as_str) {
            Some("None" | "NoneOnDryRun") => {}
            Some(o) => c.push(FieldCause::not_supported(
                &at("sideEffects"),
                &json!(o),
                &[json!("None"), json!("NoneOnDryRun")],
            )),
            None => c.push(FieldCause::required(&at("sideEffects"))),
        }
        if let Some(rules) = m.get("rules") {
            let ok = rules.as_array().is_some_and(|rs| {
                rs.iter().all(|r| {
                    ["operations", "apiGroups", "apiVersions", "resources"]
                        .iter()
                        .all(|k| {
                            r.get(*k).is_none_or(|v| {
                                v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                            })
                        })
                })
            });
            if !ok {
                c.push(FieldCause::invalid(
                    &at("rules"),
                    rules,
                    "must be a list of rules with string lists",
                ));
            }
        }
        for sel in ["namespaceSelector", "objectSelector"] {
            if let Some(v) = m.get(sel) {
                if let Err(e) = crate::selectors::LabelSelector::from_structured(v) {
                    c.push(FieldCause::invalid(&at(sel), v, e.message));
                }
            }
        }
        if !mutating && m.contains_key("reinvocationPolicy") {
            c.push(FieldCause::forbidden(
                &at("reinvocationPolicy"),
                "only for mutating webhooks",
            ));
        }
    }
    c
}

fn validate_crd(crd: &Value) -> Vec<FieldCause> {
    let mut c = vec![];
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = meta_str(crd, "name");
    if group.is_empty() {
        c.push(FieldCause::required("spec.group"));
    }
    if plural.is_empty() {
        c.push(FieldCause::required("spec.names.plural"));
    }
    if crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        c.push(FieldCause::required("spec.names.kind"));
    }
    if name != format!("{plural}.{group}") {
        c.push(FieldCause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        c.push(FieldCause::invalid(
            "spec.versions",
            &json!(versions),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        match v.pointer("/schema/openAPIV3Schema") {
            Some(schema) => c.extend(crate::structural::check(
                schema,
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
            )),
            None => c.push(
                FieldCause::required(&format!("spec.versions[{i}].schema.openAPIV3Schema"))
                    .with_detail("schemas are required"),
            ),
        }
    }
    if crd
        .pointer("/spec/conversion/strategy")
        .and_then(Value::as_str)
        == Some("Webhook")
        && crd
            .pointer("/spec/conversion/webhook/conversionReviewVersions")
            .is_none()
    {
        c.push(FieldCause::required(
            "spec.conversion.webhook.conversionReviewVersions",
        ));
    }
    c
}

fn commit_create(
    st: &mut State,
    req: &Req,
    mut obj: Value,
    current: Option<&Value>,
    now: &str,
) -> ApiResult<Value> {
    let res = &req.res;
    if meta_str(&obj, "name").is_empty() {
        let prefix = meta_str(&obj, "generateName").to_string();
        let mut name = format!("{prefix}{}", random_suffix());
        while st.get(&res.key(), &req.namespace, &name).is_some() {
            name = format!("{prefix}{}", random_suffix());
        }
        obj["metadata"]["name"] = json!(name);
    } else if current.is_some()
        || st
            .get(&res.key(), &req.namespace, meta_str(&obj, "name"))
            .is_some()
    {
        return Err(ApiError::already_exists(
            &res.qualified(),
            meta_str(&obj, "name"),
        ));
    }
    let md = &mut obj["metadata"];
    md["uid"] = json!(new_uid());
    md["creationTimestamp"] = json!(now);
    if tracks_generation(res) {
        md["generation"] = json!(1);
    }
    if let Some(m) = md.as_object_mut() {
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("resourceVersion");
    }
    if res.group.is_empty() && res.plural == "namespaces" {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
        let name = meta_str(&obj, "name").to_string();
        if !obj["metadata"].get("labels").is_some_and(Value::is_object) {
            obj["metadata"]["labels"] = json!({});
        }
        obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    }
    if res.group.is_empty() && res.plural == "services" {
        allocate_cluster_ip(st, &mut obj, None);
    }
    if res.group == CRD_RES.0 && res.plural == CRD_RES.1 {
        establish_crd(&mut obj, None);
    }
    if req.dry_run {
        return Ok(obj);
    }
    Ok(st.put(&res.key(), obj))
}

fn commit_update(
    st: &mut State,
    req: &Req,
    mut obj: Value,
    current: Option<&Value>,
) -> ApiResult<Value> {
    let res = &req.res;
    let Some(current) = current else {
        return Err(ApiError::not_found(&res.qualified(), &req.name));
    };
    if res.group == CRD_RES.0 && res.plural == CRD_RES.1 {
        establish_crd(&mut obj, Some(current));
    }
    if res.group.is_empty() && res.plural == "services" && req.sub.is_empty() {
        allocate_cluster_ip(st, &mut obj, Some(current));
    }
    if tracks_generation(res) && strip_for_generation(&obj) != strip_for_generation(current) {
        let gen = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        obj["metadata"]["generation"] = json!(gen + 1);
    }
    if without_rv_and_managed(&obj) == without_rv_and_managed(current) {
        // A no-op write: nothing stored, no event, same resourceVersion.
        return Ok(current.clone());
    }
    if req.dry_run {
        return Ok(obj);
    }
    if !meta_str(&obj, "deletionTimestamp").is_empty() && finalizers(&obj).is_empty() {
        let ns = meta_str(&obj, "namespace").to_string();
        st.put(&res.key(), obj);
        return Ok(st.remove(&res.key(), &ns, &req.name).unwrap_or(Value::Null));
    }
    Ok(st.put(&res.key(), obj))
}

/// Services get a ClusterIP (from 10.96.0.0/12, 10.96.0.1 being the `kubernetes` Service's) unless
/// headless or ExternalName; an update that leaves the allocated values out keeps them.
fn allocate_cluster_ip(st: &mut State, svc: &mut Value, old: Option<&Value>) {
    let Some(spec) = svc.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
        return;
    }
    let missing = |s: &Value, k: &str| {
        s.get(k)
            .is_none_or(|v| v.is_null() || v == "" || v.as_array().is_some_and(Vec::is_empty))
    };
    if missing(spec, "clusterIP") {
        let kept = old
            .and_then(|o| o.pointer("/spec/clusterIP"))
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()));
        let ip = match kept {
            Some(ip) => ip.clone(),
            None => {
                st.next_service_ip += 1;
                let n = st.next_service_ip;
                json!(format!(
                    "10.{}.{}.{}",
                    96 + (n >> 16) % 16,
                    (n >> 8) & 0xff,
                    n & 0xff
                ))
            }
        };
        spec["clusterIP"] = ip;
    }
    if missing(spec, "clusterIPs") {
        spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
    }
    if missing(spec, "ipFamilies") {
        spec["ipFamilies"] = json!(["IPv4"]);
    }
    if missing(spec, "ipFamilyPolicy") {
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
}

/// A CRD the server accepted is established at once; its storage version is recorded.
fn establish_crd(crd: &mut Value, old: Option<&Value>) {
    let mut stored: Vec<String> = crd
        .pointer("/status/storedVersions")
        .or_else(|| old.and_then(|o| o.pointer("/status/storedVersions")))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .map(String::from);
    if let Some(s) = storage {
        if !stored.contains(&s) {
            stored.push(s);
        }
    }
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    if names.get("listKind").is_none() {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        names["listKind"] = json!(format!("{kind}List"));
    }
    if names.get("singular").is_none() {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        names["singular"] = json!(kind);
    }
    let t = old
        .and_then(|o| o.pointer("/status/conditions/0/lastTransitionTime"))
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(now_rfc3339);
    let cond = |ty: &str, reason: &str, msg: &str| json!({"type": ty, "status": "True", "lastTransitionTime": t, "reason": reason, "message": msg});
    crd["status"] = json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    });
}

/// Delete under the lock. Returns the object as answered and the HTTP code, or None if absent.
pub fn delete_locked(
    st: &mut State,
    key: &crate::resources::ResKey,
    ns: &str,
    name: &str,
    policy: &str,
) -> Option<(Value, u16)> {
    let mut obj = st.get(key, ns, name)?.clone();
    let mut fins = finalizers(&obj);
    let is_ns = key.0.is_empty() && key.1 == "namespaces";
    let is_crd = key.0 == CRD_RES.0 && key.1 == CRD_RES.1;
    let special = match policy {
        "Foreground" => Some("foregroundDeletion"),
        "Orphan" => Some("orphan"),
        _ => None,
    };
    let deleting = !meta_str(&obj, "deletionTimestamp").is_empty();
    if let Some(f) = special {
        if !fins.iter().any(|x| x == f) {
            fins.push(f.to_string());
        }
    }
    if is_crd
        && !fins
            .iter()
            .any(|x| x == "customresourcecleanup.apiextensions.k8s.io")
        && !deleting
    {
        fins.push("customresourcecleanup.apiextensions.k8s.io".into());
    }
    if fins.is_empty() && !is_ns {
        return st.remove(key, ns, name).map(|o| (o, 200));
    }
    if !deleting {
        obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let gen = obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if gen > 0 {
            obj["metadata"]["generation"] = json!(gen + 1);
        }
        if is_ns {
            obj["status"]["phase"] = json!("Terminating");
        }
    }
    set_finalizers(&mut obj, &fins);
    let stored = st.put(key, obj);
    Some((stored, if is_ns || deleting { 200 } else { 202 }))
}

/// The `autoscaling/v1` Scale view of an object.
fn scale_of(res: &ResourceInfo, version: &str, obj: &Value) -> ApiResult<Value> {
    let scale = res
        .version(version)
        .and_then(|v| v.scale.clone())
        .ok_or_else(ApiError::not_found_path)?;
    let get = |p: &str| crate::table::json_path(obj, p).into_iter().next();
    let selector = scale
        .label_selector_path
        .as_deref()
        .and_then(get)
        .unwrap_or(json!(""));
    let selector = match selector {
        Value::Object(m) => {
            let labels: Vec<String> = m
                .get("matchLabels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            json!(labels.join(","))
        }
        other => other,
    };
    Ok(json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": meta_str(obj, "name"), "namespace": meta_str(obj, "namespace"), "uid": meta_str(obj, "uid"),
                     "resourceVersion": meta_str(obj, "resourceVersion"), "creationTimestamp": meta_str(obj, "creationTimestamp")},
        "spec": {"replicas": get(&scale.spec_replicas_path).unwrap_or(json!(0))},
        "status": {"replicas": get(&scale.status_replicas_path).unwrap_or(json!(0)), "selector": selector},
    }))
}

fn apply_scale(res: &ResourceInfo, version: &str, old: &Value, scale: &Value) -> ApiResult<Value> {
    let info = res
        .version(version)
        .and_then(|v| v.scale.clone())
        .ok_or_else(ApiError::not_found_path)?;
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    if !replicas.is_i64() && !replicas.is_u64() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "spec.replicas: must be an integer",
        ));
    }
    let mut new = old.clone();
    let segs: Vec<&str> = info
        .spec_replicas_path
        .trim_start_matches('.')
        .split('.')
        .collect();
    let mut cur = &mut new;
    for (i, s) in segs.iter().enumerate() {
        if i + 1 == segs.len() {
            cur[*s] = replicas.clone();
        } else {
            if !cur.get(*s).is_some_and(Value::is_object) {
                cur[*s] = json!({});
            }
            cur = &mut cur[*s];
        }
    }
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        new["metadata"]["resourceVersion"] = json!(rv);
    }
    Ok(new)
}
