//! An in-memory Kubernetes API server for tests.
//!
//! It speaks the real REST protocol on loopback (HTTP, optionally HTTPS), so kube-rs clients and
//! controllers, the real `kubectl` and `helm` run against it unchanged: discovery, get/list/watch,
//! create/update/patch (JSON, merge, strategic merge for built-ins, server-side apply)/delete, the status and
//! scale subresources, CRDs that become servable, schema checks (with CEL), admission webhooks and
//! conversion webhooks called over HTTPS, finalizers and garbage collection. See the README for
//! what a real API server does that this one does not.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use test_apiserver::{Options, TestApiServer, Verb};
//! let server = TestApiServer::start(Options::default()).await?;
//! let client = server.client()?;
//! // ... run a controller with `client` ...
//! let writes = server.request_count(|r| r.verb.is_write());
//! # let _ = (client, writes); Ok(()) }
//! ```

#![warn(missing_docs)]
// `ApiError` carries a Status's `details` as a `serde_json::Value`, which grew past clippy's
// limit once serde_json keeps insertion order (cedar-policy enables `preserve_order` in the
// workspace's graph). Errors here are a test server's, on paths that are never hot.
#![allow(clippy::result_large_err)]

mod admission;
mod conversion;
mod defaults;
mod error;
mod gc;
mod http;
mod managed;
mod openapi;
mod protobuf;
mod resources;
mod schema;
mod selectors;
mod server;
mod store;
mod strategic;
mod structural;
mod table;
mod tls;
mod validation;
mod watch;
mod webhook;

pub use store::{RequestRecord, Verb};

use anyhow::Context as _;
use serde_json::{json, Value};
use server::Inner;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How to start a [`TestApiServer`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen; must be a loopback address. Default `127.0.0.1:0` (any free port).
    pub listen: SocketAddr,
    /// Serve HTTPS (a fresh self-signed CA, see [`TestApiServer::ca_pem`]) instead of plain HTTP.
    pub https: bool,
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK. Default 1 s.
    pub bookmark_interval: Duration,
    /// Initial service map: `namespace/name` of a Service → `host:port` where it listens.
    pub service_map: HashMap<String, String>,
    /// Reported by `/version`. Default `1.33`.
    pub kubernetes_minor: u32,
    /// Give Deployments, StatefulSets and ReplicaSets the status they would have once all their
    /// pods run and are ready (no pods are created). Default true; see
    /// [`TestApiServer::set_simulate_workloads`].
    pub simulate_workloads: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            https: false,
            bookmark_interval: Duration::from_secs(1),
            service_map: HashMap::new(),
            kubernetes_minor: 33,
            simulate_workloads: true,
        }
    }
}

