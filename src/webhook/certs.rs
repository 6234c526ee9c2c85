//! Certificate generation with rcgen: a CA and a serving certificate it signs.
//!
//! Used by `mcp-operator certs` (development pairs), by the self-managed mode (no cert-manager)
//! and by the tests. Keys are ECDSA P-256: small, fast handshakes, accepted by every API server.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

/// How long a generated CA is valid. Long, so that the `caBundle` in the webhook configurations
/// and CRDs (which only the CA goes into) does not change when serving certificates rotate.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a generated serving certificate is valid.
pub const SERVING_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates are back-dated a little so that a node whose clock lags still accepts them.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why certificates could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot generate the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("at least one DNS name is required")]
    NoDnsName,
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A CA: its certificate and key, PEM-encoded.
#[derive(Clone)]
pub struct CertificateAuthority {
    pub cert_pem: String,
    pub key_pem: String,
    params: CertificateParams,
}

impl std::fmt::Debug for CertificateAuthority {
    // Never print a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

/// A serving certificate and its key, PEM-encoded.
#[derive(Clone)]
pub struct ServingPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServingPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingPair").finish_non_exhaustive()
    }
}

fn validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + valid_for;
}

/// Generates a self-signed CA named `common_name`.
pub fn generate_ca(
    common_name: &str,
    valid_for: Duration,
) -> Result<CertificateAuthority, GenerateError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, valid_for);
    let cert = params.self_signed(&key)?;
    Ok(CertificateAuthority {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        params,
    })
}

impl CertificateAuthority {
    /// Rebuilds a CA from its stored PEM (self-managed mode keeps it in a Secret). The
    /// distinguished name is taken from the certificate so issued certificates chain to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, GenerateError> {
        // Refuse a key that rcgen cannot sign with now, not at the first issuance.
        KeyPair::from_pem(key_pem)?;
        let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .ok_or(rcgen::Error::CouldNotParseCertificate)?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der)
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        let mut dn = DistinguishedName::new();
        if let Some(cn) = x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            dn.push(DnType::CommonName, cn);
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ok(CertificateAuthority {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            params,
        })
    }

    /// Issues a serving certificate for `dns_names` (IP addresses are accepted too).
    pub fn issue_serving(
        &self,
        dns_names: &[String],
        valid_for: Duration,
    ) -> Result<ServingPair, GenerateError> {
        let first = dns_names.first().ok_or(GenerateError::NoDnsName)?;
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_params(&self.params, &ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, first.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, valid_for);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(ServingPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The DNS names a webhook Service answers to inside the cluster.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_string(),
    ]
}

/// Writes `tls.crt`/`tls.key` (the names of a `kubernetes.io/tls` Secret) and `ca.crt`, plus
/// `ca.key` when `ca_key` is true, into `dir`. Keys are written owner-only.
pub fn write_cert_dir(
    dir: &Path,
    ca: &CertificateAuthority,
    pair: &ServingPair,
    ca_key: bool,
) -> Result<(), GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    write_file(&dir.join("ca.crt"), &ca.cert_pem, false)?;
    write_file(&dir.join("tls.crt"), &pair.cert_pem, false)?;
    write_file(&dir.join("tls.key"), &pair.key_pem, true)?;
    if ca_key {
        write_file(&dir.join("ca.key"), &ca.key_pem, true)?;
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), GenerateError> {
    let err = |source| GenerateError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    {
        use std::io::Write;
        let mut file = options.open(&tmp).map_err(err)?;
        file.write_all(contents.as_bytes()).map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}
