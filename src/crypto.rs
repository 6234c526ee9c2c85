//! Process-wide TLS set-up.

/// Installs `ring` as the one rustls crypto provider of the process.
///
/// rustls panics when it must pick a default and finds more than one provider compiled in, so
/// every entry point calls this before it builds a TLS config or a kube client. Calling it twice
/// is harmless.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
