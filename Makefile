# Everyday commands. The README's two commands need none of these; they
# are shorthands for developers.

.PHONY: run test generate fuzz ci build corpus bench

run:
	go run ./cmd/threads serve

test:
	go test -race ./...

build:
	go build -o bin/threads ./cmd/threads

# Regenerate internal/gen from proto/ with the tools pinned in go.mod.
generate:
	go tool buf lint
	go tool buf generate

# Fuzz one target for a while: make fuzz TARGET=FuzzCreateMessage TIME=1m
TARGET ?= FuzzCreateMessage
TIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz '^$(TARGET)$$' -fuzztime $(TIME) ./internal/server

ci:
	bash .ci/run

# The store and JSON-path benchmarks (BENCHMARKS.md), benchstat-friendly:
# make bench > new.txt. The HTTP figures come from threads bench against a
# running server; benchmarks/http.sh runs them until medians of three.
bench:
	go test -run '^$$' -bench . -benchmem -count 3 ./internal/sqlite ./internal/server

# Keep what fuzzing found: copy the fuzz cache's corpus (small inputs, up
# to 60 a target) into each package's testdata/fuzz, where plain
# `go test` runs it as seeds on every run.
corpus:
	@gc=$$(go env GOCACHE)/fuzz/github.com/threads-server/threads; \
	for t in $$gc/Fuzz* $$gc/internal/*/Fuzz*; do \
	  rel=$${t#$$gc/}; pkg=$$(dirname $$rel); [ "$$pkg" = "." ] && pkg=""; \
	  dest="./$${pkg:+$$pkg/}testdata/fuzz/$$(basename $$t)"; mkdir -p "$$dest"; \
	  for f in $$(ls -S -r $$t | head -60); do [ $$(stat -c %s $$t/$$f) -lt 4096 ] && cp $$t/$$f $$dest/; done; \
	done; true
