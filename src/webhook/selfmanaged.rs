//! Self-managed certificates, for clusters without cert-manager.
//!
//! Every replica runs [`SelfManagedCerts::run`]. The CA and the serving pair live in one Secret
//! in the operator's namespace, so all replicas serve certificates from the same CA; whichever
//! replica finds the Secret missing or due for renewal writes it, with optimistic concurrency
//! (create, or replace at the read `resourceVersion`): a replica that loses the race re-reads
//! and uses the winner's pair. Each replica then writes the pair into its local certificate
//! directory, where [`super::tls::CertWatcher`] picks it up like a cert-manager rotation, and
//! makes sure the `caBundle` of both webhook configurations and of every CRD with a conversion
//! webhook holds the CA (the CA only, never the leaf: every replica's leaf must verify).
//!
//! Lifetimes, each derived from the one before:
//! - the CA lives [`CA_VALIDITY`] (10 years) and is replaced when less than [`CA_RENEW_BEFORE`]
//!   (1 year) is left; the old CA stays in the bundle until it expires, so certificates signed
//!   by either verify during the overlap;
//! - a serving certificate lives [`SERVING_VALIDITY`] (90 days) and is renewed when less than
//!   [`SERVING_RENEW_BEFORE`] (30 days) is left: a month of slack for a stuck operator;
//! - the Secret is checked every [`CHECK_INTERVAL`] (1 hour), far below that slack.

use super::certs::{generate_ca, service_dns_names, CertificateAuthority, GenerateError};
use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const CA_VALIDITY: Duration = super::certs::CA_VALIDITY;
pub const CA_RENEW_BEFORE: Duration = Duration::from_secs(365 * 24 * 3600);
pub const SERVING_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
pub const SERVING_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
pub const CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Keys of the Secret.
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
/// The CAs to trust: the current one, plus the previous one until it expires.
pub const CA_BUNDLE_KEY: &str = "ca-bundle.crt";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";

/// Why self-managed certificates could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SelfManagedError {
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error("cannot {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write the certificate directory: {0}")]
    Write(#[source] std::io::Error),
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> SelfManagedError {
    let action = action.into();
    move |source| SelfManagedError::Kube { action, source }
}

/// The certificate material kept in the Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    pub ca_cert: String,
    pub ca_key: String,
    pub ca_bundle: String,
    pub tls_cert: String,
    pub tls_key: String,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material").finish_non_exhaustive()
    }
}

impl Material {
    fn from_secret(secret: &Secret) -> Option<Material> {
        let data = secret.data.as_ref()?;
        let get = |k: &str| {
            data.get(k)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
        };
        Some(Material {
            ca_cert: get(CA_CERT_KEY)?,
            ca_key: get(CA_KEY_KEY)?,
            ca_bundle: get(CA_BUNDLE_KEY).unwrap_or_else(|| get(CA_CERT_KEY).unwrap_or_default()),
            tls_cert: get(TLS_CERT_KEY)?,
            tls_key: get(TLS_KEY_KEY)?,
        })
    }

