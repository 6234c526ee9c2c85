//! A stand-in for the two parts of cert-manager the chart relies on (cert-manager itself cannot
//! run here). Test-only, never shipped.
//!
//! - **Issuing**: every `Certificate` whose `issuerRef` names a ready `Issuer`/`ClusterIssuer`
//!   gets its `secretName` Secret with `tls.crt`, `tls.key` and `ca.crt`. `selfSigned` issuers
//!   sign the certificate with its own key (`ca.crt` is the certificate itself); `ca` issuers
//!   sign with the pair in their Secret (`ca.crt` is that CA).
//! - **CA injection**: every Validating/MutatingWebhookConfiguration and CRD annotated
//!   `cert-manager.io/inject-ca-from: <namespace>/<certificate>` gets that Certificate's
//!   Secret's `ca.crt` as the `caBundle` of each webhook / of its conversion webhook.
//!
//! Both run in a loop, like the real controllers, until the handle is dropped. Its requests
//! carry the User-Agent [`USER_AGENT`], so a test can tell them from the operator's.

use axum::http::{header, HeaderValue};
use base64::Engine;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::ResourceExt;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use serde_json::{json, Value};
use std::time::Duration;

pub const USER_AGENT: &str = "cert-manager-stand-in";
/// Where ClusterIssuers keep their Secrets (cert-manager's `--cluster-resource-namespace`).
pub const CLUSTER_RESOURCE_NAMESPACE: &str = "cert-manager";
pub const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";

/// cert-manager's CRDs (group and kinds as the real ones), for `apply_yaml`.
pub const CRDS: &str = include_str!("cert-manager-crds.yaml");

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "cert-manager.io".into(),
        version: "v1".into(),
        api_version: "cert-manager.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The running stand-in; dropping it stops both loops.
