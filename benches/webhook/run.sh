#!/usr/bin/env bash
# Throughput and latency of the admission webhooks over TLS with keep-alive, side by side with a
# floor: a route on the same server stack that decodes the review and answers `allowed` without
# doing any admission work. Prints a Markdown table for benches/README.md.
#
#   benches/webhook/run.sh                 # 10 s per run, concurrency 1, 4, 64
#   DURATION=30s CONCURRENCY="1 4 16 64" benches/webhook/run.sh
#   SERVER_CPUS=0 CLIENT_CPUS=1 benches/webhook/run.sh   # server and wrk on separate cores
#
# Needs: cargo, curl, and wrk (installed with apt-get when missing). Builds the release binary
# once; BIN=/path/to/mcp-operator skips the build.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-"1 4 64"}
PORT=${PORT:-19443}
METRICS_PORT=${METRICS_PORT:-19080}
# Optional CPU pinning (taskset lists): keeps wrk from stealing the server's core, so the
# latency columns measure the server rather than the scheduler.
SERVER_CPUS=${SERVER_CPUS:-}
CLIENT_CPUS=${CLIENT_CPUS:-}
# `exec` so that a backgrounded server's $! is the server itself (its RSS is sampled below).
pin() { local cpus=$1; shift; if [ -n "$cpus" ]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi; }

if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  if ! apt-get install -y wrk >/dev/null 2>&1; then
    apt-get update >/dev/null && apt-get install -y wrk >/dev/null
  fi
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin mcp-operator >&2)
  BIN="$ROOT/target/release/mcp-operator"
fi

WORK=$(mktemp -d)
SERVER_PID=""
SAMPLER_PID=""
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" certs --dns-name localhost --dns-name 127.0.0.1 --out "$WORK/certs" >/dev/null
(pin "$SERVER_CPUS" "$BIN" webhook --cert-dir "$WORK/certs" --listen "127.0.0.1:$PORT" \
  --metrics-listen "127.0.0.1:$METRICS_PORT" --benchmark-floor --shutdown-delay 0 \
  --log-format json) 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
sleep 1
RSS_REST=$(rss_kib)

# Highest RSS seen while the load runs, sampled every 100 ms.
( max=0; while kill -0 "$SERVER_PID" 2>/dev/null; do
    r=$(rss_kib 2>/dev/null || echo 0); [ "${r:-0}" -gt "$max" ] && max=$r && echo "$max" >"$WORK/rss_max"
    sleep 0.1
  done ) &
SAMPLER_PID=$!

export REVIEW="$HERE/review.json"
BYTES=$(wc -c <"$REVIEW")
URL="https://127.0.0.1:$PORT"
declare -A PATHS=(
  [floor]=/benchmark-floor
  [validate]=/validate-toolhive-stacklok-dev-v1beta1-mcpserver
  [mutate]=/mutate-toolhive-stacklok-dev-v1beta1-mcpserver
)

# Warm up connections, allocator and caches.
(pin "$CLIENT_CPUS" wrk -t2 -c4 -d2s -s "$HERE/post.lua" "$URL${PATHS[validate]}") >/dev/null

echo "| endpoint | concurrency | requests/s | p50 (ms) | p99 (ms) | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for c in $CONCURRENCY; do
  threads=$(( c < 2 ? 1 : 2 ))
  for endpoint in floor validate mutate; do
    line=$( (pin "$CLIENT_CPUS" wrk -t"$threads" -c"$c" -d"$DURATION" -s "$HERE/post.lua" "$URL${PATHS[$endpoint]}") | grep '^RESULT')
    read -r _ rps p50 p99 errors non2xx <<<"$line"
    awk -v e="$endpoint" -v c="$c" -v r="$rps" -v p50="$p50" -v p99="$p99" -v err=$((errors + non2xx)) \
      'BEGIN { printf "| %s | %d | %d | %.3f | %.3f | %d |\n", e, c, r, p50 / 1000, p99 / 1000, err }'
  done
done

RSS_LOAD=$(cat "$WORK/rss_max" 2>/dev/null || echo "?")
HWM=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
echo
echo "Review body: $BYTES bytes. RSS at rest: $((RSS_REST / 1024)) MiB; highest RSS sampled under load: $((RSS_LOAD / 1024)) MiB (VmHWM $((HWM / 1024)) MiB)."
echo "Pinning: server on CPUs '${SERVER_CPUS:-any}', wrk on CPUs '${CLIENT_CPUS:-any}'."
echo "Machine: $(nproc) cores, $(uname -sr); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'); load average before the run: $LOAD_BEFORE."
