#!/usr/bin/env bash
# ab.sh: one round of BENCHMARKS.md's "PostgreSQL against pgbench": pgbench's
# single-row insert, then CreateMessage through each threads binary given,
# 32 clients each, on the same database.
#
#   psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE threads_bench'
#   psql -h 127.0.0.1 -U postgres -d threads_bench -f benchmarks/pgbench/setup.sql
#   KEY=thr_… benchmarks/pgbench/ab.sh ./threads-new ./threads-old    # the key from the first serve
set -euo pipefail
cd "$(dirname "$0")"
url=${PGURL:-'postgres://postgres@127.0.0.1:5432/threads_bench?sslmode=disable'}
bench=${BENCH:-$1}
echo "pgbench $(pgbench -h 127.0.0.1 -U postgres -n -c 32 -j 2 -T 15 -M prepared -f insert.sql threads_bench 2>&1 |
	grep -E 'tps|latency average' | tr '\n' ' ')"
for bin in "$@"; do
	"$bin" serve --db "$url" --addr 127.0.0.1:18200 --log-level warn >/dev/null 2>&1 &
	pid=$!
	sleep 2
	echo "$bin $("$bench" bench --url http://127.0.0.1:18200 --key "$KEY" --scenario create --clients 32 --duration 15s --json 2>/dev/null |
		jq -c '{rps, p50: .latency_ms.p50, p99: .latency_ms.p99, cpu_ms: .server.cpu_ms_per_request, errors}')"
	kill "$pid"
	wait "$pid" || true
done