/// A running in-memory API server. Dropping it stops it.
pub struct TestApiServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    https: bool,
    ca_pem: Option<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl TestApiServer {
    /// Bind, start serving and start the garbage collector.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        // The single rustls provider of this tree; ignore "already installed".
        let _ = rustls::crypto::ring::default_provider().install_default();
        anyhow::ensure!(
            opts.listen.ip().is_loopback(),
            "the test API server listens on loopback only, not {}",
            opts.listen
        );
        let inner = Inner::new();
        {
            let mut st = inner.lock();
            st.service_map = opts.service_map.clone();
            st.set_simulate_workloads(opts.simulate_workloads);
        }
        let app = http::App {
            inner: inner.clone(),
            bookmark_every: opts.bookmark_interval,
            version: json!({
                "major": "1", "minor": opts.kubernetes_minor.to_string(),
                "gitVersion": format!("v1.{}.0-test-apiserver", opts.kubernetes_minor),
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "rust", "compiler": "rustc",
                "platform": "linux/amd64",
            }),
        };
        let router = http::router(app);
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding {}", opts.listen))?;
        let addr = listener.local_addr()?;
        let mut tasks = vec![];
        let mut ca_pem = None;
        if opts.https {
            let certs = tls::ServingCerts::generate()?;
            ca_pem = Some(certs.ca_pem.clone());
            tasks.push(tokio::spawn(tls::serve(
                listener,
                certs.acceptor()?,
                router,
            )));
        } else {
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!("test API server stopped: {e}");
                }
            }));
        }
        tasks.push(tokio::spawn(gc::run(inner.clone())));
        Ok(Self {
            inner,
            addr,
            https: opts.https,
            ca_pem,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.addr
        )
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA that signed the serving certificate (HTTPS only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kube client for this server, default namespace `default`.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        let mut config = kube::Config::new(self.url().parse()?);
        config.default_namespace = "default".into();
        if let Some(pem) = &self.ca_pem {
            let ders = rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
            config.root_cert = Some(ders.into_iter().map(|d| d.to_vec()).collect());
        }
        Ok(kube::Client::try_from(config)?)
    }

    /// A kubeconfig (YAML) pointing at this server, context `test`, namespace `default`.
    pub fn kubeconfig(&self) -> String {
        kubeconfig_yaml(&self.url(), self.ca_pem.as_deref())
    }

    /// Write [`Self::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        std::fs::write(path.as_ref(), self.kubeconfig())
            .with_context(|| format!("writing {}", path.as_ref().display()))
    }

    /// Route webhook calls for Service `namespace/name` to `host:port` (where the test's webhook
    /// server really listens). The TLS name checked stays `<name>.<namespace>.svc`.
    pub fn set_service(&self, namespaced_name: &str, host_port: &str) {
        self.inner
            .lock()
            .service_map
            .insert(namespaced_name.to_string(), host_port.to_string());
    }

    /// Forget a Service of the service map (webhook calls to it then fail as "no endpoints").
    pub fn remove_service(&self, namespaced_name: &str) {
        self.inner.lock().service_map.remove(namespaced_name);
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.lock().requests.clone()
    }

    /// How many answered requests satisfy `pred` (e.g. `|r| r.verb.is_write()`).
    pub fn request_count(&self, pred: impl Fn(&RequestRecord) -> bool) -> usize {
        self.inner
            .lock()
            .requests
            .iter()
            .filter(|r| pred(r))
            .count()
    }

    /// Forget the requests answered so far (e.g. once a controller has converged).
    pub fn clear_requests(&self) {
        self.inner.lock().requests.clear();
    }

    /// Make the next `n` requests with this verb (any if None) on this plural resource (any if
    /// None) fail with HTTP `code` and a Status carrying `message`.
    pub fn fail_next(
        &self,
        n: usize,
        verb: Option<Verb>,
        resource: Option<&str>,
        code: u16,
        message: &str,
    ) {
        self.inner.lock().faults.push(store::Fault {
            verb,
            resource: resource.map(String::from),
            remaining: n,
            code,
            message: message.to_string(),
        });
    }

    /// Turn the workload simulation on or off at run time (off: workload status stays as written,
    /// e.g. to test "Deployment not available yet").
    pub fn set_simulate_workloads(&self, on: bool) {
        self.inner.lock().set_simulate_workloads(on);
        self.inner.gc.notify_one();
    }

    /// Delay every request by `d` (zero to stop).
    pub fn set_latency(&self, d: Duration) {
        self.inner.lock().latency = d;
    }

    /// Close every open watch stream (clients see the connection end and re-watch).
    pub fn drop_watches(&self) {
        self.inner.kill_watches.send_modify(|g| *g += 1);
    }

    /// Compact the event log: a watch resuming from any resourceVersion seen so far gets
    /// `410 Gone` ("too old resource version") and has to re-list.
    pub fn expire_resource_versions(&self) {
        self.inner.lock().compact();
    }

    /// Simulate an apiserver/etcd restart: nothing is lost, every watch is dropped, history is
    /// compacted (old resourceVersions expire) and the resourceVersion counter jumps.
    pub fn restart(&self) {
        {
            let mut st = self.inner.lock();
            st.rv += 1000;
            st.compact();
        }
        self.drop_watches();
    }

    /// Server-side apply every object of a (multi-document) YAML manifest, as field manager
    /// `test-fixture` with force, through the same path as an API request (admission included).
    /// Namespaced objects without a namespace go to `default`. Returns the objects as stored.
    pub async fn apply_yaml(&self, yaml: &str) -> anyhow::Result<Vec<Value>> {
        use serde::Deserialize;
        let mut out = vec![];
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let v: Value = Value::deserialize(doc)?;
            if v.is_null() {
                continue;
            }
            let api_version = store::meta_free_str(&v, "apiVersion");
            let kind = store::meta_free_str(&v, "kind");
            let (group, version) = match api_version.rsplit_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), api_version.clone()),
            };
            let res = self
                .inner
                .lock()
                .resources()
                .iter()
                .find(|r| {
                    r.group == group && r.kind == kind && r.served_version(&version).is_some()
                })
                .cloned()
                .with_context(|| format!("no served resource for {api_version} {kind}"))?;
            let name = v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let namespace = if res.namespaced {
                v.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string()
            } else {
                String::new()
            };
            let req = server::Req {
                res,
                version,
                namespace,
                name,
                sub: String::new(),
                query: [("force".to_string(), "true".to_string())].into(),
                field_manager: "test-fixture".into(),
                dry_run: false,
            };
            let w = self
                .inner
                .write(
                    &req,
                    server::WriteOp::Patch(server::PatchKind::Apply, v),
                    "test-fixture",
                )
                .await
                .map_err(|e| anyhow::anyhow!("applying {kind} {}: {}", req.name, e.message))?;
            out.push(w.object);
        }
        Ok(out)
    }

    /// How many watch streams are open right now.
    pub fn open_watches(&self) -> usize {
        self.inner.kill_watches.receiver_count()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.lock().rv
    }

    /// An object as stored (at its storage version), bypassing the API: for assertions.
    pub fn stored_object(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.inner
            .lock()
            .get(&(group.to_string(), plural.to_string()), namespace, name)
            .cloned()
    }

    /// How many stored objects of a resource (at their storage version) in `namespace` ("" for
    /// all namespaces, or a cluster-scoped resource) satisfy `pred`. Cheap, bypassing the API
    /// (nothing is copied and no request is recorded): for polling until a controller converges.
    pub fn count(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> usize {
        self.inner
            .lock()
            .iter_ns(&(group.to_string(), plural.to_string()), namespace)
            .filter(|(_, o)| pred(o))
            .count()
    }

    /// Run the garbage collector now (it also runs after every write and twice a second).
    pub fn collect_garbage(&self) {
        let mut st = self.inner.lock();
        for _ in 0..8 {
            if !gc::pass(&mut st, true) {
                break;
            }
        }
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.drop_watches();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A kubeconfig for `url` (with `ca_pem` as the cluster's certificate authority, if given).
pub fn kubeconfig_yaml(url: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine;
    let ca = ca_pem
        .map(|p| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(p)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n{ca}contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\nusers:\n- name: test\n  user:\n    token: test-token\npreferences: {{}}\n"
    )
}
