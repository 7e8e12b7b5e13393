# Everyday commands. The README's two commands need none of these; they
# are shorthands for developers.

.PHONY: run test generate fuzz ci build

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
