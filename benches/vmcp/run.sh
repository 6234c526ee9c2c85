#!/usr/bin/env bash
# vmcp benchmark: `tools/call echo` through the aggregator (`mcp-operator vmcp`, one backend)
# against the floor, the same calls straight to that backend (`mcp-operator bridge` in front of
# npm server-everything over stdio). Concurrency 1 and 8, measured by the bridge's load
# generator (benches/bridge/loadgen), which checks every reply against its own request.
#
# Usage: bash benches/vmcp/run.sh [SECONDS_PER_CELL]   (default 10)
#        BIN=/path/to/mcp-operator measures that binary instead of building one.
#        CARGO_TARGET_DIR is honoured for both builds (release).
# Output: a Markdown table on stdout; raw JSON lines in benches/out/vmcp-results.jsonl.
# Everything listens on 127.0.0.1 only; every process started here is stopped by its pid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECONDS_PER_CELL="${1:-10}"
OUT="$ROOT/benches/out"
mkdir -p "$OUT"
RESULTS="$OUT/vmcp-results.jsonl"
: >"$RESULTS"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

if [[ -z "${BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release --locked --bin mcp-operator >&2)
fi
(cd "$ROOT/benches/bridge/loadgen" && CARGO_TARGET_DIR="$TARGET/bridge-loadgen" cargo build --release >&2)
LOADGEN="$TARGET/bridge-loadgen/release/bridge-loadgen"
BIN="${BIN:-$TARGET/release/mcp-operator}"
EV="$ROOT/.tools/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url: wait until it answers 200
    for _ in $(seq 1 200); do
        if curl -sf -o /dev/null "$1"; then return 0; fi
        sleep 0.1
    done
    echo "nothing answers at $1" >&2
    return 1
}

measure() { # name, concurrency, url
    local line
    line="$("$LOADGEN" http "$3" "$2" "$SECONDS_PER_CELL")"
    echo "{\"path\":\"$1\",\"concurrency\":$2,\"result\":$line}" | tee -a "$RESULTS" >&2
}

# The backend: the bridge in front of server-everything (what an MCPServer member runs).
BP=$(free_port)
env RUST_LOG=warn "$BIN" bridge --listen "127.0.0.1:$BP" -- node "$EV" stdio >/dev/null 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$BP/ready"

# The aggregator over it; prefixOnlyConflicts keeps `echo` its name (one backend, no clash).
CONFIG="$OUT/vmcp-bench-config.json"
cat >"$CONFIG" <<EOF
{"name": "bench", "backends": [{"name": "everything", "url": "http://127.0.0.1:$BP/mcp"}],
 "aggregation": {"conflictResolution": "prefix", "prefixOnlyConflicts": true}}
EOF
VP=$(free_port)
env RUST_LOG=warn "$BIN" vmcp --config "$CONFIG" --listen "127.0.0.1:$VP" \
    --insecure-allow-loopback-backends >/dev/null 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$VP/health"

for c in 1 8; do
    measure "straight to the backend's bridge (floor)" "$c" "http://127.0.0.1:$BP/mcp"
    measure "through mcp-operator vmcp" "$c" "http://127.0.0.1:$VP/mcp"
done

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| path | c | req/s | p50 ms | p99 ms | errors |")
print("|---|---|---|---|---|---|")
for r in rows:
    x = r["result"]
    print(f"| {r['path']} | {r['concurrency']} | {x['rps']:.0f} | {x['p50_ms']:.3f} | {x['p99_ms']:.3f} | {x['errors']} |")
floor = {r["concurrency"]: r["result"] for r in rows if "floor" in r["path"]}
for r in rows:
    if "vmcp" in r["path"]:
        c, x = r["concurrency"], r["result"]
        f = floor[c]
        print(f"\nc={c}: vmcp {100 * x['rps'] / f['rps']:.0f} % of the floor's throughput, "
              f"p99 added {x['p99_ms'] - f['p99_ms']:.3f} ms, p50 added {x['p50_ms'] - f['p50_ms']:.3f} ms")
PY
