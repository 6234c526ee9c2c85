//! `check` over 1,000 objects, side by side with its floor.
//!
//! * floor: reading and parsing the same YAML into objects, nothing else;
//! * ours, in process: parse + default + schema + CEL + semantic checks of every object;
//! * ours, end to end: the release `mcp-operator check` binary on a folder of 1,000 objects,
//!   process start-up included.
//!
//! Run: `cargo bench --bench check` (figures go to benches/README.md).

use mcp_operator::cli::check::check_document;
use mcp_operator::manifest::parse_documents;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const OBJECTS: usize = 1_000;
const ROUNDS: usize = 15;

/// 1,000 realistic objects: the examples, renamed, in one multi-document stream.
fn corpus() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut templates = Vec::new();
    for f in [
        "seed/mcpserver-github.yaml",
        "seed/mcpserver-fetch.yaml",
        "seed/mcpregistry.yaml",
        "mcpserver-everything.yaml",
        "mcpserver-sse.yaml",
        "mcpremoteproxy.yaml",
        "mcpgroup-and-tools.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).expect("example exists");
        for doc in text.split("\n---\n") {
            templates.push(doc.to_string());
        }
    }
    let mut out = String::new();
    for i in 0..OBJECTS {
        let t = &templates[i % templates.len()];
        // Unique names, as in a real folder of manifests.
        let renamed = t.replacen("  name: ", &format!("  name: n{i}-"), 1);
        out.push_str(&renamed);
        out.push_str("\n---\n");
    }
    out
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<F: FnMut()>(mut f: F) -> (Duration, Duration) {
    f(); // warm-up: lazy schema compilation, page cache
    let samples: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    let min = *samples.iter().min().unwrap();
    (median(samples), min)
}

fn main() {
    mcp_operator::crypto::install_provider();
    let text = corpus();
    let docs = parse_documents("bench.yaml", &text).expect("corpus parses");
    assert_eq!(docs.len(), OBJECTS);

    let (floor, floor_min) = time(|| {
        let d = parse_documents("bench.yaml", &text).unwrap();
        assert_eq!(d.len(), OBJECTS);
    });
    let (ours, ours_min) = time(|| {
        let d = parse_documents("bench.yaml", &text).unwrap();
        let accepted = d
            .iter()
            .filter(|doc| check_document(doc).is_ok_and(|r| r.allowed))
            .count();
        assert_eq!(accepted, OBJECTS, "every benchmark object is valid");
    });

    let dir = tempfile_dir();
    std::fs::write(dir.join("objects.yaml"), &text).unwrap();
    let bin = env!("CARGO_BIN_EXE_mcp-operator");
    let (e2e, e2e_min) = time(|| {
        let o = Command::new(bin)
            .args(["check", "-o", "json"])
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
    });
    std::fs::remove_dir_all(&dir).ok();

    println!(
        "check over {OBJECTS} objects ({} KiB of YAML), median of {ROUNDS} (min):",
        text.len() / 1024
    );
    println!(
        "  floor: parse only              {:>8.1} ms ({:.1})",
        ms(floor),
        ms(floor_min)
    );
    println!(
        "  ours: parse + admit (in proc)  {:>8.1} ms ({:.1})",
        ms(ours),
        ms(ours_min)
    );
    println!(
        "  ours: `mcp-operator check` e2e {:>8.1} ms ({:.1})",
        ms(e2e),
        ms(e2e_min)
    );
    println!(
        "  admission alone: {:.1} µs per object",
        (ms(ours) - ms(floor)) * 1000.0 / OBJECTS as f64
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mcp-operator-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
