#!/usr/bin/env bash
# Second pass: ROUNDS interleaved rounds of -count=1 per driver, rotating the
# driver order each round, so background noise on a shared machine is spread
# across drivers instead of hitting one driver's whole -count=3 block.
set -euo pipefail
cd "$(dirname "$0")"
BENCHTIME=${BENCHTIME:-2s}
ROUNDS=${ROUNDS:-3}
BENCH=${BENCH:-.}          # e.g. BENCH='Newest25|Recent'
OUT=${OUT:-results}        # e.g. OUT=results/readcheck (files: $OUT/bench_<d>.txt)
PREFIX=${PREFIX:-bench2_}  # file prefix inside $OUT
mkdir -p results "$OUT"
for d in mattn modernc ncruces; do CGO_ENABLED=1 go test -c -tags "$d" -o "results/bench_$d.test" .; done
orders=("mattn modernc ncruces" "ncruces mattn modernc" "modernc ncruces mattn")
for r in $(seq 1 "$ROUNDS"); do
  for d in ${orders[$(( (r-1) % 3 ))]}; do
    echo "round $r driver $d start $(date -u +%T) cpu_pressure: $(head -1 /proc/pressure/cpu 2>/dev/null)" | tee -a "$OUT/interleave.log"
    ./results/bench_$d.test -test.run '^$' -test.bench "$BENCH" -test.benchmem -test.count 1 -test.benchtime "$BENCHTIME" -test.timeout 30m \
      | tee -a "$OUT/${PREFIX}$d.txt"
    echo "round $r driver $d end $(date -u +%T) cpu_pressure: $(head -1 /proc/pressure/cpu 2>/dev/null)" | tee -a "$OUT/interleave.log"
  done
done
rm -f results/bench_*.test
go run ./cmd/summarize -wide "$OUT/${PREFIX}"*.txt
