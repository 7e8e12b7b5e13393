#!/usr/bin/env bash
# Reproduce: ./run.sh            (BENCHTIME/COUNT overridable via env)
set -euo pipefail
cd "$(dirname "$0")"
BENCHTIME=${BENCHTIME:-2s}
COUNT=${COUNT:-3}
DRIVERS=${DRIVERS:-"mattn modernc ncruces"}
mkdir -p results data
for d in $DRIVERS; do
  # seed (once, reused afterwards) + correctness checks + query plans
  CGO_ENABLED=1 go test -tags "$d" -run 'TestSeed|TestPragmasFailLoudly|TestCreateSemantics|TestRecentEquivalent|TestExplain' -v -count=1 . \
    | tee "results/tests_$d.txt" | grep -E '^(--- |ok|FAIL|PASS)|seed_took' || true
  grep -q '^ok' "results/tests_$d.txt" || { echo "tests failed for $d"; exit 1; }
  CGO_ENABLED=1 go test -tags "$d" -run '^$' -bench . -benchmem -count "$COUNT" -benchtime "$BENCHTIME" -timeout 30m . \
    | tee "results/bench_$d.txt"
done
go run ./cmd/summarize results/bench_*.txt > results/summary.md
cat results/summary.md
