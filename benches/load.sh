#!/usr/bin/env bash
# The fleet scenarios and the event-stream runs of orchestrator-load against the release
# server, on SQLite and on PostgreSQL, each run on a fresh database; the results replace
# the tables between the load-table and streams-table markers in BENCHMARKS.md.
#
#   bash benches/load.sh                  # both stores
#   STORES=sqlite bash benches/load.sh    # one
#   RUNS=streams bash benches/load.sh     # only the event-stream runs (or RUNS=fleet)
#
# PostgreSQL runs need a server where the user may create databases:
# ORCHESTRATOR_LOAD_POSTGRES (default postgres://postgres@127.0.0.1:5432), with psql.
# Sizes: SHARED_TASKS (default 2000), DISJOINT_TASKS (2000), DEEP_BLOCKED (10000),
# RATE (tasks/s of the open-loop runs, default 100); DEADLINE (seconds a run may take,
# default 300: a run cut short reports its tasks left as lost); STREAM_CLIENTS (event-stream
# clients of each streams run, default "500 2000"), STREAM_RATE (tasks/s, default 20) and
# STREAM_PHASE (seconds per phase, default 60: about 1,200 reads each, so that a p99
# rests on a dozen of them).
set -euo pipefail

cd "$(dirname "$0")/.."
cargo build --release -q -p orchestrator-server -p orchestrator-benches --bin orchestrator-server \
    --bin orchestrator-load
SERVER=target/release/orchestrator-server
LOAD=target/release/orchestrator-load
TOKEN=load-admin-token-0123456789
PORT=${PORT:-39300}
URL="http://127.0.0.1:$PORT"
STORES=${STORES:-"sqlite postgres"}
RUNS=${RUNS:-"fleet streams"}
POSTGRES=${ORCHESTRATOR_LOAD_POSTGRES:-postgres://postgres@127.0.0.1:5432}
SHARED_TASKS=${SHARED_TASKS:-2000}
DISJOINT_TASKS=${DISJOINT_TASKS:-2000}
DEEP_BLOCKED=${DEEP_BLOCKED:-10000}
RATE=${RATE:-100}
DEADLINE=${DEADLINE:-300}
STREAM_CLIENTS=${STREAM_CLIENTS:-"500 2000"}
STREAM_RATE=${STREAM_RATE:-20}
STREAM_PHASE=${STREAM_PHASE:-60}

ROWS=$(mktemp)
STREAM_ROWS=$(mktemp)
DATA=""
DATABASE=""
SERVER_PID=""
trap 'stop_server; rm -f "$ROWS" "$STREAM_ROWS"' EXIT

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
    if [ -n "$DATA" ]; then
        rm -rf "$DATA"
        DATA=""
    fi
    if [ -n "$DATABASE" ]; then
        psql -q "$POSTGRES/postgres" -c "DROP DATABASE IF EXISTS $DATABASE" >/dev/null
        DATABASE=""
    fi
}

# Starts the server on a fresh database of store $1.
start_server() {
    DATA=$(mktemp -d)
    local url="sqlite://$DATA/orchestrator.db"
    if [ "$1" = postgres ]; then
        DATABASE="orchestrator_load_$$_$RANDOM"
        psql -q "$POSTGRES/postgres" -c "CREATE DATABASE $DATABASE" >/dev/null
        url="$POSTGRES/$DATABASE"
    fi
    RATE_LIMIT_ENABLED=false RUST_LOG=warn "$SERVER" --bind "127.0.0.1:$PORT" \
        --data-dir "$DATA" --database-url "$url" --admin-token "$TOKEN" >/dev/null &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -sf "$URL/api/health" >/dev/null && return
        sleep 0.1
    done
    echo "the server did not come up" >&2
    exit 1
}

# One run on a fresh server: the file its row goes to, store $2, then orchestrator-load's
# arguments.
run_load() {
    local rows=$1 store=$2
    shift 2
    start_server "$store"
    echo "$store: $*" >&2
    "$LOAD" --url "$URL" --admin-token "$TOKEN" --deadline-secs "$DEADLINE" --markdown "$store" "$@" \
        | tee -a "$rows" >&2 || true
    stop_server
}

scenario() {
    run_load "$ROWS" "$@"
}

for store in $STORES; do
    case " $RUNS " in *" fleet "*) ;; *) continue ;; esac
    scenario "$store" --scenario shared --runners 1 --tasks "$SHARED_TASKS"
    scenario "$store" --scenario shared --runners 16 --tasks "$SHARED_TASKS"
    scenario "$store" --scenario disjoint --runners 1 --tasks "$DISJOINT_TASKS"
    scenario "$store" --scenario disjoint --runners 16 --tasks "$DISJOINT_TASKS"
    scenario "$store" --scenario mix --runners 16 --tasks "$DISJOINT_TASKS"
    scenario "$store" --scenario disjoint --runners 16 --tasks "$DISJOINT_TASKS" --rate "$RATE"
    scenario "$store" --scenario deep --blocked "$DEEP_BLOCKED" --runners 16 \
        --tasks "$DISJOINT_TASKS" --rate "$RATE"
done
for store in $STORES; do
    case " $RUNS " in *" streams "*) ;; *) continue ;; esac
    for clients in $STREAM_CLIENTS; do
        run_load "$STREAM_ROWS" "$store" --event-streams "$clients" --rate "$STREAM_RATE" \
            --phase-secs "$STREAM_PHASE"
    done
done

# Replaces the table between the $1-table markers in BENCHMARKS.md (or appends one) with
# the header lines $2 and the rows in file $3; no rows leave the table as it is.
write_table() {
    local marker=$1 header=$2 rows=$3 table
    [ -s "$rows" ] || return 0
    table=$(mktemp)
    {
        echo "<!-- $marker-table:begin -->"
        echo "Written by \`bash benches/load.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') at $(git rev-parse --short HEAD)."
        echo
        echo "$header"
        cat "$rows"
        echo "<!-- $marker-table:end -->"
    } >"$table"
    if grep -q "<!-- $marker-table:begin -->" BENCHMARKS.md; then
        awk -v table="$table" -v begin="<!-- $marker-table:begin -->" -v end="<!-- $marker-table:end -->" '
            $0 == begin { while ((getline line < table) > 0) print line; skip = 1; next }
            $0 == end { skip = 0; next }
            !skip { print }
        ' BENCHMARKS.md >BENCHMARKS.md.new
        mv BENCHMARKS.md.new BENCHMARKS.md
    else
        { echo; cat "$table"; } >>BENCHMARKS.md
    fi
    rm -f "$table"
}

write_table load "| Store | Scenario | Runners × slots | Tasks | Cycles/s | Claim from ready p50 / p99 / p99.9 (ms) | Enqueue → claim p99 (ms) | Completion p99 (ms) | Heartbeat p99 (ms) | Errors | Lost | Done twice |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" "$ROWS"
write_table streams "| Store | Clients | Tasks queued | Delivery p50 / p99 (ms) | Read p50 / p99, no clients (ms) | Read p50 / p99, clients connected (ms) | Read slowdown p50 / p99 | Clients per 100 MB | RSS before → after 5 bursts (MiB) | Leaving noticed within (ms) | Errors or missed events |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" "$STREAM_ROWS"
echo "BENCHMARKS.md updated" >&2