    fn to_data(&self) -> BTreeMap<String, ByteString> {
        [
            (CA_CERT_KEY, &self.ca_cert),
            (CA_KEY_KEY, &self.ca_key),
            (CA_BUNDLE_KEY, &self.ca_bundle),
            (TLS_CERT_KEY, &self.tls_cert),
            (TLS_KEY_KEY, &self.tls_key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
    }
}

/// What the stored material needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Keep,
    /// A new serving pair from the same CA.
    RenewServing,
    /// A new CA (the old one stays in the bundle while valid) and a new serving pair.
    RenewCa,
    /// Nothing usable is stored.
    Create,
}

/// Unix time at which the first certificate in `pem` expires, if it parses.
pub fn not_after(pem: &str) -> Option<i64> {
    let der = rustls_pemfile::certs(&mut pem.as_bytes()).next()?.ok()?;
    let (_, x509) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(x509.validity().not_after.timestamp())
}

/// Decides what to do with stored material at unix time `now`, for `dns_names`.
pub fn plan(stored: Option<&Material>, dns_names: &[String], now: i64) -> Plan {
    let Some(stored) = stored else {
        return Plan::Create;
    };
    let (Some(ca_end), Some(tls_end)) = (not_after(&stored.ca_cert), not_after(&stored.tls_cert))
    else {
        return Plan::Create;
    };
    if super::tls::parse_pem_pair(stored.tls_cert.as_bytes(), stored.tls_key.as_bytes()).is_err()
        || CertificateAuthority::from_pem(&stored.ca_cert, &stored.ca_key).is_err()
    {
        return Plan::Create;
    }
    if ca_end - now < CA_RENEW_BEFORE.as_secs() as i64 {
        return Plan::RenewCa;
    }
    if tls_end - now < SERVING_RENEW_BEFORE.as_secs() as i64 || !covers(&stored.tls_cert, dns_names)
    {
        return Plan::RenewServing;
    }
    Plan::Keep
}

/// Whether the certificate names every one of `dns_names`.
fn covers(pem: &str, dns_names: &[String]) -> bool {
    let Some(Ok(der)) = rustls_pemfile::certs(&mut pem.as_bytes()).next() else {
        return false;
    };
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    let Ok(Some(san)) = x509.subject_alternative_name() else {
        return false;
    };
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    dns_names.iter().all(|n| names.contains(n))
}

/// Carries out `plan` on `stored`, returning the material to store.
pub fn renew(
    plan: Plan,
    stored: Option<&Material>,
    dns_names: &[String],
    now: i64,
) -> Result<Option<Material>, GenerateError> {
    let ca = match (plan, stored) {
        (Plan::Keep, _) => return Ok(None),
        (Plan::RenewServing, Some(stored)) => {
            let ca = CertificateAuthority::from_pem(&stored.ca_cert, &stored.ca_key)?;
            let pair = ca.issue_serving(dns_names, SERVING_VALIDITY)?;
            return Ok(Some(Material {
                tls_cert: pair.cert_pem,
                tls_key: pair.key_pem,
                ..stored.clone()
            }));
        }
        _ => generate_ca("mcp-operator webhook CA", CA_VALIDITY)?,
    };
    let pair = ca.issue_serving(dns_names, SERVING_VALIDITY)?;
    // Keep trusting the previous CA while it is valid: replicas that have not reloaded yet still
    // serve certificates signed by it.
    let mut ca_bundle = ca.cert_pem.clone();
    if let Some(old) = stored.filter(|_| plan == Plan::RenewCa) {
        if not_after(&old.ca_cert).is_some_and(|end| end > now) {
            ca_bundle.push_str(&old.ca_cert);
        }
    }
    Ok(Some(Material {
        ca_cert: ca.cert_pem.clone(),
        ca_key: ca.key_pem.clone(),
        ca_bundle,
        tls_cert: pair.cert_pem,
        tls_key: pair.key_pem,
    }))
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Keeps a shared CA and serving pair in a Secret, the local certificate directory up to date,
/// and the `caBundle`s patched.
pub struct SelfManagedCerts {
    pub client: kube::Client,
    pub namespace: String,
    pub secret_name: String,
    /// The webhook Service (its DNS names go into the serving certificate).
    pub service_name: String,
    /// Name of the Validating/MutatingWebhookConfiguration whose caBundles we patch.
    pub webhook_configuration: String,
    /// CRDs whose conversion webhook caBundle we patch (when their strategy is Webhook).
    pub crds: Vec<String>,
    /// Where `tls.crt`/`tls.key` are written for the server.
    pub cert_dir: PathBuf,
}

/// The field manager of our caBundle writes.
const FIELD_MANAGER: &str = "mcp-operator-ca-bundle";

impl SelfManagedCerts {
    fn dns_names(&self) -> Vec<String> {
        service_dns_names(&self.service_name, &self.namespace)
    }

    /// Ensures the Secret holds valid material, writes the pair locally and patches caBundles.
    /// Call before starting the server (so its first load finds files), then [`Self::run`].
    pub async fn reconcile(&self) -> Result<(), SelfManagedError> {
        let material = self.ensure_secret().await?;
        self.write_local(&material)?;
        self.patch_ca_bundles(material.ca_bundle.as_bytes()).await
    }

    /// Re-checks every [`CHECK_INTERVAL`] until `shutdown` resolves; failures are logged and
    /// retried at the next check (the current certificate has a month of slack).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(CHECK_INTERVAL) => {
                    if let Err(e) = self.reconcile().await {
                        tracing::error!(error = %e, "self-managed certificates: check failed; retrying in an hour");
                    }
                }
            }
        }
    }

    async fn ensure_secret(&self) -> Result<Material, SelfManagedError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let dns_names = self.dns_names();
        // Two attempts: if another replica wrote in between, the second read sees its pair.
        for _ in 0..2 {
            let current = secrets
                .get_opt(&self.secret_name)
                .await
                .map_err(kube_err(format!(
                    "read Secret {}/{}",
                    self.namespace, self.secret_name
                )))?;
            let stored = current.as_ref().and_then(Material::from_secret);
            let now = now_unix();
            let plan = plan(stored.as_ref(), &dns_names, now);
            let Some(next) = renew(plan, stored.as_ref(), &dns_names, now)? else {
                if let Some(stored) = stored {
                    return Ok(stored);
                }
                continue;
            };
            tracing::info!(?plan, secret = %self.secret_name, "self-managed certificates: writing new material");
            let result = match current {
                Some(mut secret) => {
                    secret.data = Some(next.to_data());
                    secret.string_data = None;
                    secrets
                        .replace(&self.secret_name, &PostParams::default(), &secret)
                        .await
                }
                None => {
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(self.secret_name.clone()),
                            namespace: Some(self.namespace.clone()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/managed-by".to_string(),
                                "mcp-operator".to_string(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        type_: Some("kubernetes.io/tls".into()),
                        data: Some(next.to_data()),
                        ..Secret::default()
                    };
                    secrets.create(&PostParams::default(), &secret).await
                }
            };
            match result {
                Ok(_) => return Ok(next),
                // Conflict (409) or AlreadyExists (409): another replica won; read its pair.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => return Err(kube_err("write the certificate Secret")(e)),
            }
        }
        Err(SelfManagedError::Kube {
            action: "settle the certificate Secret with the other replicas".into(),
            source: kube::Error::Api(
                kube::core::Status::failure("conflict twice in a row", "Conflict")
                    .with_code(409)
                    .boxed(),
            ),
        })
    }

    fn write_local(&self, material: &Material) -> Result<(), SelfManagedError> {
        let current = std::fs::read_to_string(self.cert_dir.join(TLS_CERT_KEY)).unwrap_or_default();
        if current == material.tls_cert {
            return Ok(());
        }
        std::fs::create_dir_all(&self.cert_dir).map_err(SelfManagedError::Write)?;
        // Key first, then certificate: the watcher may read between the two writes and will
        // find a mismatched pair, which it reports and retries; it never serves a wrong pair.
        for (name, contents) in [
            (TLS_KEY_KEY, &material.tls_key),
            (TLS_CERT_KEY, &material.tls_cert),
        ] {
            let path = self.cert_dir.join(name);
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, contents).map_err(SelfManagedError::Write)?;
            #[cfg(unix)]
            if name == TLS_KEY_KEY {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                    .map_err(SelfManagedError::Write)?;
            }
            std::fs::rename(&tmp, &path).map_err(SelfManagedError::Write)?;
        }
        Ok(())
    }

    async fn patch_ca_bundles(&self, bundle: &[u8]) -> Result<(), SelfManagedError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
        let validating: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        if let Some(config) = validating
            .get_opt(&self.webhook_configuration)
            .await
            .map_err(kube_err("read the ValidatingWebhookConfiguration"))?
        {
            let current: Vec<_> = config.webhooks.unwrap_or_default();
            if current
                .iter()
                .any(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(bundle))
            {
                patch_webhooks(
                    &validating,
                    &self.webhook_configuration,
                    current.len(),
                    &encoded,
                )
                .await?;
            }
        }
        let mutating: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        if let Some(config) = mutating
            .get_opt(&self.webhook_configuration)
            .await
            .map_err(kube_err("read the MutatingWebhookConfiguration"))?
        {
            let current: Vec<_> = config.webhooks.unwrap_or_default();
            if current
                .iter()
                .any(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(bundle))
            {
                patch_webhooks(
                    &mutating,
                    &self.webhook_configuration,
                    current.len(),
                    &encoded,
                )
                .await?;
            }
        }
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for name in &self.crds {
            let Some(crd) = crds
                .get_opt(name)
                .await
                .map_err(kube_err(format!("read CRD {name}")))?
            else {
                continue;
            };
            let conversion = crd.spec.conversion.as_ref();
            if conversion.map(|c| c.strategy.as_str()) != Some("Webhook") {
                continue;
            }
            let current = conversion
                .and_then(|c| c.webhook.as_ref())
                .and_then(|w| w.client_config.as_ref())
                .and_then(|c| c.ca_bundle.as_ref());
            if current.map(|b| b.0.as_slice()) == Some(bundle) {
                continue;
            }
            let patch = serde_json::json!({"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": encoded}}}}});
            crds.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(kube_err(format!("patch the caBundle of CRD {name}")))?;
        }
        Ok(())
    }
}

