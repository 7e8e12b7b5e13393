// Package apitest is what the API, PostgreSQL and CLI tests share: a real
// server on port 0 over a given store, as serve runs it; a client for the
// m3o JSON routes and the event stream; the m3o wire structs; the check
// that an error answer is exactly the go-micro envelope; and polling, so
// that no test sleeps while it waits for a condition.
//
// It is test support: only _test.go files may import it (a test of this
// package checks that).
package apitest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/postgres/pgtest"
	"github.com/threads-server/threads/internal/sqlite"
)

// EnvEngine chooses the engine OpenStore opens: "sqlite" (the default) or
// "postgres" (which needs pgtest.EnvURL).
const EnvEngine = "THREADS_TEST_ENGINE"

// OpenStore returns a fresh, empty store for one test, closed when the
// test ends, on the engine EnvEngine names. It is the one place that
// chooses the engine, so a suite built on it runs unchanged on each.
func OpenStore(t testing.TB) threads.Store {
	t.Helper()
	switch engine := os.Getenv(EnvEngine); engine {
	case "", "sqlite":
	case "postgres":
		return pgtest.Open(t)
	default:
		t.Fatalf("%s=%q: want sqlite or postgres", EnvEngine, engine)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "threads.db"),
		sqlite.Options{Synchronous: "NORMAL", Logger: QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// QuietLogger discards everything: tests check answers, not logs.
func QuietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
