//! Verbs, selectors, watch semantics, concurrency, finalizers, garbage collection and faults,
//! through a plain kube client.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::json;
use std::time::Duration;
use test_apiserver::{Options, TestApiServer, Verb};

async fn server() -> (TestApiServer, kube::Client) {
    let s = TestApiServer::start(Options {
        bookmark_interval: Duration::from_millis(200),
        simulate_workloads: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = s.client().unwrap();
    (s, c)
}

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn create_get_update_conflict_and_noop() {
    let (s, c) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let created = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let md = &created.metadata;
    assert!(md.uid.as_ref().is_some_and(|u| u.len() == 36));
    assert!(md.creation_timestamp.is_some() && md.resource_version.is_some());
    assert_eq!(md.generation, None, "ConfigMaps have no generation");
    let d = Api::<Deployment>::default_namespaced(c.clone())
        .create(&PostParams::default(), &deployment("d"))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));

    let e = api_err(
        cms.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "configmaps \"a\" already exists");
    let e = api_err(cms.get("nope").await.unwrap_err());
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "configmaps \"nope\" not found")
    );

    // Optimistic concurrency: a stale resourceVersion is a 409 Conflict.
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = cms
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());
    stale.data = Some([("k".to_string(), "x".to_string())].into());
    let e = api_err(
        cms.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("the object has been modified"),
        "{}",
        e.message
    );

    // A write that changes nothing stores nothing: same resourceVersion, no event.
    let rv = s.resource_version();
    let same = cms
        .replace("a", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_eq!(same.resource_version(), updated.resource_version());
    assert_eq!(s.resource_version(), rv);

    // generateName.
    let gen: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "g-"}})).unwrap();
    let g = cms.create(&PostParams::default(), &gen).await.unwrap();
    assert!(
        g.name_any().starts_with("g-") && g.name_any().len() == 7,
        "{}",
        g.name_any()
    );

    // Namespaces must exist.
    let e = api_err(
        Api::<ConfigMap>::namespaced(c.clone(), "ghost")
            .create(&PostParams::default(), &cm("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"ghost\" not found")
    );

    // Dry run stores nothing.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    cms.create(&dry, &cm("dry", json!({}))).await.unwrap();
    assert!(cms.get_opt("dry").await.unwrap().is_none());
}

#[tokio::test]
async fn patches_status_and_generation() {
    let (_s, c) = server().await;
    let deps: Api<Deployment> = Api::default_namespaced(c.clone());
    deps.create(&PostParams::default(), &deployment("d"))
        .await
        .unwrap();

    // Status on a main-resource write is ignored; spec on a status write is ignored.
    let d = deps
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert!(d.status.as_ref().and_then(|s| s.replicas).is_none());
    let d = deps
        .patch_status(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}, "status": {"replicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(d.status.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // Strategic merge: containers merge by name.
    let d = deps
        .patch("d", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "x"}]}}}})))
        .await
        .unwrap();
    let names: Vec<String> = d
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["c", "side"]);
    assert_eq!(d.metadata.generation, Some(2));

    // JSON patch with a failing test op is rejected.
    let p: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 3}]))
            .unwrap();
    let e = api_err(
        deps.patch("d", &PatchParams::default(), &Patch::<()>::Json(p))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);

    // Server-side apply: creates, conflicts between managers, force takes over.
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1", "b": "2"}});
    cms.patch("ssa", &PatchParams::apply("one"), &Patch::Apply(&applied))
        .await
        .unwrap();
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "9"}});
    let e = api_err(
        cms.patch("ssa", &PatchParams::apply("two"), &Patch::Apply(&other))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"one\" using v1: .data.a"
    );
    cms.patch(
        "ssa",
        &PatchParams::apply("two").force(),
        &Patch::Apply(&other),
    )
    .await
    .unwrap();
    // "one" drops b from its configuration: b is removed (nobody else owns it).
    let one =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {}});
    let got = cms
        .patch("ssa", &PatchParams::apply("one"), &Patch::Apply(&one))
        .await
        .unwrap();
    assert_eq!(
        got.data.unwrap(),
        [("a".to_string(), "9".to_string())].into()
    );
    let managers: Vec<String> = got
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"two".to_string()), "{managers:?}");
    // Apply needs a field manager.
    let e = api_err(
        cms.patch("ssa", &PatchParams::default(), &Patch::Apply(&one))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);

    // Scale subresource.
    let scale = deps.get_scale("d").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(1));
    deps.patch_scale(
        "d",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    assert_eq!(deps.get("d").await.unwrap().spec.unwrap().replicas, Some(4));
}

