#!/usr/bin/env bash
# Incremental rebuild time of cmd/sizeprobe after a one-line change in main (warm GOCACHE), median of 3.
cd "$(dirname "$0")"
for d in none mattn modernc ncruces; do
  tags=$d; [ "$d" = none ] && tags=""
  go build -tags "$tags" -o /dev/null ./cmd/sizeprobe  # ensure deps cached
  ts=()
  for i in 1 2 3; do
    echo "package main; var stamp = \"$RANDOM$i\"" > cmd/sizeprobe/stamp.go
    s=$(date +%s.%N); go build -tags "$tags" -o /dev/null ./cmd/sizeprobe; e=$(date +%s.%N)
    ts+=($(echo "$e - $s" | bc))
  done
  rm -f cmd/sizeprobe/stamp.go
  echo "$d warm-rebuild seconds: ${ts[*]}"
done