/// Sets `webhooks[*].clientConfig.caBundle` with a JSON Patch (a merge patch would replace the
/// whole list).
async fn patch_webhooks<K>(
    api: &Api<K>,
    name: &str,
    count: usize,
    encoded: &str,
) -> Result<(), SelfManagedError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if count == 0 {
        return Ok(());
    }
    let ops: Vec<serde_json::Value> = (0..count)
        .map(|i| serde_json::json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded}))
        .collect();
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| SelfManagedError::Write(std::io::Error::other(e)))?;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::<()>::Json(patch))
        .await
        .map_err(kube_err(format!(
            "patch the caBundle of webhook configuration {name}"
        )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        service_dns_names("mcp-operator-webhook", "mcp-system")
    }

    #[test]
    fn nothing_stored_creates_and_fresh_material_is_kept() {
        crate::crypto::install_provider();
        let now = now_unix();
        assert_eq!(plan(None, &names(), now), Plan::Create);
        let created = renew(Plan::Create, None, &names(), now).unwrap().unwrap();
        assert_eq!(plan(Some(&created), &names(), now), Plan::Keep);
        assert_eq!(created.ca_bundle, created.ca_cert);
        super::super::tls::parse_pem_pair(created.tls_cert.as_bytes(), created.tls_key.as_bytes())
            .unwrap();
    }

    #[test]
    fn renewal_follows_the_lifetimes() {
        crate::crypto::install_provider();
        let now = now_unix();
        let created = renew(Plan::Create, None, &names(), now).unwrap().unwrap();
        let day = 24 * 3600;
        // 61 days later the serving certificate (90 days) has less than 30 left.
        assert_eq!(
            plan(Some(&created), &names(), now + 61 * day),
            Plan::RenewServing
        );
        let renewed = renew(Plan::RenewServing, Some(&created), &names(), now)
            .unwrap()
            .unwrap();
        assert_eq!(
            renewed.ca_cert, created.ca_cert,
            "the CA, and so the caBundle, stays"
        );
        assert_ne!(renewed.tls_cert, created.tls_cert);
        // 9.5 years later the CA is due; the old CA stays in the bundle.
        assert_eq!(
            plan(Some(&created), &names(), now + 3470 * day),
            Plan::RenewCa
        );
        let rotated = renew(Plan::RenewCa, Some(&created), &names(), now)
            .unwrap()
            .unwrap();
        assert_ne!(rotated.ca_cert, created.ca_cert);
        assert!(
            rotated.ca_bundle.starts_with(&rotated.ca_cert)
                && rotated.ca_bundle.ends_with(&created.ca_cert)
        );
        // A new Service name is not covered: renew.
        let other = service_dns_names("renamed", "mcp-system");
        assert_eq!(plan(Some(&created), &other, now), Plan::RenewServing);
    }

    #[test]
    fn broken_material_is_replaced() {
        crate::crypto::install_provider();
        let now = now_unix();
        let mut broken = renew(Plan::Create, None, &names(), now).unwrap().unwrap();
        broken.tls_key = "not a key".into();
        assert_eq!(plan(Some(&broken), &names(), now), Plan::Create);
    }
}
