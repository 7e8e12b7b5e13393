// Package pgtest gives tests a fresh PostgreSQL store: a new schema in the
// database named by THREADS_TEST_POSTGRES, dropped when the test ends. A
// schema per test is much cheaper than a database per test, and the
// store's migrations and advisory lock are per schema.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/threads-server/threads/internal/postgres"
)

// EnvURL names the database tests may use; EnvRequire, when set, turns a
// missing URL from a skip into a failure (CI sets it).
const (
	EnvURL     = "THREADS_TEST_POSTGRES"
	EnvRequire = "THREADS_TEST_REQUIRE_POSTGRES"
)

// SkipMessage is what a test run without PostgreSQL says.
const SkipMessage = "PostgreSQL tests skipped: set " + EnvURL + "=postgres://postgres@127.0.0.1:5432/postgres to run them"

// Available reports whether a PostgreSQL is configured.
func Available() bool { return os.Getenv(EnvURL) != "" }

// URL returns the configured database URL, or skips (fails, under
// EnvRequire) the test.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("%s is set but %s is not: the PostgreSQL tests must run here", EnvRequire, EnvURL)
		}
		t.Skip(SkipMessage)
	}
	return u
}

// SchemaURL creates an empty schema and returns a URL whose search_path
// is that schema. The schema is dropped when the test ends.
func SchemaURL(t testing.TB) string {
	t.Helper()
	base := URL(t)
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	exec(t, base, `CREATE SCHEMA `+name)
	t.Cleanup(func() { exec(t, base, `DROP SCHEMA `+name+` CASCADE`) })
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + name
}

func exec(t testing.TB, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Open returns a store on a fresh schema, closed when the test ends.
func Open(t testing.TB) *postgres.DB {
	t.Helper()
	return OpenURL(t, SchemaURL(t))
}

// OpenURL opens another store (another "replica") on url.
func OpenURL(t testing.TB, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, postgres.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Report prints, once per package, whether the PostgreSQL tests run:
// call it from TestMain so a skip is visible without -v.
func Report(pkg string) {
	if !Available() {
		fmt.Fprintf(os.Stderr, "%s: %s\n", pkg, SkipMessage)
	}
}
