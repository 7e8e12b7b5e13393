#!/usr/bin/env bash
# Build time (cold = empty GOCACHE, includes std; warm = after touching main.go)
# and binary size of cmd/sizeprobe per driver. Also checks CGO_ENABLED=0.
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p results/bin
printf "| Driver | cgo | cold build (s) | no-op rebuild (s) | binary (bytes) | stripped -s -w (bytes) | CGO_ENABLED=0 result |\n|---|---|---:|---:|---:|---:|---|\n"
for d in none mattn modernc ncruces; do
  tags=$d; [ "$d" = none ] && tags=""
  cache=$(mktemp -d /tmp/driverbench-gocache.XXXX)
  s=$(date +%s.%N)
  GOCACHE=$cache CGO_ENABLED=1 go build -tags "$tags" -o results/bin/probe_$d ./cmd/sizeprobe || echo "build failed $d" >&2
  e=$(date +%s.%N); cold=$(echo "$e - $s" | bc)
  touch cmd/sizeprobe/main.go
  s=$(date +%s.%N)
  GOCACHE=$cache CGO_ENABLED=1 go build -tags "$tags" -o results/bin/probe_$d ./cmd/sizeprobe
  e=$(date +%s.%N); warm=$(echo "$e - $s" | bc)
  GOCACHE=$cache CGO_ENABLED=1 go build -tags "$tags" -ldflags="-s -w" -o results/bin/probe_${d}_stripped ./cmd/sizeprobe
  size=$(stat -c %s results/bin/probe_$d); ssize=$(stat -c %s results/bin/probe_${d}_stripped)
  nocgo=$(GOCACHE=$cache CGO_ENABLED=0 go build -tags "$tags" -o results/bin/probe_${d}_nocgo ./cmd/sizeprobe 2>&1 && ./results/bin/probe_${d}_nocgo 2>&1 | head -1 | cut -c1-90 || echo "build failed")
  cgo=no; [ "$d" = mattn ] && cgo=yes; [ "$d" = none ] && cgo=-
  printf "| %s | %s | %.1f | %.1f | %s | %s | %s |\n" "$d" "$cgo" "$cold" "$warm" "$size" "$ssize" "$nocgo"
  rm -rf "$cache"
done