pub struct CertManager {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CertManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts issuing and injecting against the API server at `url` (plain HTTP, no auth).
pub fn start(url: &str) -> CertManager {
    let mut config = kube::Config::new(url.parse().unwrap());
    config
        .headers
        .push((header::USER_AGENT, HeaderValue::from_static(USER_AGENT)));
    let client = kube::Client::try_from(config).unwrap();
    let task = tokio::spawn(async move {
        loop {
            if let Err(e) = issue_all(&client).await {
                eprintln!("cert-manager stand-in: issuing: {e:#}");
            }
            if let Err(e) = inject_all(&client).await {
                eprintln!("cert-manager stand-in: injecting: {e:#}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    CertManager { task }
}

fn secret_value(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

async fn get_secret(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<Option<Value>> {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    Ok(api
        .get_opt(name)
        .await?
        .map(|s| serde_json::to_value(s).unwrap()))
}

async fn issue_all(client: &kube::Client) -> anyhow::Result<()> {
    let certs: Api<DynamicObject> =
        Api::all_with(client.clone(), &resource("Certificate", "certificates"));
    for cert in certs.list(&Default::default()).await?.items {
        issue(client, &cert).await?;
    }
    Ok(())
}

/// The CA pair (cert, key PEM) a `ca` issuer signs with, if its Secret is there yet.
async fn issuer_signer(
    client: &kube::Client,
    ns: &str,
    issuer_ref: &Value,
) -> anyhow::Result<Option<Signer>> {
    let name = issuer_ref["name"].as_str().unwrap_or_default();
    let kind = issuer_ref["kind"].as_str().unwrap_or("Issuer");
    let (issuer, secret_ns) = if kind == "ClusterIssuer" {
        let api: Api<DynamicObject> =
            Api::all_with(client.clone(), &resource("ClusterIssuer", "clusterissuers"));
        (api.get_opt(name).await?, CLUSTER_RESOURCE_NAMESPACE)
    } else {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &resource("Issuer", "issuers"));
        (api.get_opt(name).await?, ns)
    };
    let Some(issuer) = issuer else {
        return Ok(None);
    };
    let spec = &issuer.data["spec"];
    if spec["selfSigned"].is_object() {
        return Ok(Some(Signer::SelfSigned));
    }
    let Some(secret_name) = spec["ca"]["secretName"].as_str() else {
        anyhow::bail!("issuer {name}: only selfSigned and ca issuers are simulated");
    };
    let Some(secret) = get_secret(client, secret_ns, secret_name).await? else {
        return Ok(None);
    };
    match (
        secret_value(&secret, "tls.crt"),
        secret_value(&secret, "tls.key"),
    ) {
        (Some(cert), Some(key)) => Ok(Some(Signer::Ca { cert, key })),
        _ => Ok(None),
    }
}

enum Signer {
    SelfSigned,
    Ca { cert: String, key: String },
}

async fn issue(client: &kube::Client, cert: &DynamicObject) -> anyhow::Result<()> {
    let ns = cert.namespace().unwrap_or_default();
    let spec = &cert.data["spec"];
    let secret_name = spec["secretName"].as_str().unwrap_or_default();
    if let Some(existing) = get_secret(client, &ns, secret_name).await? {
        if ["tls.crt", "tls.key", "ca.crt"]
            .iter()
            .all(|k| secret_value(&existing, k).is_some())
        {
            return Ok(());
        }
    }
    let Some(signer) = issuer_signer(client, &ns, &spec["issuerRef"]).await? else {
        return Ok(()); // the issuer is not ready yet; the next round tries again
    };
    let (tls_crt, tls_key, ca_crt) = sign(spec, &signer)?;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": secret_name, "namespace": ns,
            "annotations": {"cert-manager.io/certificate-name": cert.name_any()}},
        "stringData": {"tls.crt": tls_crt, "tls.key": tls_key, "ca.crt": ca_crt}
    });
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    api.patch(
        secret_name,
        &PatchParams::apply(USER_AGENT).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    let certs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &resource("Certificate", "certificates"),
    );
    let status =
        json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}});
    certs
        .patch_status(
            &cert.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await?;
    Ok(())
}

/// Signs the Certificate `spec` → (tls.crt, tls.key, ca.crt).
fn sign(spec: &Value, signer: &Signer) -> anyhow::Result<(String, String, String)> {
    let dns: Vec<String> = spec["dnsNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut params = CertificateParams::new(dns.clone())?;
    let mut dn = DistinguishedName::new();
    let cn = spec["commonName"]
        .as_str()
        .map(str::to_string)
        .or_else(|| dns.first().cloned())
        .unwrap_or_else(|| "stand-in".into());
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    if spec["isCA"] == true {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let key = KeyPair::generate()?;
    match signer {
        Signer::SelfSigned => {
            let cert = params.self_signed(&key)?.pem();
            Ok((cert.clone(), key.serialize_pem(), cert))
        }
        Signer::Ca {
            cert: ca_pem,
            key: ca_key,
        } => {
            let ca_key = KeyPair::from_pem(ca_key)?;
            let issuer_params = ca_params(ca_pem)?;
            let issuer = Issuer::from_params(&issuer_params, &ca_key);
            let cert = params.signed_by(&key, &issuer)?.pem();
            Ok((cert, key.serialize_pem(), ca_pem.clone()))
        }
    }
}

/// Parameters whose subject matches the CA certificate's, so what it signs chains to it.
fn ca_params(ca_pem: &str) -> anyhow::Result<CertificateParams> {
    let der = rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .next()
        .ok_or_else(|| anyhow::anyhow!("no CA certificate"))??;
    let (_, x509) = x509_parser::parse_x509_certificate(&der)?;
    let mut dn = DistinguishedName::new();
    if let Some(cn) = x509.subject().iter_common_name().next() {
        dn.push(DnType::CommonName, cn.as_str()?);
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ok(params)
}

/// The `ca.crt` of the Certificate `ns/name`'s Secret, once issued.
async fn ca_of(client: &kube::Client, from: &str) -> anyhow::Result<Option<String>> {
    let Some((ns, name)) = from.split_once('/') else {
        anyhow::bail!("{INJECT_CA_FROM}: {from:?} is not namespace/name");
    };
    let certs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &resource("Certificate", "certificates"));
    let Some(cert) = certs.get_opt(name).await? else {
        return Ok(None);
    };
    let Some(secret_name) = cert.data["spec"]["secretName"].as_str() else {
        return Ok(None);
    };
    Ok(get_secret(client, ns, secret_name)
        .await?
        .and_then(|s| secret_value(&s, "ca.crt")))
}

async fn inject_all(client: &kube::Client) -> anyhow::Result<()> {
    let kinds = [
        (
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
        ),
        (
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
        ),
        (
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    ];
    for (group, version, kind, plural) in kinds {
        let ar = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        for obj in api.list(&Default::default()).await?.items {
            let Some(from) = obj.annotations().get(INJECT_CA_FROM).cloned() else {
                continue;
            };
            let Some(ca) = ca_of(client, &from).await? else {
                continue;
            };
            let bundle = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
            inject(&api, &obj, kind, &bundle).await?;
        }
    }
    Ok(())
}

async fn inject(
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
    kind: &str,
    bundle: &str,
) -> anyhow::Result<()> {
    let name = obj.name_any();
    if kind == "CustomResourceDefinition" {
        let conversion = &obj.data["spec"]["conversion"];
        if conversion["strategy"] != "Webhook"
            || conversion["webhook"]["clientConfig"]["caBundle"] == bundle
        {
            return Ok(());
        }
        let patch =
            json!({"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": bundle}}}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        return Ok(());
    }
    let webhooks = obj.data["webhooks"].as_array().cloned().unwrap_or_default();
    let ops: Vec<Value> = webhooks
        .iter()
        .enumerate()
        .filter(|(_, w)| w["clientConfig"]["caBundle"] != bundle)
        .map(|(i, _)| json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": bundle}))
        .collect();
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))?;
    api.patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(())
}
