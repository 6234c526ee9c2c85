//! TLS: the serving certificate, read from a directory and swapped in live when it changes.
//!
//! cert-manager writes the certificate into a Secret that the kubelet mounts as a directory of
//! symlinks (`tls.crt -> ..data/tls.crt`, `..data -> ..2026_01_01_00_00_00.123`); a rotation
//! swaps the `..data` link atomically. We poll the directory's *contents* every second: that
//! sees the swap (and a plain file rewrite, and a `ConfigMap`-style edit) without depending on
//! inotify semantics across symlink swaps, and it doubles as the periodic re-read.
//!
//! The handshake asks [`CertStore`] for the current pair, so a new pair is used by the next
//! handshake while established connections keep their session: nothing is dropped.

use super::metrics::{Metrics, ReloadLabels};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// File names of a `kubernetes.io/tls` Secret.
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";
/// No certificate chain or key file is this large; anything bigger is refused unread.
const MAX_PEM_BYTES: u64 = 1024 * 1024;
/// How often the certificate directory is re-read.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why a certificate pair could not be loaded. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_PEM_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("{0} holds no PEM private key")]
    NoKey(String),
    #[error("malformed PEM in {0}")]
    Pem(String),
    #[error("the certificate cannot be parsed: {0}")]
    X509(String),
    #[error("the key does not fit the certificate or is not supported: {0}")]
    Key(#[from] rustls::Error),
}

/// A loaded pair, ready for handshakes.
#[derive(Debug)]
pub struct LoadedCert {
    pub certified: Arc<CertifiedKey>,
    /// Unix time at which the leaf expires.
    pub not_after: i64,
    /// SHA-256 of the leaf certificate (DER), hex: safe to log.
    pub fingerprint: String,
    /// The leaf's subject, for logs.
    pub subject: String,
}

/// Parses a PEM certificate chain and its PEM private key; the key must match the leaf.
pub fn parse_pem_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<LoadedCert, CertError> {
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|_| CertError::Pem(CERT_FILE.into()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| CertError::NoCertificate(CERT_FILE.into()))?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| CertError::X509(e.to_string()))?;
    let not_after = x509.validity().not_after.timestamp();
    let subject = x509.subject().to_string();
    let fingerprint = hex::encode(Sha256::digest(leaf.as_ref()));
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|_| CertError::Pem(KEY_FILE.into()))?
        .ok_or_else(|| CertError::NoKey(KEY_FILE.into()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)?;
    Ok(LoadedCert {
        certified: Arc::new(certified),
        not_after,
        fingerprint,
        subject,
    })
}

async fn read_bounded(path: &Path) -> Result<Vec<u8>, CertError> {
    use tokio::io::AsyncReadExt;
    let shown = || path.display().to_string();
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| CertError::Read {
            path: shown(),
            source,
        })?;
    let mut out = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut out)
        .await
        .map_err(|source| CertError::Read {
            path: shown(),
            source,
        })?;
    if out.len() as u64 > MAX_PEM_BYTES {
        return Err(CertError::TooLarge { path: shown() });
    }
    Ok(out)
}

/// Reads `tls.crt` and `tls.key` from `dir`.
pub async fn read_cert_dir(dir: &Path) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    Ok((
        read_bounded(&dir.join(CERT_FILE)).await?,
        read_bounded(&dir.join(KEY_FILE)).await?,
    ))
}

/// Loads the pair in `dir`.
pub async fn load_cert_and_key(dir: &Path) -> Result<LoadedCert, CertError> {
    let (cert, key) = read_cert_dir(dir).await?;
    parse_pem_pair(&cert, &key)
}

/// The pair currently served; the TLS handshake reads it through [`ResolvesServerCert`].
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<LoadedCert>>,
}

impl CertStore {
    pub fn new(first: LoadedCert) -> Self {
        CertStore {
            current: RwLock::new(Arc::new(first)),
        }
    }

    /// The pair served to the next handshake.
    pub fn current(&self) -> Arc<LoadedCert> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves `next` from the next handshake on.
    pub fn replace(&self, next: LoadedCert) {
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().certified.clone())
    }
}

