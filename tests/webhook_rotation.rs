//! Certificate rotation under load, the way the kubelet does it: a new timestamped directory,
//! then an atomic swap of the `..data` symlink. Reviews keep flowing with zero failures, new
//! connections see the new certificate, and a broken pair never replaces a good one.

mod webhook_support;

use mcp_operator::webhook::certs::ServingPair;
use mcp_operator::webhook::RunningServer;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhook_support::*;

const MUTATE: &str = "/mutate-toolhive-stacklok-dev-v1beta1-mcpserver";

/// Writes `pair` as the kubelet writes a Secret volume: `..<stamp>/`, `..data -> ..<stamp>`,
/// `tls.crt -> ..data/tls.crt`. Returns the previous data directory, which is removed.
fn kubelet_swap(dir: &Path, pair: &ServingPair, stamp: usize) {
    let data_dir = dir.join(format!("..2026_11_22_00_00_{stamp:05}"));
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::write(data_dir.join("tls.crt"), &pair.cert_pem).unwrap();
    std::fs::write(data_dir.join("tls.key"), &pair.key_pem).unwrap();
    let previous = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(data_dir.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link)
            .map(|m| !m.file_type().is_symlink())
            .unwrap_or(true)
        {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
    if let Some(previous) = previous {
        std::fs::remove_dir_all(dir.join(previous)).unwrap();
    }
}

fn fingerprint_of(pem: &str) -> String {
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    hex::encode(Sha256::digest(der.as_ref()))
}

/// The fingerprint of the certificate a brand-new connection is served.
async fn served_fingerprint(pki: &Pki, server: &RunningServer) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pki.ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let tls = connector
        .connect(rustls::pki_types::ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .expect("a handshake verified against the CA");
    let leaf = &tls.get_ref().1.peer_certificates().unwrap()[0];
    hex::encode(Sha256::digest(leaf.as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_never_fail_while_the_certificate_rotates_every_200ms() {
    let pki = Pki::new();
    // Replace the plain files of Pki::new with the kubelet's symlink layout.
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        std::fs::remove_file(pki.dir.path().join(file)).unwrap();
    }
    let first = pki.issue();
    kubelet_swap(pki.dir.path(), &first, 0);
    let server = serve(&pki).await;
    assert_eq!(
        server.certs.current().fingerprint,
        fingerprint_of(&first.cert_pem)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let review = review(
        "MCPServer",
        "v1beta1",
        "mcpservers",
        "CREATE",
        Some(&fetch_server()),
        None,
    );
    let mut loops = Vec::new();
    // Two keep-alive clients (connections that outlive many rotations) and one that opens a new
    // connection, and so does a handshake, for every request.
    for fresh in [false, false, true] {
        let mut builder = client_builder(&pki, &server);
        if fresh {
            builder = builder.pool_max_idle_per_host(0);
        }
        let client = builder.build().unwrap();
        let (stop, ok, failed, review) = (stop.clone(), ok.clone(), failed.clone(), review.clone());
        let url = url(&server, MUTATE);
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = client.post(&url).json(&review).send().await;
                match answer {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!("status {}", r.status());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("error {e:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let mut seen = HashSet::new();
    let mut last = first;
    let started = Instant::now();
    let mut stamp = 1;
    while started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = pki.issue();
        kubelet_swap(pki.dir.path(), &last, stamp);
        stamp += 1;
        seen.insert(served_fingerprint(&pki, &server).await);
    }
    let expected = fingerprint_of(&last.cert_pem);
    let deadline = Instant::now() + Duration::from_secs(3);
    while served_fingerprint(&pki, &server).await != expected {
        assert!(
            Instant::now() < deadline,
            "new connections must see the newest certificate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "{ok} reviews, {failed} failed, {} rotations, {} certificates seen by new connections",
        stamp - 1,
        seen.len()
    );
    assert_eq!(failed, 0, "zero failed requests during rotation");
    assert!(ok > 100, "the load kept running ({ok})");
    assert!(
        seen.len() > 5,
        "new connections saw the rotations ({})",
        seen.len()
    );

    let metrics = reqwest::get(metrics_url(&server, "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reloads: u64 = metrics
        .lines()
        .find(|l| l.starts_with("mcp_operator_webhook_cert_reloads_total{result=\"success\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("reload counter");
    assert!(reloads >= 10, "{reloads} reloads counted");
    server.shutdown().await.unwrap();
}

/// The directory watch, not the periodic re-read, picks up a kubelet swap: with the re-read an
/// hour away, new connections still see the new certificate at once.
#[tokio::test]
async fn a_swap_is_served_on_the_file_event_without_waiting_for_the_poll() {
    let pki = Pki::new();
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        std::fs::remove_file(pki.dir.path().join(file)).unwrap();
    }
    kubelet_swap(pki.dir.path(), &pki.issue(), 0);
    let mut options = options(&pki);
    options.reload_interval = Duration::from_secs(3600);
    let server = mcp_operator::webhook::start(options).await.unwrap();
    // The first tick of the re-read fires at once; be past it before rotating.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let next = pki.issue();
    kubelet_swap(pki.dir.path(), &next, 1);
    let expected = fingerprint_of(&next.cert_pem);
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_fingerprint(&pki, &server).await != expected {
        assert!(
            Instant::now() < deadline,
            "the swap was not picked up from its file event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_broken_pair_is_reported_and_the_last_good_one_kept() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let good = server.certs.current().fingerprint.clone();
    let dir = pki.dir.path();
    let wait = || tokio::time::sleep(Duration::from_millis(300));

    // Garbage key, then a key that does not belong to the certificate, then an empty file.
    let other = pki.issue();
    let mut attempts = 0;
    for (cert, key) in [
        (
            None,
            Some(
                "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n".to_string(),
            ),
        ),
        (None, Some(other.key_pem.clone())),
        (Some(String::new()), None),
    ] {
        if let Some(cert) = cert {
            std::fs::write(dir.join("tls.crt"), cert).unwrap();
        }
        if let Some(key) = key {
            std::fs::write(dir.join("tls.key"), key).unwrap();
        }
        attempts += 1;
        wait().await;
        assert_eq!(
            server.certs.current().fingerprint,
            good,
            "attempt {attempts}: the good pair is kept"
        );
        assert_eq!(served_fingerprint(&pki, &server).await, good);
    }
    let metrics = reqwest::get(metrics_url(&server, "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mcp_operator_webhook_cert_reloads_total{result=\"error\"} 3"),
        "{metrics}"
    );

    // Files missing for a while (mid-swap): still serving the good pair.
    std::fs::remove_file(dir.join("tls.crt")).unwrap();
    wait().await;
    assert_eq!(served_fingerprint(&pki, &server).await, good);

    // Then a good new pair is picked up.
    std::fs::write(dir.join("tls.key"), &other.key_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), &other.cert_pem).unwrap();
    let expected = fingerprint_of(&other.cert_pem);
    let deadline = Instant::now() + Duration::from_secs(3);
    while served_fingerprint(&pki, &server).await != expected {
        assert!(Instant::now() < deadline, "the good new pair is served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.readiness.is_ready());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_server_refuses_to_start_without_a_usable_certificate() {
    let pki = Pki::new();
    std::fs::write(pki.dir.path().join("tls.key"), "nope").unwrap();
    let err = match mcp_operator::webhook::start(options(&pki)).await {
        Ok(_) => panic!("started without a key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("no usable serving certificate"), "{err}");
    assert!(
        !err.contains("PRIVATE KEY"),
        "never echo key material: {err}"
    );
}
