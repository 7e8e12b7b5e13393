#!/usr/bin/env bash
# http.sh runs threads bench against a running server, scenario by
# scenario, until each (scenario, clients) pair has RUNS quiet runs, and
# prints the medians with the ratio to the floor (BENCHMARKS.md).
#
#   benchmarks/http.sh URL KEY SERVER_PID OUT_DIR [scenario:clients[:extra flags]] ...
#
# e.g.
#   benchmarks/http.sh http://127.0.0.1:18100 "$KEY" "$(pgrep -f 'threads serve')" /tmp/runs \
#     create:16 create:64 list:16:--messages=1000000 list:16:--messages=1000000:--deep
#
# A run is quiet when the rest of the machine (all CPU time in /proc/stat
# minus the server's and the generator's own) used under QUIET percent
# (default 5) of it; noisy runs are kept in OUT_DIR but not counted.
# Environment: THREADS (the binary, default threads on PATH), RUNS
# (default 3), MAX_TRIES (default 6 per pair), DURATION (default 10s).
set -euo pipefail

url=$1 key=$2 spid=$3 out=$4
shift 4
bin=${THREADS:-threads}
runs=${RUNS:-3}
tries=${MAX_TRIES:-6}
quiet=${QUIET:-5}
duration=${DURATION:-10s}
hz=$(getconf CLK_TCK)
cores=$(nproc)
mkdir -p "$out"

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
pcpu() { awk '{print $14+$15}' "/proc/$1/stat"; }

for spec in "$@"; do
	IFS=: read -r sc clients extra <<<"$spec"
	name="$sc-$clients${extra:+-$(tr -c 'a-z0-9' _ <<<"$extra" | tr -s _)}"
	good=0
	for try in $(seq 1 "$tries"); do
		[ "$good" -ge "$runs" ] && break
		b0=$(busy) s0=$(pcpu "$spid") t0=$(date +%s.%N)
		# shellcheck disable=SC2086 # extra holds flags, one per colon
		/usr/bin/time -f '%U %S' -o "$out/$name.$try.time" \
			"$bin" bench --url "$url" --key "$key" --scenario "$sc" --clients "$clients" \
			--duration "$duration" --floor --json ${extra//:/ } >"$out/$name.$try.json"
		b1=$(busy) s1=$(pcpu "$spid") t1=$(date +%s.%N)
		read -r gu gs <"$out/$name.$try.time"
		rest=$(awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" -v g="$gu" -v gs="$gs" -v hz="$hz" \
			-v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" -v n="$cores" \
			'BEGIN{printf "%.1f", 100 * ((b - s) / hz - g - gs) / (t * n)}')
		jq -c --arg rest "$rest" '{scenario, clients, rps, p50: .latency_ms.p50, p99: .latency_ms.p99,
			max: .latency_ms.max, floor: .floor.rps, ratio: .floor.ratio,
			cpu_ms: .server.cpu_ms_per_request, errors, rest_pct: ($rest | tonumber)}' \
			"$out/$name.$try.json" | tee -a "$out/$name.runs"
		if awk -v r="$rest" -v q="$quiet" 'BEGIN{exit !(r < q)}'; then
			good=$((good + 1))
			cp "$out/$name.$try.json" "$out/$name.quiet$good.json"
		fi
	done
done

echo
echo "| run | quiet runs | req/s | p50 | p99 | max | floor req/s | ratio | server CPU ms/request |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for spec in "$@"; do
	IFS=: read -r sc clients extra <<<"$spec"
	name="$sc-$clients${extra:+-$(tr -c 'a-z0-9' _ <<<"$extra" | tr -s _)}"
	compgen -G "$out/$name.quiet*.json" >/dev/null || { echo "| $name | 0 | | | | | | | |"; continue; }
	jq -s -r --arg name "$name" '
		def med(f): (map(f) | sort) as $v | $v[(($v | length) - 1) / 2 | floor];
		"| \($name) | \(length) | \(med(.rps) | round) [\(map(.rps) | min | round)–\(map(.rps) | max | round)] | \(med(.latency_ms.p50) * 100 | round / 100) | \(med(.latency_ms.p99) * 100 | round / 100) | \(med(.latency_ms.max) * 10 | round / 10) | \(med(.floor.rps) | round) | **\(med(.floor.ratio) * 1000 | round / 1000)** [\(map(.floor.ratio) | min * 1000 | round / 1000)–\(map(.floor.ratio) | max * 1000 | round / 1000)] | \(med(.server.cpu_ms_per_request) * 1000 | round / 1000) |"' \
		"$out/$name".quiet*.json
done
