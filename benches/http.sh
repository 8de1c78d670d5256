#!/usr/bin/env bash
# HTTP throughput and memory of orchestrator-server on the embedded SQLite default,
# measured from a second process with wrk (32 connections).
#
#   bash benches/http.sh            # builds the release binary first
#
# Prints requests/s, p50 and p99 per route, and the server's resident memory idle and
# under load. Needs wrk (Debian: apt-get install wrk) and curl.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo build --release -q -p orchestrator-server
BIN=target/release/orchestrator-server
PORT=${PORT:-39200}
URL="http://127.0.0.1:$PORT"
TOKEN=bench-admin-token-0123456789
DATA=$(mktemp -d)
DURATION=${DURATION:-15s}
SEED_TASKS=${SEED_TASKS:-1000}

RATE_LIMIT_ENABLED=false RUST_LOG=warn "$BIN" --bind "127.0.0.1:$PORT" --data-dir "$DATA" \
    --admin-token "$TOKEN" >/dev/null &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT

for _ in $(seq 1 100); do
    curl -sf "$URL/api/health" >/dev/null && break
    sleep 0.1
done

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER/status"; }
sleep 1
echo "idle RSS: $(( $(rss_kib) / 1024 )) MiB (before any data)"

batch=$(printf '{"title":"benchmark task","description":"seeded for the HTTP benchmark","filesHint":["src/lib.rs"]},%.0s' $(seq 1 50))
for _ in $(seq 1 $(( SEED_TASKS / 50 ))); do
    curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"tasks\":[${batch%,}]}" "$URL/api/tasks/batch" >/dev/null
done
sleep 1
echo "idle RSS with $SEED_TASKS tasks: $(( $(rss_kib) / 1024 )) MiB"

POST_SCRIPT=$(mktemp)
cat >"$POST_SCRIPT" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"posted by wrk","description":"load test"}'
LUA

peak=0
watch_rss() {
    while kill -0 "$SERVER" 2>/dev/null; do
        now=$(rss_kib || echo 0)
        [ "$now" -gt "$peak" ] && peak=$now && echo "$peak" >"$DATA/peak"
        sleep 0.2
    done
}
watch_rss &
WATCHER=$!

run() {
    local name=$1; shift
    echo "== $name"
    wrk -t2 -c32 -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$@" |
        awk '/Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
             /Non-2xx/ { errors = $NF } END { printf "   %s req/s, p50 %s, p99 %s, non-2xx %s\n", rps, p50, p99, errors + 0 }'
}

run "GET /api/health" "$URL/api/health"
run "GET /api/tasks" "$URL/api/tasks"
run "GET /api/dashboard/stats" "$URL/api/dashboard/stats"
run "POST /api/tasks" -s "$POST_SCRIPT" "$URL/api/tasks"

# Reads while writes commit: each commit invalidates the cached list, so most reads
# rebuild it. 16 connections read, 16 write, at the same time.
echo "== GET /api/tasks while POST /api/tasks commits (16 + 16 connections)"
wrk -t1 -c16 -d"$DURATION" -H "Authorization: Bearer $TOKEN" -s "$POST_SCRIPT" "$URL/api/tasks" >"$DATA/writes" &
WRITER=$!
wrk -t1 -c16 -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$URL/api/tasks" |
    awk '/Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
         END { printf "   reads: %s req/s, p50 %s, p99 %s\n", rps, p50, p99 }'
wait "$WRITER"
awk '/Requests\/sec/ { printf "   writes: %s req/s\n", $2 }' "$DATA/writes"

kill "$WATCHER" 2>/dev/null || true
echo "peak RSS under load: $(( $(cat "$DATA/peak") / 1024 )) MiB"
rm -f "$POST_SCRIPT"