#[tokio::test]
async fn server_side_apply_merges_lists_by_key() {
    let (_s, c) = server().await;
    let deps: Api<Deployment> = Api::default_namespaced(c.clone());
    let dep = |containers: serde_json::Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m"},
               "spec": {"selector": {"matchLabels": {"app": "m"}}, "template": {"metadata": {"labels": {"app": "m"}}, "spec": {"containers": containers}}}})
    };
    deps.patch(
        "m",
        &PatchParams::apply("operator").force(),
        &Patch::Apply(dep(json!([{"name": "main", "image": "a:1"}]))),
    )
    .await
    .unwrap();
    // Someone else adds a sidecar through their own apply.
    let side = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m"},
                      "spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s:1"}]}}}});
    deps.patch("m", &PatchParams::apply("injector"), &Patch::Apply(&side))
        .await
        .unwrap();
    // The operator's forced re-apply of its own container keeps the sidecar (no fight).
    let d = deps
        .patch(
            "m",
            &PatchParams::apply("operator").force(),
            &Patch::Apply(dep(json!([{"name": "main", "image": "a:2"}]))),
        )
        .await
        .unwrap();
    let names: Vec<String> = d
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["main", "side"]);
    // Without force, touching the injector's container conflicts, naming the item.
    let e = api_err(
        deps.patch(
            "m",
            &PatchParams::apply("operator"),
            &Patch::Apply(dep(json!([{"name": "side", "image": "s:2"}]))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    assert!(e.message.contains(r#"conflict with "injector" using apps/v1: .spec.template.spec.containers[name="side"].image"#), "{}", e.message);

    // A Service's selector is an atomic map (as `+mapType=atomic` makes it on a real server): a
    // key someone else added goes with the operator's forced apply; their extra port (a map
    // list item keyed by port) is theirs and stays.
    use k8s_openapi::api::core::v1::Service;
    let svcs: Api<Service> = Api::default_namespaced(c.clone());
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "m"},
        "spec": {"selector": {"app": "m"}, "ports": [{"name": "http", "port": 80}]}});
    svcs.patch(
        "m",
        &PatchParams::apply("operator").force(),
        &Patch::Apply(&svc),
    )
    .await
    .unwrap();
    let other = PatchParams {
        field_manager: Some("kubectl-patch".into()),
        ..PatchParams::default()
    };
    svcs.patch(
        "m",
        &other,
        &Patch::Merge(json!({"spec": {"selector": {"tier": "x"},
        "ports": [{"name": "http", "port": 80}, {"name": "debug", "port": 9999}]}})),
    )
    .await
    .unwrap();
    let e = api_err(
        svcs.patch("m", &PatchParams::apply("operator"), &Patch::Apply(&svc))
            .await
            .unwrap_err(),
    );
    assert!(
        e.message
            .contains(r#"conflict with "kubectl-patch" using v1: .spec.selector"#),
        "{}",
        e.message
    );
    let s = svcs
        .patch(
            "m",
            &PatchParams::apply("operator").force(),
            &Patch::Apply(&svc),
        )
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        s.selector.unwrap().into_iter().collect::<Vec<_>>(),
        [("app".to_string(), "m".to_string())]
    );
    let ports: Vec<i32> = s.ports.unwrap().into_iter().map(|p| p.port).collect();
    assert_eq!(
        ports,
        [80, 9999],
        "another manager's port survives a forced apply"
    );
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let (_s, c) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    for i in 0..7 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        cms.create(
            &PostParams::default(),
            &cm(&format!("c{i}"), json!({"tier": tier, "i": i.to_string()})),
        )
        .await
        .unwrap();
    }
    let names = |l: Vec<ConfigMap>| l.into_iter().map(|c| c.name_any()).collect::<Vec<_>>();
    let front = cms
        .list(&ListParams::default().labels("tier=front"))
        .await
        .unwrap();
    assert_eq!(names(front.items), ["c0", "c2", "c4", "c6"]);
    let set = cms
        .list(&ListParams::default().labels("tier in (back),i notin (1)"))
        .await
        .unwrap();
    assert_eq!(names(set.items), ["c3", "c5"]);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=c4"))
        .await
        .unwrap();
    assert_eq!(names(by_name.items), ["c4"]);
    let e = api_err(
        cms.list(&ListParams::default().fields("data.k=v"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);

    let mut all = vec![];
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = cms.list(&lp).await.unwrap();
        all.extend(names(page.items));
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => lp = lp.continue_token(&t),
            _ => break,
        }
    }
    assert_eq!(all.len(), 7);
    let everywhere: Api<ConfigMap> = Api::all(c.clone());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        7
    );
}