/// The rustls configuration: TLS 1.3 and 1.2 only, HTTP/2 and HTTP/1.1, certificates from
/// `store`. Uses the ring provider explicitly, whatever the process default is.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Publishes the served certificate's expiry.
pub fn record_expiry(metrics: &Metrics, cert: &LoadedCert) {
    metrics.cert_not_after.set(cert.not_after);
    metrics.cert_expires_in.set(cert.not_after - now_unix());
}

/// Re-reads the certificate directory and swaps in a changed, valid pair.
pub struct CertWatcher {
    dir: PathBuf,
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
    /// Hash of the file contents last tried, so a broken pair is reported once, not every poll.
    last_seen: [u8; 32],
    read_failing: bool,
}

fn contents_hash(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

impl CertWatcher {
    /// `initial_cert`/`initial_key` are the contents `store`'s pair was loaded from.
    pub fn new(
        dir: PathBuf,
        store: Arc<CertStore>,
        metrics: Arc<Metrics>,
        initial: (&[u8], &[u8]),
    ) -> Self {
        CertWatcher {
            dir,
            store,
            metrics,
            last_seen: contents_hash(initial.0, initial.1),
            read_failing: false,
        }
    }

    /// One poll: returns true when a new pair was swapped in.
    pub async fn poll(&mut self) -> bool {
        record_expiry(&self.metrics, &self.store.current());
        let (cert, key) = match read_cert_dir(&self.dir).await {
            Ok(files) => {
                self.read_failing = false;
                files
            }
            Err(e) => {
                // During a kubelet swap a file may briefly be missing; say so once per outage.
                if !self.read_failing {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the certificate directory; serving the last good certificate");
                    self.read_failing = true;
                }
                return false;
            }
        };
        let hash = contents_hash(&cert, &key);
        if hash == self.last_seen {
            return false;
        }
        self.last_seen = hash;
        match parse_pem_pair(&cert, &key) {
            Ok(next) => {
                let previous = self.store.current();
                if next.not_after < now_unix() {
                    tracing::error!(subject = %next.subject, not_after = next.not_after, "the new serving certificate has already expired; serving it anyway, it is the newest one");
                }
                tracing::info!(
                    subject = %next.subject,
                    fingerprint = %next.fingerprint,
                    previous_fingerprint = %previous.fingerprint,
                    not_after = next.not_after,
                    "serving a new certificate"
                );
                record_expiry(&self.metrics, &next);
                self.store.replace(next);
                self.metrics
                    .cert_reloads
                    .get_or_create(&ReloadLabels { result: "success" })
                    .inc();
                true
            }
            Err(e) => {
                // The files may be mid-rotation (certificate written, key not yet): the next poll
                // sees the finished pair, whose hash differs, and tries again.
                tracing::warn!(dir = %self.dir.display(), error = %e, "the changed certificate pair is not usable; keeping the last good one");
                self.metrics
                    .cert_reloads
                    .get_or_create(&ReloadLabels { result: "error" })
                    .inc();
                false
            }
        }
    }

    /// Re-reads the directory whenever it changes, and every `interval` in any case (a missed
    /// or unsupported file event then costs at most one interval), until `shutdown` resolves.
    pub async fn run(
        mut self,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = watch_dir(&self.dir);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => { self.poll().await; }
                Some(()) = next_change(&mut changes) => {
                    // A rotation is several writes (key, certificate, the `..data` swap):
                    // let it settle so the pair is read once, whole.
                    tokio::time::sleep(SETTLE).await;
                    if let Some((_, rx)) = changes.as_mut() {
                        while rx.try_recv().is_ok() {}
                    }
                    self.poll().await;
                }
            }
        }
    }
}

/// How long after a file event the directory is read.
const SETTLE: Duration = Duration::from_millis(50);

type DirWatch = (notify::RecommendedWatcher, tokio::sync::mpsc::Receiver<()>);

/// A file-system watch on the certificate directory. The kubelet replaces a mounted Secret by
/// swapping the `..data` symlink, which shows up as an event in the directory itself, so the
/// directory (not the files) is watched. `None` when the platform refuses (polling remains).
fn watch_dir(dir: &Path) -> Option<DirWatch> {
    use notify::Watcher;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // Full means a wake-up is already pending: one read sees every change.
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the certificate directory; polling only");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the certificate directory; polling only");
        return None;
    }
    Some((watcher, rx))
}

/// The next change event, or never when there is no watch.
async fn next_change(watch: &mut Option<DirWatch>) -> Option<()> {
    match watch {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}
