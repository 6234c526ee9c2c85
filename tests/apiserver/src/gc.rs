//! The controllers a cluster runs that tests rely on: the garbage collector (ownerReferences,
//! background/foreground/orphan propagation), the namespace lifecycle controller, the CRD
//! instance cleanup and the service account controller (a `default` ServiceAccount per namespace). One pass is synchronous under the lock and incremental (see [`pass`]); the loop runs after
//! every write and twice a second.

use crate::resources::ResKey;
use crate::server::{delete_locked, Inner};
use crate::store::{
    finalizers, meta_str, set_finalizers, ObjKey, State, CRD_RES, NS_RES, WORKLOAD_PLURALS,
};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub async fn run(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.gc.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        // A few passes: one deletion can unlock the next (dependents of dependents).
        for _ in 0..8 {
            // A bug here must not silently stop garbage collection for the rest of the test.
            let changed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut st = inner.lock();
                let full = std::mem::take(&mut st.gc.full);
                pass(&mut st, full)
            }));
            match changed {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => {
                    // The pass took its work list with it: look at everything next time.
                    inner.lock().gc.full = true;
                    break;
                }
            }
        }
    }
}

fn owner_refs(o: &Value) -> Vec<(String, bool)> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    Some((
                        r.get("uid")?.as_str()?.to_string(),
                        r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn remove_finalizer(
    st: &mut State,
    key: &(String, String),
    ns: &str,
    name: &str,
    fin: &str,
) -> bool {
    let Some(mut obj) = st.get(key, ns, name).cloned() else {
        return false;
    };
    let mut f = finalizers(&obj);
    let before = f.len();
    f.retain(|x| x != fin);
    if f.len() == before {
        return false;
    }
    set_finalizers(&mut obj, &f);
    if f.is_empty() && !meta_str(&obj, "deletionTimestamp").is_empty() {
        st.put(key, obj);
        st.remove(key, ns, name);
    } else {
        st.put(key, obj);
    }
    true
}

fn is_ns(key: &ResKey) -> bool {
    key.0 == NS_RES.0 && key.1 == NS_RES.1
}

/// One pass; returns whether anything changed.
///
/// Incremental: it looks only at the objects [`State::put`]/[`State::remove`] marked since the
/// last pass (written, removed, an owner or a dependent of which was, a deleting namespace whose
/// content or a deleting CRD whose instances changed) plus every object being deleted. Any other
/// object would give the same answer as when it was last looked at, which was "nothing to do"
/// (or an action whose effect marked it again), so the outcome is that of a pass over
/// everything; `full` makes it one (for [`crate::TestApiServer::collect_garbage`]).
pub fn pass(st: &mut State, full: bool) -> bool {
    let mut changed = false;
    let mut keys: BTreeSet<ObjKey> = std::mem::take(&mut st.gc.dirty);
    if full {
        for (res, m) in st.objects() {
            for (ns, name) in m.keys() {
                keys.insert((res.clone(), ns.clone(), name.clone()));
            }
        }
    }
    keys.extend(st.gc.deleting.iter().cloned());
    // Those still there, in storage order (the order of a pass over everything).
    let todo: Vec<(&ObjKey, &Value)> = keys
        .iter()
        .filter_map(|k| Some((k, st.get(&k.0, &k.1, &k.2)?)))
        .collect();
    let idx = &st.gc;
    let exists = |uid: &str| idx.uids.contains_key(uid);
    let deleting_with = |uid: &str, fin: &str| -> bool {
        idx.uids
            .get(uid)
            .and_then(|(k, ns, n)| st.get(k, ns, n))
            .is_some_and(|o| {
                !meta_str(o, "deletionTimestamp").is_empty()
                    && finalizers(o).iter().any(|f| f == fin)
            })
    };
    let mut actions: Vec<Action> = vec![];
    for ((key, ns, name), o) in &todo {
        let owners = owner_refs(o);
        if owners.is_empty() {
            continue;
        }
        let alive: Vec<&(String, bool)> = owners.iter().filter(|(u, _)| exists(u)).collect();
        let deleting = !meta_str(o, "deletionTimestamp").is_empty();
        if alive.is_empty() {
            if !deleting {
                actions.push(Action::Delete(
                    key.clone(),
                    ns.clone(),
                    name.clone(),
                    "Background",
                ));
            }
            continue;
        }
        if alive.len() < owners.len() {
            actions.push(Action::DropRefs(
                key.clone(),
                ns.clone(),
                name.clone(),
                alive.iter().map(|(u, _)| u.clone()).collect(),
            ));
            continue;
        }
        let orphaning: Vec<String> = owners
            .iter()
            .filter(|(u, _)| deleting_with(u, "orphan"))
            .map(|(u, _)| u.clone())
            .collect();
        if !orphaning.is_empty() {
            let keep: HashSet<String> = owners
                .iter()
                .map(|(u, _)| u.clone())
                .filter(|u| !orphaning.contains(u))
                .collect();
            actions.push(Action::DropRefs(
                key.clone(),
                ns.clone(),
                name.clone(),
                keep,
            ));
            continue;
        }
        // Foreground: every owner is going away in the foreground, so the dependent goes first.
        if !deleting
            && owners
                .iter()
                .all(|(u, _)| deleting_with(u, "foregroundDeletion"))
        {
            actions.push(Action::Delete(
                key.clone(),
                ns.clone(),
                name.clone(),
                "Foreground",
            ));
        }
    }
    for ((key, ns, name), o) in &todo {
        if meta_str(o, "deletionTimestamp").is_empty() {
            continue;
        }
        let uid = meta_str(o, "uid");
        let fins = finalizers(o);
        // Every object whose ownerReferences name this one, from the index.
        let dependents: Vec<&Value> = idx
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|(k, n, nm)| st.get(k, n, nm))
            .collect();
        if fins.iter().any(|f| f == "foregroundDeletion")
            && !dependents
                .iter()
                .any(|d| owner_refs(d).iter().any(|(u, block)| u == uid && *block))
        {
            actions.push(Action::Unfinalize(
                key.clone(),
                ns.clone(),
                name.clone(),
                "foregroundDeletion",
            ));
        }
        if fins.iter().any(|f| f == "orphan") && dependents.is_empty() {
            actions.push(Action::Unfinalize(
                key.clone(),
                ns.clone(),
                name.clone(),
                "orphan",
            ));
        }
        // Namespace lifecycle: delete the content, then let the namespace go.
        if is_ns(key) {
            let mut content = st
                .objects()
                .iter()
                .filter(|(k, _)| !is_ns(k))
                .flat_map(|(k, m)| {
                    m.range((name.clone(), String::new())..)
                        .take_while(|((n, _), _)| n == name)
                        .map(move |((_, nm), o)| (k, nm, o))
                })
                .peekable();
            if content.peek().is_none() {
                actions.push(Action::FinalizeNamespace(name.clone()));
            } else {
                for (k, n, o) in content {
                    if meta_str(o, "deletionTimestamp").is_empty() {
                        actions.push(Action::Delete(
                            k.clone(),
                            name.clone(),
                            n.clone(),
                            "Background",
                        ));
                    }
                }
            }
        }
        // CRD deletion removes every instance first.
        if key.0 == CRD_RES.0
            && key.1 == CRD_RES.1
            && fins
                .iter()
                .any(|f| f == "customresourcecleanup.apiextensions.k8s.io")
        {
            let group = o
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let plural = o
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let ik = (group, plural);
            let instances: Vec<(String, String, bool)> = st
                .objects()
                .get(&ik)
                .map(|m| {
                    m.iter()
                        .map(|((n, nm), io)| {
                            (
                                n.clone(),
                                nm.clone(),
                                meta_str(io, "deletionTimestamp").is_empty(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if instances.is_empty() {
                actions.push(Action::Unfinalize(
                    key.clone(),
                    ns.clone(),
                    name.clone(),
                    "customresourcecleanup.apiextensions.k8s.io",
                ));
            }
            for (n, nm, live) in instances {
                if live {
                    actions.push(Action::Delete(ik.clone(), n, nm, "Background"));
                }
            }
        }
    }
    // What the workload simulation and the service account controller look at: the workloads
    // and the active namespaces among the objects of this pass (a namespace also when its
    // `default` ServiceAccount changed).
    let workloads: Vec<ObjKey> = todo
        .iter()
        .filter(|((k, _, _), o)| {
            k.0 == "apps"
                && WORKLOAD_PLURALS.contains(&k.1.as_str())
                && meta_str(o, "deletionTimestamp").is_empty()
        })
        .map(|(k, _)| (*k).clone())
        .collect();
    let namespaces: BTreeSet<String> = keys
        .iter()
        .filter_map(|(k, ns, name)| {
            if is_ns(k) {
                Some(name.clone())
            } else if k.0.is_empty() && k.1 == "serviceaccounts" && name == "default" {
                Some(ns.clone())
            } else {
                None
            }
        })
        .collect();
    drop(todo);
    if st.simulate_workloads {
        changed |= simulate_workloads(st, &workloads);
    }
    // The service account controller: every active namespace has a "default" ServiceAccount.
    let sa_key = ("".to_string(), "serviceaccounts".to_string());
    let ns_key = (NS_RES.0.to_string(), NS_RES.1.to_string());
    for name in &namespaces {
        if st
            .get(&ns_key, "", name)
            .is_some_and(|n| meta_str(n, "deletionTimestamp").is_empty())
            && st.get(&sa_key, name, "default").is_none()
        {
            let sa = serde_json::json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": name, "uid": crate::server::new_uid(), "creationTimestamp": crate::store::now_rfc3339()},
            });
            st.put(&sa_key, sa);
            changed = true;
        }
    }
    for a in actions {
        changed |= match a {
            Action::Delete(k, ns, n, policy) => delete_locked(st, &k, &ns, &n, policy).is_some(),
            Action::DropRefs(k, ns, n, keep) => {
                let Some(mut obj) = st.get(&k, &ns, &n).cloned() else {
                    continue;
                };
                if let Some(refs) = obj
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| {
                        r.get("uid")
                            .and_then(Value::as_str)
                            .is_some_and(|u| keep.contains(u))
                    });
                    if refs.is_empty() {
                        if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                            md.remove("ownerReferences");
                        }
                    }
                }
                st.put(&k, obj);
                true
            }
            Action::Unfinalize(k, ns, n, f) => remove_finalizer(st, &k, &ns, &n, f),
            Action::FinalizeNamespace(n) => {
                let key = ("".to_string(), "namespaces".to_string());
                let Some(mut obj) = st.get(&key, "", &n).cloned() else {
                    continue;
                };
                let spec_fins = obj
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if !spec_fins && !finalizers(&obj).is_empty() {
                    continue;
                }
                match obj.get_mut("spec").and_then(Value::as_object_mut) {
                    Some(spec) => {
                        spec.insert("finalizers".into(), serde_json::json!([]));
                    }
                    None => obj["spec"] = serde_json::json!({"finalizers": []}),
                }
                if finalizers(&obj).is_empty() {
                    st.remove(&key, "", &n);
                } else {
                    st.put(&key, obj);
                }
                true
            }
        };
    }
    changed
}

enum Action {
    Delete((String, String), String, String, &'static str),
    DropRefs((String, String), String, String, HashSet<String>),
    Unfinalize((String, String), String, String, &'static str),
    FinalizeNamespace(String),
}

/// Stand-in for the workload controllers and kubelets: every Deployment, StatefulSet and
/// ReplicaSet reports all its replicas ready and updated for its current generation, as if its
/// pods had started at once (DaemonSets report zero nodes). Condition times are kept while the
/// condition holds, so a converged workload is not rewritten.
fn simulate_workloads(st: &mut State, workloads: &[ObjKey]) -> bool {
    let mut changed = false;
    for plural in WORKLOAD_PLURALS {
        let stale: Vec<(ResKey, Value)> = workloads
            .iter()
            .filter(|(k, _, _)| k.1 == plural)
            .filter_map(|(k, ns, name)| {
                let o = st.get(k, ns, name)?;
                let desired = workload_status(plural, o);
                (o.get("status") != Some(&desired)).then(|| {
                    let mut o = o.clone();
                    o["status"] = desired;
                    (k.clone(), o)
                })
            })
            .collect();
        for (key, o) in stale {
            st.put(&key, o);
            changed = true;
        }
    }
    changed
}

fn workload_status(plural: &str, obj: &Value) -> Value {
    use serde_json::json;
    let name = meta_str(obj, "name");
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let hash = format!("{:x}", generation.wrapping_mul(2_654_435_761) & 0xff_ffff);
    let now = crate::store::now_rfc3339();
    let old_time = |ty: &str, key: &str| {
        obj.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
            })
            .and_then(|c| c.get(key))
            .cloned()
            .unwrap_or(json!(now))
    };
    let mut s = match plural {
        "deployments" => json!({
            "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.",
                 "lastUpdateTime": old_time("Available", "lastUpdateTime"), "lastTransitionTime": old_time("Available", "lastTransitionTime")},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": format!("ReplicaSet \"{name}-{hash}\" has successfully progressed."),
                 "lastUpdateTime": old_time("Progressing", "lastUpdateTime"), "lastTransitionTime": old_time("Progressing", "lastTransitionTime")},
            ],
        }),
        "statefulsets" => json!({
            "observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas,
            "updatedReplicas": replicas, "availableReplicas": replicas, "currentRevision": format!("{name}-{hash}"),
            "updateRevision": format!("{name}-{hash}"), "collisionCount": 0,
        }),
        "replicasets" => json!({
            "observedGeneration": generation, "replicas": replicas, "fullyLabeledReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
        }),
        _ => json!({
            "observedGeneration": generation, "currentNumberScheduled": 0, "numberMisscheduled": 0,
            "desiredNumberScheduled": 0, "numberReady": 0,
        }),
    };
    // As on a real server, zero counts are omitted.
    if let Some(m) = s.as_object_mut() {
        m.retain(|_, v| v != &json!(0));
        if plural == "daemonsets" {
            m.insert("currentNumberScheduled".into(), json!(0));
            m.insert("numberMisscheduled".into(), json!(0));
            m.insert("desiredNumberScheduled".into(), json!(0));
            m.insert("numberReady".into(), json!(0));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{delete_locked, namespace_object, new_uid};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    fn state() -> State {
        let (tx, _) = tokio::sync::broadcast::channel(16);
        let mut st = State::new(tx);
        for ns in ["default", "a", "b"] {
            st.put(&(NS_RES.0.into(), NS_RES.1.into()), namespace_object(ns));
        }
        st
    }

    fn keys(st: &State) -> Vec<ObjKey> {
        st.objects()
            .iter()
            .flat_map(|(r, m)| {
                m.keys()
                    .map(move |(ns, n)| (r.clone(), ns.clone(), n.clone()))
            })
            .collect()
    }

    /// The indexes `put`/`remove` maintain are what a scan would build.
    fn check_index(st: &State) {
        let mut uids = std::collections::HashMap::new();
        let mut deps: std::collections::HashMap<String, BTreeSet<ObjKey>> = Default::default();
        let mut deleting = BTreeSet::new();
        for k in keys(st) {
            let o = st.get(&k.0, &k.1, &k.2).unwrap();
            uids.insert(meta_str(o, "uid").to_string(), k.clone());
            for u in crate::store::owner_uids(o) {
                deps.entry(u).or_default().insert(k.clone());
            }
            if !meta_str(o, "deletionTimestamp").is_empty() {
                deleting.insert(k.clone());
            }
        }
        assert_eq!(st.gc.uids, uids);
        assert_eq!(st.gc.dependents, deps);
        assert_eq!(st.gc.deleting, deleting);
    }

    /// Random writes, deletions (every propagation policy), finalizers, namespace and CRD
    /// deletion: after the incremental passes settle, a pass over everything finds nothing left
    /// to do, so the incremental collector missed nothing.
    #[test]
    fn incremental_passes_reach_what_a_full_pass_would() {
        for seed in 0..16u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut st = state();
            let crd_res: ResKey = (CRD_RES.0.into(), CRD_RES.1.into());
            let widgets: ResKey = ("example.com".into(), "widgets".into());
            st.put(
                &crd_res,
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": "widgets.example.com", "uid": new_uid()},
                    "spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"}, "scope": "Namespaced",
                             "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
            );
            let resources: Vec<ResKey> = vec![
                ("".into(), "configmaps".into()),
                ("apps".into(), "deployments".into()),
                ("apps".into(), "replicasets".into()),
                widgets.clone(),
            ];
            for step in 0..250 {
                let all = keys(&st);
                let uids: Vec<String> = all
                    .iter()
                    .filter_map(|k| st.get(&k.0, &k.1, &k.2))
                    .map(|o| meta_str(o, "uid").to_string())
                    .collect();
                match rng.random_range(0..10) {
                    0..=4 => {
                        let res = resources[rng.random_range(0..resources.len())].clone();
                        let ns = ["default", "a", "b", "gone"][rng.random_range(0..4)];
                        let mut refs = vec![];
                        for _ in 0..rng.random_range(0..3) {
                            let uid = if rng.random_bool(0.85) && !uids.is_empty() {
                                uids[rng.random_range(0..uids.len())].clone()
                            } else {
                                new_uid()
                            };
                            refs.push(
                                json!({"apiVersion": "v1", "kind": "X", "name": "x", "uid": uid,
                                             "blockOwnerDeletion": rng.random_bool(0.5)}),
                            );
                        }
                        let mut obj = json!({"metadata": {"name": format!("o{step}"), "namespace": ns,
                            "uid": new_uid(), "generation": 1}, "spec": {"replicas": rng.random_range(0..3)}});
                        if !refs.is_empty() {
                            obj["metadata"]["ownerReferences"] = json!(refs);
                        }
                        if rng.random_bool(0.3) {
                            obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
                        }
                        st.put(&res, obj);
                    }
                    5..=6 if !all.is_empty() => {
                        let k = &all[rng.random_range(0..all.len())];
                        let policy = ["Background", "Foreground", "Orphan"][rng.random_range(0..3)];
                        delete_locked(&mut st, &k.0, &k.1, &k.2, policy);
                    }
                    7 if !all.is_empty() => {
                        // The holder of a finalizer lets go (as an update would).
                        let k = &all[rng.random_range(0..all.len())];
                        let mut o = st.get(&k.0, &k.1, &k.2).unwrap().clone();
                        let mut f = finalizers(&o);
                        f.retain(|x| x != "example.com/hold");
                        set_finalizers(&mut o, &f);
                        st.put(&k.0, o.clone());
                        if f.is_empty() && !meta_str(&o, "deletionTimestamp").is_empty() {
                            st.remove(&k.0, &k.1, &k.2);
                        }
                    }
                    8 => {
                        let on = !st.simulate_workloads;
                        st.set_simulate_workloads(on);
                    }
                    _ => {
                        // Edit an object's owners (add one, or drop them all).
                        if let Some(k) = all.get(rng.random_range(0..all.len().max(1))) {
                            let mut o = st.get(&k.0, &k.1, &k.2).unwrap().clone();
                            if rng.random_bool(0.5) && !uids.is_empty() {
                                let uid = uids[rng.random_range(0..uids.len())].clone();
                                let mut refs = o
                                    .pointer("/metadata/ownerReferences")
                                    .cloned()
                                    .unwrap_or(json!([]));
                                if let Some(a) = refs.as_array_mut() {
                                    a.push(json!({"apiVersion": "v1", "kind": "X", "name": "x", "uid": uid}));
                                }
                                o["metadata"]["ownerReferences"] = refs;
                            } else if let Some(md) = o["metadata"].as_object_mut() {
                                md.remove("ownerReferences");
                            }
                            st.put(&k.0, o);
                        }
                    }
                }
                if step % 37 == 0 {
                    let ns = ["a", "b"][rng.random_range(0..2)];
                    delete_locked(
                        &mut st,
                        &(NS_RES.0.into(), NS_RES.1.into()),
                        "",
                        ns,
                        "Background",
                    );
                }
                if step == 200 {
                    delete_locked(&mut st, &crd_res, "", "widgets.example.com", "Background");
                }
                check_index(&st);
                let mut settled = false;
                for _ in 0..64 {
                    if !pass(&mut st, false) {
                        settled = true;
                        break;
                    }
                }
                assert!(
                    settled,
                    "seed {seed} step {step}: incremental passes do not settle"
                );
                assert!(
                    !pass(&mut st, true),
                    "seed {seed} step {step}: a full pass found work the incremental passes missed"
                );
                check_index(&st);
            }
        }
    }
}