#[tokio::test]
async fn watch_semantics() {
    let (s, c) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    cms.create(&PostParams::default(), &cm("before", json!({"w": "yes"})))
        .await
        .unwrap();
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    // From a resourceVersion: only later events, with selector transitions.
    let mut stream = cms
        .watch(&WatchParams::default().labels("w=yes").timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("a", json!({"w": "yes"})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("ignored", json!({"w": "no"})))
        .await
        .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"w": "no"}}})),
    )
    .await
    .unwrap();
    cms.patch(
        "ignored",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"w": "yes"}}})),
    )
    .await
    .unwrap();
    cms.delete("ignored", &DeleteParams::default())
        .await
        .unwrap();
    let mut seen = vec![];
    while seen.len() < 5 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.name_any())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.name_any())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            "ADDED a",
            "MODIFIED a",
            "DELETED a",
            "ADDED ignored",
            "DELETED ignored"
        ]
    );

    // Bookmarks carry progress.
    let mut stream = cms
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    let mut bookmark = false;
    while let Some(ev) = stream.try_next().await.unwrap() {
        if let WatchEvent::Bookmark(b) = ev {
            assert!(
                b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap()
            );
            bookmark = true;
            break;
        }
    }
    assert!(bookmark);

    // A compacted resourceVersion: the watch answers an ERROR event with 410 Gone.
    s.expire_resource_versions();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }

    // timeoutSeconds ends the stream.
    let started = std::time::Instant::now();
    let mut stream = cms
        .watch(
            &WatchParams::default().timeout(1),
            &s.resource_version().to_string(),
        )
        .await
        .unwrap()
        .boxed();
    while stream.try_next().await.unwrap().is_some() {}
    assert!(started.elapsed() < Duration::from_secs(3));

    // The streaming list (sendInitialEvents) that kube-runtime's watcher can use.
    let cfg = watcher::Config::default().streaming_lists();
    let objs: Vec<ConfigMap> = watcher(cms.clone(), cfg)
        .default_backoff()
        .applied_objects()
        .take(2)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(objs.len(), 2);
}

