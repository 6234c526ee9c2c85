#!/usr/bin/env bash
# Bridge benchmark, side by side in one run: `tools/call echo` through
#   - our bridge (`mcp-operator bridge`, streamable HTTP /mcp),
#   - npm supergateway (stdio -> streamable HTTP, --stateful),
#   - PyPI mcp-proxy (stdio -> streamable HTTP),
# each in front of the same stdio server (npm server-everything), and the floor: the same calls
# straight over the server's stdio with no proxy. Concurrency 1 and 8; every reply is checked
# against its own request by the load generator (benches/bridge/loadgen).
#
# Usage: bash benches/bridge/run.sh [SECONDS_PER_CELL]   (default 10)
#        BASELINE_BRIDGE=/path/to/older/mcp-operator bash benches/bridge/run.sh 10
#          adds rows for an older build of the bridge, measured right after ours in the same
#          run (to show a change did not slow the bridge down, free of run-to-run noise).
#        ROUNDS=K repeats ours and the baseline K times, interleaved (ours, baseline, ours, ...),
#          so the spread between rounds shows the noise the comparison has to beat.
#        BRIDGE_BIN=/path/to/mcp-operator measures that binary as "ours" instead of building one.
#        AUTH=0 leaves out the auth cell: ours again with `auth` configured (a JWT checked against
#          a loopback issuer's JWKS on every request, tokens minted by PyJWT, and a set of 20
#          Cedar policies deciding every call), right after ours without auth.
# Output: a Markdown table on stdout; raw JSON lines in benches/out/bridge-results.jsonl.
# Everything listens on 127.0.0.1 only; every process started here is stopped by its pid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECONDS_PER_CELL="${1:-10}"
OUT="$ROOT/benches/out"
mkdir -p "$OUT"
RESULTS="$OUT/bridge-results.jsonl"
: >"$RESULTS"

bash "$ROOT/scripts/install-mcp-peers.sh" >&2
if [[ -z "${BRIDGE_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release --bin mcp-operator >&2)
fi
(cd "$ROOT/benches/bridge/loadgen" && CARGO_TARGET_DIR="$ROOT/target/bridge-loadgen" cargo build --release >&2)
LOADGEN="$ROOT/target/bridge-loadgen/release/bridge-loadgen"
BRIDGE="${BRIDGE_BIN:-$ROOT/target/release/mcp-operator}"
ROUNDS="${ROUNDS:-1}"
TOOLS="$ROOT/.tools"
EV="$TOOLS/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

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

wait_http() { # url: wait until something answers on the port
    for _ in $(seq 1 200); do
        if curl -s -o /dev/null "$1"; then return 0; fi
        sleep 0.1
    done
    echo "nothing answers at $1" >&2
    return 1
}

measure() { # name, then loadgen args after the concurrency
    local name="$1" c="$2"; shift 2
    local line
    line="$("$LOADGEN" "$@")"
    echo "{\"proxy\":\"$name\",\"concurrency\":$c,\"result\":$line}" | tee -a "$RESULTS" >&2
}

run_http_peer() { # name, url, then the command starting it
    local name="$1" url="$2"; shift 2
    setsid "$@" >/dev/null 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_http "$url"
    for c in 1 8; do
        measure "$name" "$c" http "$url" "$c" "$SECONDS_PER_CELL"
    done
    # The peers spawn the server in the same session: stop the whole group we created.
    kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# The floor: no proxy at all.
for c in 1 8; do
    measure "stdio (no proxy)" "$c" stdio "$c" "$SECONDS_PER_CELL" -- node "$EV" stdio
done

# The auth cell's issuer (tests/bridge/issuer.py, tokens minted by PyJWT), its token and the
# bridge config: the caller is in group dev; echo is allowed for dev by the one policy of 20
# that matches.
if [[ "${AUTH:-1}" != 0 ]]; then
    ISSUER_OUT="$OUT/bridge-issuer.out"
    "$TOOLS/venv/bin/python" "$ROOT/tests/bridge/issuer.py" >"$ISSUER_OUT" 2>/dev/null &
    PIDS+=("$!")
    for _ in $(seq 1 100); do [[ -s "$ISSUER_OUT" ]] && break; sleep 0.1; done
    ISSUER="http://127.0.0.1:$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["port"])' "$ISSUER_OUT")"
    export LOADGEN_BEARER
    LOADGEN_BEARER="$(curl -s -X POST "$ISSUER/token" \
        -d '{"claims": {"sub": "bench", "groups": ["dev", "bench"], "exp_in": 86400}}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
    AUTH_CONFIG="$OUT/bridge-auth-config.json"
    python3 - "$ISSUER" >"$AUTH_CONFIG" <<'PY'
import json, sys
policies = ['permit(principal, action == Action::"call_tool", resource == Tool::"echo") '
            'when { principal.claim_groups.contains("dev") };']
for i in range(1, 15):
    policies.append(f'permit(principal, action == Action::"call_tool", resource == Tool::"tool-{i}") '
                    f'when {{ principal.claim_groups.contains("team-{i}") }};')
for i in range(15, 20):
    policies.append(f'forbid(principal, action == Action::"call_tool", resource) '
                    f'when {{ context has arg_message && context.arg_message == "forbidden-{i}" }};')
print(json.dumps({"auth": {
    "oidc": {"issuer": sys.argv[1], "audience": "mcp-test", "allowPrivateIp": True},
    "authz": {"policies": policies, "serverName": "everything"},
}}))
PY
fi

for round in $(seq 1 "$ROUNDS"); do
    suffix=""
    [[ "$ROUNDS" -gt 1 ]] && suffix=", round $round"
    P=$(free_port)
    run_http_peer "mcp-operator bridge$suffix" "http://127.0.0.1:$P/mcp" \
        env RUST_LOG=warn "$BRIDGE" bridge --listen "127.0.0.1:$P" -- node "$EV" stdio

    if [[ "${AUTH:-1}" != 0 ]]; then
        P=$(free_port)
        run_http_peer "mcp-operator bridge + JWT + 20 Cedar policies$suffix" "http://127.0.0.1:$P/mcp" \
            env RUST_LOG=warn "$BRIDGE" bridge --listen "127.0.0.1:$P" \
            --config "$AUTH_CONFIG" -- node "$EV" stdio
    fi

    if [[ -n "${BASELINE_BRIDGE:-}" ]]; then
        P=$(free_port)
        run_http_peer "mcp-operator bridge (baseline build$suffix)" "http://127.0.0.1:$P/mcp" \
            env RUST_LOG=warn "$BASELINE_BRIDGE" bridge --listen "127.0.0.1:$P" -- node "$EV" stdio
    fi
done

P=$(free_port)
run_http_peer "supergateway 4.0.0 --stateful" "http://127.0.0.1:$P/mcp" \
    node "$TOOLS/node/node_modules/supergateway/dist/index.js" --stdio "node $EV stdio" \
    --outputTransport streamableHttp --stateful --port "$P" --logLevel none

P=$(free_port)
run_http_peer "mcp-proxy 0.13.0 (PyPI)" "http://127.0.0.1:$P/mcp" \
    "$TOOLS/venv/bin/mcp-proxy" --host 127.0.0.1 --port "$P" -- node "$EV" stdio

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| proxy | c | req/s | p50 ms | p99 ms | errors |")
print("|---|---|---|---|---|---|")
for r in rows:
    x = r["result"]
    print(f"| {r['proxy']} | {r['concurrency']} | {x['rps']:.0f} | {x['p50_ms']:.3f} | {x['p99_ms']:.3f} | {x['errors']} |")
PY
