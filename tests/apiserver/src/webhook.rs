//! Calling webhooks the way kube-apiserver does: HTTPS only, trusting exactly the configuration's
//! `caBundle`, the TLS server name being `<service>.<namespace>.svc` for service references.

use base64::Engine;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// POST a JSON review to a webhook `clientConfig` and return the JSON answer. Errors are the
/// text that follows `failed to call webhook: ` in the apiserver's messages.
pub async fn post_review(
    client_config: &Value,
    service_map: &HashMap<String, String>,
    body: &Value,
    timeout: Duration,
) -> Result<Value, String> {
    let timeout_q = format!("timeout={}s", timeout.as_secs().max(1));
    let mut builder = reqwest::Client::builder().no_proxy().timeout(timeout);
    let url = if let Some(url) = client_config.get("url").and_then(Value::as_str) {
        if !url.starts_with("https://") {
            return Err(format!("webhook url {url:?} must use https"));
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{timeout_q}")
    } else if let Some(svc) = client_config.get("service") {
        let ns = svc
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = svc.get("name").and_then(Value::as_str).unwrap_or_default();
        let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
        let key = format!("{ns}/{name}");
        let target = service_map
            .get(&key)
            .ok_or_else(|| format!("service \"{key}\" has no endpoints (it is not in the test API server's service map)"))?;
        let addr: SocketAddr = tokio::net::lookup_host(target.as_str())
            .await
            .map_err(|e| format!("resolving {target}: {e}"))?
            .next()
            .ok_or_else(|| format!("no address for {target}"))?;
        let host = format!("{name}.{ns}.svc");
        builder = builder.resolve(&host, addr);
        format!("https://{host}:{}{path}?{timeout_q}", addr.port())
    } else {
        return Err("clientConfig has neither url nor service".into());
    };
    builder = builder.use_preconfigured_tls(tls_config(client_config)?);
    let client = builder
        .build()
        .map_err(|e| format!("building client: {e}"))?;
    let resp = client.post(&url).json(body).send().await.map_err(|e| {
        if e.is_timeout() {
            // Go's wording, which is what users of a real cluster see.
            format!("Post \"{url}\": context deadline exceeded")
        } else {
            format!("Post \"{url}\": {}", error_chain(&e))
        }
    })?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("reading response: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "Post \"{url}\": unexpected status {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("failed to decode response: {e}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn tls_config(client_config: &Value) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(b64) = client_config.get("caBundle").and_then(Value::as_str) {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("caBundle is not base64: {e}"))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("caBundle is not PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("caBundle certificate rejected: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}