#[tokio::test]
async fn finalizers_and_garbage_collection() {
    let (s, c) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());

    // Finalizers: delete sets deletionTimestamp; removing the last finalizer deletes.
    let mut f = cm("fin", json!({}));
    f.metadata.finalizers = Some(vec!["test/hold".into()]);
    cms.create(&PostParams::default(), &f).await.unwrap();
    cms.delete("fin", &DeleteParams::default()).await.unwrap();
    let held = cms.get("fin").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let e = api_err(
        cms.patch(
            "fin",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test/hold", "new"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422, "{}", e.message);
    cms.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("fin").await.unwrap().is_none());

    // Background: the owner goes at once, the dependent follows.
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let oref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap(), "blockOwnerDeletion": true}]);
    let mk_dep = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": oref}}))
            .unwrap()
    };
    cms.create(&PostParams::default(), &mk_dep("dep"))
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    let store = |n: &str| s.stored_object("", "configmaps", "default", n);
    eventually("dep collected", || store("dep").is_none()).await;

    // Foreground: the owner waits (foregroundDeletion) until its blocking dependents are gone.
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let oref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap(), "blockOwnerDeletion": true}]);
    let mut dep: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "dep2", "ownerReferences": oref, "finalizers": ["test/hold"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &dep).await.unwrap();
    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = cms.get("owner").await.unwrap();
    assert!(o.finalizers().contains(&"foregroundDeletion".to_string()));
    dep = cms.get("dep2").await.unwrap();
    assert!(dep.metadata.deletion_timestamp.is_some());
    cms.patch(
        "dep2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("owner gone after dependents", || {
        store("owner").is_none() && store("dep2").is_none()
    })
    .await;

    // Orphan: dependents lose the reference and stay.
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let oref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap()}]);
    let orphan: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "orphan", "ownerReferences": oref}}))
            .unwrap();
    cms.create(&PostParams::default(), &orphan).await.unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    cms.delete("owner", &dp).await.unwrap();
    eventually("owner gone, orphan kept", || {
        store("owner").is_none()
            && store("orphan").is_some_and(|o| o["metadata"].get("ownerReferences").is_none())
    })
    .await;

    // Deleting a namespace deletes what is in it, then the namespace.
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).unwrap(),
    )
    .await
    .unwrap();
    let tmp: Api<ConfigMap> = Api::namespaced(c.clone(), "tmp");
    tmp.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    nss.delete("tmp", &DeleteParams::default()).await.unwrap();
    eventually("namespace gone", || {
        s.stored_object("", "namespaces", "", "tmp").is_none()
    })
    .await;
    assert!(s.stored_object("", "configmaps", "tmp", "x").is_none());

    // Preconditions on delete.
    let p = cms
        .create(&PostParams::default(), &cm("pre", json!({})))
        .await
        .unwrap();
    let dp = DeleteParams::default().preconditions(kube::api::Preconditions {
        uid: Some("wrong".into()),
        resource_version: None,
    });
    assert_eq!(api_err(cms.delete("pre", &dp).await.unwrap_err()).code, 409);
    let dp = DeleteParams::default().preconditions(kube::api::Preconditions {
        uid: p.uid(),
        resource_version: None,
    });
    cms.delete("pre", &dp).await.unwrap();
}

#[tokio::test]
async fn discovery_finds_builtins_and_crds() {
    let (s, c) = server().await;
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_yaml::from_str(include_str!("fixtures/widget-crd.yaml")).unwrap();
    Api::all(c.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let d = kube::discovery::Discovery::new(c.clone())
        .run()
        .await
        .unwrap();
    let (ar, caps) = d
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "test.example.com",
            "v2",
            "Widget",
        ))
        .unwrap();
    assert_eq!(ar.plural, "widgets");
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "widgets/status" || sub.plural == "status"),
        "{caps:?}"
    );
    // The aggregated discovery documents (apidiscovery.k8s.io/v2) say the same.
    let agg = kube::discovery::Discovery::new(c.clone())
        .run_aggregated()
        .await
        .unwrap();
    let (ar2, _) = agg
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "test.example.com",
            "v1",
            "Widget",
        ))
        .unwrap();
    assert_eq!(ar2.plural, "widgets");
    assert!(agg
        .get("")
        .is_some_and(|core| core.recommended_kind("ConfigMap").is_some()));
    let group = d.get("test.example.com").unwrap();
    assert_eq!(group.preferred_version_or_latest(), "v2");
    assert!(d.get("apps").is_some() && d.get("coordination.k8s.io").is_some());
    // The service account controller gives every namespace its "default" ServiceAccount.
    eventually("default sa", || {
        s.stored_object("", "serviceaccounts", "default", "default")
            .is_some()
    })
    .await;
}

#[tokio::test]
async fn apply_yaml_fixtures_and_open_watches() {
    let (s, c) = server().await;
    let objs = s
        .apply_yaml(&format!(
            "{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: fx}}\ndata: {{a: b}}\n---\napiVersion: test.example.com/v1\nkind: Widget\nmetadata: {{name: w}}\nspec: {{greeting: hi}}\n",
            include_str!("fixtures/widget-crd.yaml")
        ))
        .await
        .unwrap();
    assert_eq!(objs.len(), 3);
    assert_eq!(objs[2]["spec"]["mode"], "fast", "schema defaults applied");
    assert!(s
        .apply_yaml("apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n")
        .await
        .is_err());
    let err = s.apply_yaml("apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {greeting: hi, port: 0}\n").await.unwrap_err();
    assert!(err.to_string().contains("spec.port"), "{err}");

    assert_eq!(s.open_watches(), 0);
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let stream = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    eventually("one open watch", || s.open_watches() == 1).await;
    drop(stream);
    eventually("watch closed", || s.open_watches() == 0).await;
}

