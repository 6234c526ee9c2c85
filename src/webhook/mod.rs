//! The HTTPS edge: admission webhooks (and, through a hook, conversion) over rustls.
//!
//! - [`routes`]: the route table, generated from [`crate::api::SERVED`].
//! - [`review`]: AdmissionReview decoding and the shapes of answers (denials, patches).
//! - [`handlers`]: from a review to an answer; the HTTP edge (content type, size, timeout).
//! - [`lookup`]: cross-object checks against the cluster, cached and bounded in time.
//! - [`tls`]: the served certificate, reloaded live from a directory.
//! - [`certs`]: CA and serving certificate generation (rcgen).
//! - [`server`]: the TLS server, the plain-HTTP metrics server, graceful shutdown.
//! - [`metrics`]: Prometheus metrics.
//! - [`config`]: the Validating/MutatingWebhookConfigurations, as data for the chart.
//! - [`selfmanaged`]: CA and serving certificate kept in a Secret when there is no cert-manager.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_operator::webhook::server::ServeError> {
//! use mcp_operator::webhook::server::{start, ServerOptions};
//! let mut options = ServerOptions::new("/tmp/k8s-webhook-server/serving-certs", "0.0.0.0:9443".parse().unwrap());
//! options.metrics_listen = Some("0.0.0.0:8080".parse().unwrap());
//! let server = start(options).await?;
//! // ... on SIGTERM:
//! server.shutdown().await
//! # }
//! ```

pub mod certs;
pub mod config;
pub mod conversion;
pub mod handlers;
pub mod lookup;
pub mod metrics;
pub mod review;
pub mod routes;
pub mod selfmanaged;
pub mod server;
pub mod tls;

pub use server::{start, ConversionHandler, RunningServer, ServeError, ServerOptions};
