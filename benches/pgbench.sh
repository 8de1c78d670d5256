#!/usr/bin/env bash
# Measures PostgreSQL's own transaction rate on this machine (pgbench, simple-update
# workload without branch updates, -N), for comparison with the claim-complete bench:
# one client against one runner, eight against eight runners.
# Uses a scratch database that it creates and drops.
set -euo pipefail
host="${PGHOST:-127.0.0.1}"
user="${PGUSER:-postgres}"
db=orchestrator_pgbench
psql -h "$host" -U "$user" -d postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql -h "$host" -U "$user" -d postgres -qc "DROP DATABASE IF EXISTS $db"' EXIT
pgbench -h "$host" -U "$user" -i -s 10 -q "$db" >/dev/null 2>&1
for clients in 1 8 16; do
    echo "pgbench -N -c $clients -j 2 -T 20:"
    pgbench -h "$host" -U "$user" -N -c "$clients" -j 2 -T 20 "$db" 2>/dev/null | grep -E "^(tps|latency average)"
done