#[tokio::test]
async fn builtin_defaults_and_simulated_workloads() {
    let s = TestApiServer::start(Options::default()).await.unwrap();
    let c = s.client().unwrap();
    let deps: Api<Deployment> = Api::default_namespaced(c.clone());
    let d = deps
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(
        spec.strategy.unwrap().type_.as_deref(),
        Some("RollingUpdate")
    );
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(
        pod.containers[0].image_pull_policy.as_deref(),
        Some("Always")
    );
    assert_eq!(
        pod.containers[0].termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );

    // The workload simulation: the Deployment becomes Available for its generation.
    let mut ready = false;
    for _ in 0..100 {
        let st = deps.get("web").await.unwrap().status.unwrap_or_default();
        if st.ready_replicas == Some(1) && st.observed_generation == Some(1) {
            ready = st
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready);
    // Converged: the simulation does not rewrite it.
    let rv = deps.get("web").await.unwrap().resource_version();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(deps.get("web").await.unwrap().resource_version(), rv);

    // Services get a ClusterIP, kept across updates that leave it out.
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::default_namespaced(c.clone());
    let svc = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
    let svc = svcs.create(&PostParams::default(), &svc).await.unwrap();
    let spec = svc.spec.unwrap();
    let ip = spec.cluster_ip.clone().unwrap();
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(spec.ports.unwrap()[0].protocol.as_deref(), Some("TCP"));
    let applied = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}});
    let svc = svcs
        .patch(
            "web",
            &PatchParams::apply("me").force(),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    assert_eq!(svc.spec.unwrap().cluster_ip, Some(ip));

    // With the simulation off, status is what tests write.
    s.set_simulate_workloads(false);
    deps.create(&PostParams::default(), &deployment("slow"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(deps.get("slow").await.unwrap().status.is_none());
}

#[tokio::test]
async fn crd_selectable_fields_and_cluster_scope() {
    let (s, c) = server().await;
    let crd = include_str!("fixtures/widget-crd.yaml").replacen(
        "    subresources: {status: {}}\n",
        "    subresources: {status: {}}\n    selectableFields: [{jsonPath: .spec.greeting}]\n",
        1,
    );
    s.apply_yaml(&crd).await.unwrap();
    s.apply_yaml("apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: a}\nspec: {greeting: hi}\n---\napiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: b}\nspec: {greeting: yo}\n")
        .await
        .unwrap();
    let ar = kube::api::ApiResource {
        group: "test.example.com".into(),
        version: "v1".into(),
        api_version: "test.example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    let yo = api
        .list(&ListParams::default().fields("spec.greeting=yo"))
        .await
        .unwrap();
    assert_eq!(
        yo.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(),
        ["b"]
    );
    // Not declared selectable: refused, as a real server does.
    assert_eq!(
        api_err(
            api.list(&ListParams::default().fields("spec.port=1"))
                .await
                .unwrap_err()
        )
        .code,
        400
    );

    // A cluster-scoped CRD is served without namespaces.
    let cluster = include_str!("fixtures/widget-crd.yaml")
        .replace("scope: Namespaced", "scope: Cluster")
        .replace("widgets", "gadgets")
        .replace("widget", "gadget")
        .replace("kind: Widget", "kind: Gadget")
        .replace("shortNames: [wd]", "shortNames: [gd]");
    s.apply_yaml(&cluster).await.unwrap();
    let objs = s.apply_yaml("apiVersion: test.example.com/v1\nkind: Gadget\nmetadata: {name: g}\nspec: {greeting: hi}\n").await.unwrap();
    assert!(objs[0]["metadata"].get("namespace").is_none());
    assert!(s
        .stored_object("test.example.com", "gadgets", "", "g")
        .is_some());
}

#[tokio::test]
async fn metadata_only_requests_carry_no_data() {
    let (s, c) = server().await;
    s.apply_yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: token, labels: {a: b}}\nstringData: {token: hunter2}\n").await.unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(c.clone());
    assert_eq!(
        secrets.get("token").await.unwrap().data.unwrap()["token"].0,
        b"hunter2"
    );
    let meta = secrets.get_metadata("token").await.unwrap();
    assert_eq!(meta.metadata.labels.unwrap()["a"], "b");
    let list = secrets.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let last = s.requests().into_iter().last().unwrap();
    assert_eq!(last.verb, Verb::List);
    // What travelled was metadata only (the same list, fetched raw).
    let raw = reqwest::Client::new()
        .get(format!("{}/api/v1/namespaces/default/secrets", s.url()))
        .header(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.contains("PartialObjectMetadataList") && !raw.contains("aHVudGVyMg"),
        "{raw}"
    );
    let metas: Api<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>> =
        Api::default_namespaced(c.clone());
    let objs: Vec<_> = watcher(metas, watcher::Config::default())
        .applied_objects()
        .take(1)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(objs[0].metadata.name.as_deref(), Some("token"));
}

#[tokio::test]
async fn faults_and_request_log() {
    let (s, c) = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    // (500: kube's client itself retries 429/503/504.)
    s.fail_next(
        2,
        Some(Verb::Create),
        Some("configmaps"),
        500,
        "etcd is sad",
    );
    for _ in 0..2 {
        let e = api_err(
            cms.create(&PostParams::default(), &cm("f", json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!((e.code, e.message.as_str()), (500, "etcd is sad"));
    }
    cms.create(&PostParams::default(), &cm("f", json!({})))
        .await
        .unwrap();
    assert_eq!(
        s.request_count(|r| r.verb == Verb::Create && r.resource == "configmaps"),
        3
    );
    assert_eq!(
        s.request_count(|r| r.verb == Verb::Create && r.status == 201),
        1
    );

    s.set_latency(Duration::from_millis(150));
    let t = std::time::Instant::now();
    cms.get("f").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    s.set_latency(Duration::ZERO);

    // restart: nothing lost, resourceVersions jump, old ones expire.
    let before = s.resource_version();
    s.restart();
    assert!(cms.get("f").await.is_ok());
    assert!(s.resource_version() >= before + 1000);
    s.clear_requests();
    assert_eq!(s.request_count(|_| true), 0);
}

#[tokio::test]
async fn binary_prints_ready_and_writes_kubeconfig() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_test-apiserver"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kc)
        .args(["--service-map", "ns/svc=127.0.0.1:9443"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = line.strip_prefix("ready ").expect("ready <url>");
    assert!(url.starts_with("http://127.0.0.1:"));
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kc).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn https_serving_with_its_own_ca() {
    let s = TestApiServer::start(Options {
        https: true,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(s.url().starts_with("https://"));
    let c = s.client().unwrap();
    let nss: Api<Namespace> = Api::all(c);
    assert!(nss.get("default").await.is_ok());
}

/// A pod template (in a Deployment) with the given pod spec.
fn deployment_with(name: &str, pod: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}})
}

fn service_with(name: &str, ports: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": ports}})
}

fn config_map_with(name: &str, metadata: serde_json::Value) -> serde_json::Value {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata});
    cm["metadata"]["name"] = json!(name);
    cm
}

/// The built-in validation a real API server applies, with its messages: each row is an object
/// created (or, with a second object, updated to) and the 422 message expected (`None`: accepted).
#[tokio::test]
async fn builtin_validation_refuses_what_a_real_server_refuses() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{ApiResource, DynamicObject};
    let (_s, c) = server().await;
    let c2 = |name: &str| json!({"name": name, "image": "busybox"});
    let big = "x".repeat(256 * 1024);
    let name_fmt = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let rows: Vec<(serde_json::Value, Option<serde_json::Value>, Option<String>)> = vec![
        (
            deployment_with("dup-containers", json!({"containers": [c2("mcp"), c2("mcp")]})),
            None,
            Some(r#"Deployment.apps "dup-containers" is invalid: spec.template.spec.containers[1].name: Duplicate value: "mcp""#.into()),
        ),
        (
            deployment_with("init-and-app", json!({"initContainers": [c2("mcp")], "containers": [c2("mcp")]})),
            None,
            Some(r#"Deployment.apps "init-and-app" is invalid: spec.template.spec.containers[0].name: Duplicate value: "mcp""#.into()),
        ),
        (
            deployment_with("dup-volumes", json!({"containers": [c2("c")],
                "volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]})),
            None,
            Some(r#"Deployment.apps "dup-volumes" is invalid: spec.template.spec.volumes[1].name: Duplicate value: "v""#.into()),
        ),
        (
            deployment_with("dup-mounts", json!({
                "containers": [{"name": "c", "image": "busybox", "volumeMounts": [
                    {"name": "a", "mountPath": "/x"}, {"name": "b", "mountPath": "/x"}]}],
                "volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]})),
            None,
            Some(r#"Deployment.apps "dup-mounts" is invalid: spec.template.spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/x": must be unique"#.into()),
        ),
        // The same path in two containers is fine: uniqueness is per container.
        (
            deployment_with("mounts-per-container", json!({
                "containers": [
                    {"name": "a", "image": "busybox", "volumeMounts": [{"name": "v", "mountPath": "/x"}]},
                    {"name": "b", "image": "busybox", "volumeMounts": [{"name": "v", "mountPath": "/x"}]}],
                "volumes": [{"name": "v", "emptyDir": {}}]})),
            None,
            None,
        ),
        (
            service_with("dup-port-names", json!([{"name": "http", "port": 80}, {"name": "http", "port": 81}])),
            None,
            Some(r#"Service "dup-port-names" is invalid: spec.ports[1].name: Duplicate value: "http""#.into()),
        ),
        (
            service_with("dup-port-numbers", json!([{"name": "a", "port": 80}, {"name": "b", "port": 80}])),
            None,
            Some(r#"Service "dup-port-numbers" is invalid: spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#.into()),
        ),
        (
            service_with("same-port-two-protocols", json!([{"name": "a", "port": 53, "protocol": "TCP"}, {"name": "b", "port": 53, "protocol": "UDP"}])),
            None,
            None,
        ),
        (
            service_with("unnamed-of-two", json!([{"name": "a", "port": 80}, {"port": 81}])),
            None,
            Some(r#"Service "unnamed-of-two" is invalid: spec.ports[1].name: Required value"#.into()),
        ),
        (
            config_map_with("big", json!({"annotations": {"a": big}})),
            None,
            Some(r#"ConfigMap "big" is invalid: metadata.annotations: Too long: must have at most 262144 bytes"#.into()),
        ),
        (
            config_map_with("bad-label-key", json!({"labels": {"bad key": "v"}})),
            None,
            Some(format!(r#"ConfigMap "bad-label-key" is invalid: metadata.labels: Invalid value: "bad key": {name_fmt}"#)),
        ),
        (
            config_map_with("bad-label-value", json!({"labels": {"k": "-v"}})),
            None,
            Some(r#"ConfigMap "bad-label-value" is invalid: metadata.labels: Invalid value: "-v": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#.into()),
        ),
        (
            config_map_with("bad-annotation-key", json!({"annotations": {"a/b/c": "v"}})),
            None,
            Some(r#"ConfigMap "bad-annotation-key" is invalid: metadata.annotations: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"#.into()),
        ),
        // Upper case is allowed in annotation keys (checked lowercased), not in a key's prefix
        // of a label.
        (
            config_map_with("upper-annotation", json!({"annotations": {"Example.com/Key": "v"}})),
            None,
            None,
        ),
        (
            deployment_with("selector", json!({"containers": [c2("c")]})),
            Some(json!({"spec": {"selector": {"matchLabels": {"app": "other"}},
                "template": {"metadata": {"labels": {"app": "other"}}}}})),
            Some(r#"Deployment.apps "selector" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"other"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#.into()),
        ),
    ];
    let mut wrong = vec![];
    for (obj, update, expected) in rows {
        let resource = match obj["kind"].as_str().unwrap() {
            "Deployment" => ApiResource::erase::<Deployment>(&()),
            "Service" => ApiResource::erase::<Service>(&()),
            _ => ApiResource::erase::<ConfigMap>(&()),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &resource);
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(obj).unwrap(),
            )
            .await;
        let result = match (created, update) {
            (Ok(_), Some(patch)) => api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ()),
            (other, _) => other.map(|_| ()),
        };
        let got = match result {
            Ok(()) => None,
            Err(e) => {
                let status = api_err(e);
                assert_eq!(
                    (status.code, status.reason.as_str()),
                    (422, "Invalid"),
                    "{name}"
                );
                Some(status.message)
            }
        };
        if got != expected {
            wrong.push(format!(
                "{name}:\n  got      {got:?}\n  expected {expected:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
