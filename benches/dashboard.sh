#!/usr/bin/env bash
# The dashboard's pages against the JSON list they stand beside, on the embedded SQLite
# default with 10,000 tasks and 100,000 log entries, measured in one run from a second
# process with wrk (2 threads, 32 connections) so that the ratios compare like with like.
#
#   bash benches/dashboard.sh       # builds the release binary first; needs wrk, curl, jq
#
# Prints requests/s, p50 and p99 of GET /api/tasks, the board, the queue, the page of a
# task with 50,000 log entries, and the board's live part, each page's ratio to
# GET /api/tasks, and the live part's latency for 100 boards while tasks arrive.
set -euo pipefail

cd "$(dirname "$0")/.."
cargo build --release -q -p orchestrator-server
BIN="${CARGO_TARGET_DIR:-target}/release/orchestrator-server"
PORT=${PORT:-39300}
URL="http://127.0.0.1:$PORT"
TOKEN=bench-admin-token-0123456789
DATA=$(mktemp -d)
DURATION=${DURATION:-10s}
TASKS=${TASKS:-10000}
LOGS_PER_TASK=${LOGS_PER_TASK:-50000}

RATE_LIMIT_ENABLED=false RUST_LOG=warn "$BIN" --bind "127.0.0.1:$PORT" --data-dir "$DATA" \
    --admin-token "$TOKEN" >/dev/null &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
    curl -sf "$URL/api/health" >/dev/null && break
    sleep 0.1
done

admin() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }

echo "seeding $TASKS tasks"
batch=$(jq -cn '{tasks: [range(50) | {title: "benchmark task \(.)", description: "seeded for the dashboard benchmark", filesHint: ["src/m\(.)/"]}]}')
for _ in $(seq 1 $(( TASKS / 50 ))); do
    admin -X POST -d "$batch" "$URL/api/tasks/batch" >/dev/null
done

# A runner takes two tasks and writes LOGS_PER_TASK entries to each.
connection=$(admin "$URL/api/connect" | jq -r .data.connectionToken | base64 -d)
runner=$(curl -sf -H 'Content-Type: application/json' \
    -d "{\"setupToken\":\"${connection#*|}\",\"name\":\"bench\"}" "$URL/api/connect" |
    jq -r .data.runnerToken)
logs=$(jq -cn '[range(500) | {logType: "INFO", content: "step \(.) of the benchmark transcript, a line of ordinary length"}]')
task_page=""
for _ in 1 2; do
    claim=$(curl -sf -H "Authorization: Bearer $runner" -H 'Content-Type: application/json' \
        -d '{}' "$URL/api/runner/claim")
    lease=$(jq -c '{agentId: .data.agent.id, taskId: .data.task.id, attempt: .data.lease.attempt, leaseToken: .data.lease.leaseToken}' <<<"$claim")
    task_page=$(jq -r .data.task.id <<<"$claim")
    echo "writing $LOGS_PER_TASK log entries to task $task_page"
    body=$(jq -c --argjson logs "$logs" '. + {logs: $logs}' <<<"$lease")
    for _ in $(seq 1 $(( LOGS_PER_TASK / 500 ))); do
        curl -sf -H "Authorization: Bearer $runner" -H 'Content-Type: application/json' \
            -d "$body" "$URL/api/runner/logs" >/dev/null
    done
done

# Loads one route; prints its line and leaves its requests/s in RPS.
run() {
    local name=$1; shift
    wrk -t2 -c"${CONNECTIONS:-32}" -d"$DURATION" --latency "$@" >"$DATA/wrk"
    awk -v name="$name" '/Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
         /Non-2xx/ { errors = $NF }
         END { printf "%-44s %10s req/s  p50 %8s  p99 %8s  non-2xx %s\n", name, rps, p50, p99, errors + 0 }' \
        "$DATA/wrk"
    RPS=$(awk '/Requests\/sec/ { print $2 }' "$DATA/wrk")
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

cookie="Cookie: orchestrator_admin=$TOKEN"
echo
run "GET /api/tasks" -H "Authorization: Bearer $TOKEN" "$URL/api/tasks"; api=$RPS
run "GET / (board)" -H "$cookie" "$URL/"; board=$RPS
run "GET /tasks (queue)" -H "$cookie" "$URL/tasks"; queue=$RPS
run "GET /tasks/:id ($LOGS_PER_TASK log entries)" -H "$cookie" "$URL/tasks/$task_page"; task=$RPS
run "GET /fragments/board (live part)" -H "$cookie" "$URL/fragments/board"; fragment=$RPS

# A hundred boards following the stream while tasks arrive at 20 per second: after each
# commit every board fetches the live part again, so this latency plus the stream's own
# delivery (BENCHMARKS.md, event streams) is how long an event takes to show on them.
( while true; do
    admin -X POST -d '{"title":"arrives while boards watch","description":"d"}' "$URL/api/tasks" >/dev/null
    sleep 0.05
  done ) &
WRITER=$!
CONNECTIONS=100 run "GET /fragments/board, 100 boards, 20 commits/s" -H "$cookie" "$URL/fragments/board"
kill "$WRITER" 2>/dev/null || true
wait "$WRITER" 2>/dev/null || true

echo
echo "board / api:    $(ratio "$board" "$api")   (target >= 0.5)"
echo "queue / api:    $(ratio "$queue" "$api")   (target >= 0.5)"
echo "task page / api: $(ratio "$task" "$api")   (target >= 0.25)"
echo "board part / api: $(ratio "$fragment" "$api")"
