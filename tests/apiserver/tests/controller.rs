//! A real kube-runtime `Controller` with `.owns()` against the in-memory API server.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use test_apiserver::{Options, TestApiServer, Verb};

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    pub greeting: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct WidgetStatus {
    pub ready: bool,
}

#[derive(thiserror::Error, Debug)]
#[error(transparent)]
struct Error(#[from] kube::Error);

struct Ctx {
    client: kube::Client,
    reconciles: AtomicUsize,
}

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let ns = w.namespace().unwrap_or_default();
    let owner = w.controller_owner_ref(&()).expect("widget has a uid");
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{}-child", w.name_any()), "ownerReferences": [owner]},
        "data": {"greeting": w.spec.greeting},
    });
    let pp = PatchParams::apply("widget-controller").force();
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .patch(&format!("{}-child", w.name_any()), &pp, &Patch::Apply(cm))
        .await?;
    if !w.status.as_ref().is_some_and(|s| s.ready) {
        Api::<Widget>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &w.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"ready": true}})),
            )
            .await?;
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Widget>, _: &Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn child_uid(cms: &Api<ConfigMap>, name: &str) -> Option<String> {
    cms.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|c| c.metadata.uid)
}

#[tokio::test]
async fn controller_with_owns_survives_disconnects_and_410() {
    let server = TestApiServer::start(Options {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = server.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();

    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        reconciles: AtomicUsize::new(0),
    });
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    // Parent → reconcile → child.
    widgets
        .create(
            &PostParams::default(),
            &Widget::new(
                "w1",
                WidgetSpec {
                    greeting: "hi".into(),
                },
            ),
        )
        .await
        .unwrap();
    eventually("child of w1", || async {
        child_uid(&cms, "w1-child").await.is_some()
    })
    .await;
    eventually("w1 ready", || async {
        widgets
            .get("w1")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.ready)
    })
    .await;
    let first = child_uid(&cms, "w1-child").await.unwrap();

    // A test deletes the child → the owns-watch triggers → it is recreated.
    cms.delete("w1-child", &DeleteParams::default())
        .await
        .unwrap();
    eventually("w1-child recreated", || async {
        child_uid(&cms, "w1-child")
            .await
            .is_some_and(|u| u != first)
    })
    .await;

    // Forced disconnect of every watch: the controller re-watches and still sees new parents.
    server.drop_watches();
    widgets
        .create(
            &PostParams::default(),
            &Widget::new(
                "w2",
                WidgetSpec {
                    greeting: "yo".into(),
                },
            ),
        )
        .await
        .unwrap();
    eventually("child of w2 after disconnect", || async {
        child_uid(&cms, "w2-child").await.is_some()
    })
    .await;

    // 410 Gone: history compacted, then the watches drop; resuming fails, the watcher re-lists.
    let watches_before = server.request_count(|r| r.verb == Verb::Watch);
    let lists_before = server.request_count(|r| r.verb == Verb::List);
    server.expire_resource_versions();
    server.drop_watches();
    widgets
        .create(
            &PostParams::default(),
            &Widget::new(
                "w3",
                WidgetSpec {
                    greeting: "hey".into(),
                },
            ),
        )
        .await
        .unwrap();
    eventually("child of w3 after 410", || async {
        child_uid(&cms, "w3-child").await.is_some()
    })
    .await;
    assert!(server.request_count(|r| r.verb == Verb::Watch) > watches_before);
    assert!(
        server.request_count(|r| r.verb == Verb::List) > lists_before,
        "a 410 makes the watcher re-list"
    );

    // Deleting the parent garbage-collects the child (ownerReference, background propagation).
    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("w1-child collected", || async {
        child_uid(&cms, "w1-child").await.is_none()
    })
    .await;

    // Converged: nothing changes, so nothing is written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.clear_requests();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        server.request_count(|r| r.verb.is_write()),
        0,
        "{:?}",
        server.requests()
    );
    assert!(ctx.reconciles.load(Ordering::SeqCst) >= 4);
    handle.abort();
}
