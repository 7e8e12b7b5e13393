package sqlite_test

import (
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threads-server/threads/internal/sqlite"
)

// migrationFiles counts the migrations shipped in the source tree.
func migrationFiles(t *testing.T) int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations found (%v)", err)
	}
	return len(names)
}

// rawDB opens the file with the driver alone, bypassing the store, and
// closes it when the test ends.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type migrationRow struct {
	Version   int
	Name      string
	AppliedAt int64
}

func migrationRows(t *testing.T, path string) []migrationRow {
	t.Helper()
	rows, err := rawDB(t, path).Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.Version, &r.Name, &r.AppliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func open(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return db
}

func TestMigrateFresh(t *testing.T) {
	t.Parallel()
	want := migrationFiles(t)
	path := filepath.Join(t.TempDir(), "threads.db")
	db := open(t, path)
	defer db.Close()
	if got := db.Migrated(); got != want {
		t.Errorf("Migrated = %d, want %d", got, want)
	}
	v, err := db.SchemaVersion(t.Context())
	if err != nil {
		t.Fatalf("SchemaVersion: %v", err)
	}
	if v != want {
		t.Errorf("SchemaVersion = %d, want %d (one per migration file)", v, want)
	}
	rows := migrationRows(t, path)
	if len(rows) != want {
		t.Fatalf("schema_migrations has %d rows, want %d", len(rows), want)
	}
	for i, r := range rows {
		if r.Version != i+1 || !strings.HasSuffix(r.Name, ".sql") || r.AppliedAt <= 0 {
			t.Errorf("schema_migrations row %d = %+v", i, r)
		}
	}
	n, err := db.Migrate(t.Context())
	if err != nil || n != 0 {
		t.Errorf("Migrate on a migrated database = %d, %v; want 0, nil", n, err)
	}
}

func TestMigrateReopen(t *testing.T) {
	t.Parallel()
	want := migrationFiles(t)
	path := filepath.Join(t.TempDir(), "threads.db")
	open(t, path).Close()
	before := migrationRows(t, path)

	db := open(t, path)
	defer db.Close()
	if got := db.Migrated(); got != 0 {
		t.Errorf("reopening applied %d migrations, want 0", got)
	}
	if d := cmp.Diff(before, migrationRows(t, path)); d != "" {
		t.Errorf("reopening changed schema_migrations (-before +after):\n%s", d)
	}
	n, err := db.Migrate(t.Context())
	if err != nil || n != 0 {
		t.Errorf("Migrate after reopen = %d, %v; want 0, nil", n, err)
	}
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != want {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, want)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	known := migrationFiles(t)
	path := filepath.Join(t.TempDir(), "threads.db")
	open(t, path).Close()
	raw := rawDB(t, path)
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future.sql', 1)`, known+1); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded on a database newer than the binary")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open error %q does not say the database is newer", err)
	}
}

// TestMigrateConcurrentOpen starts several stores at once on one file with
// pending migrations, as several processes of a new version may: each must
// come up, and each migration must be applied once.
func TestMigrateConcurrentOpen(t *testing.T) {
	t.Parallel()
	want := migrationFiles(t)
	path := filepath.Join(t.TempDir(), "threads.db")
	// An existing WAL database that has not seen any migration yet.
	raw := rawDB(t, path)
	if _, err := raw.Exec(`PRAGMA journal_mode = WAL`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	applied := make([]int, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
			if err == nil {
				applied[i] = db.Migrated()
				err = db.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Open: %v", err)
	}
	total := 0
	for _, k := range applied {
		total += k
	}
	if total != want {
		t.Errorf("the opens applied %v migrations, %d in all; want %d in all", applied, total, want)
	}
	if rows := migrationRows(t, path); len(rows) != want {
		t.Errorf("schema_migrations has %d rows, want %d", len(rows), want)
	}
}

func TestOpenCreatesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "new", "dir", "threads.db")
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("before Open: Stat = %v, want not exist", err)
	}
	db := open(t, path)
	defer db.Close()
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("after Open: Stat = %v, %v; want a regular file", fi, err)
	}
	if err := db.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestOpenUsesWAL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "threads.db")
	open(t, path).Close()
	// journal_mode=wal is stored in the file: a plain connection sees it.
	var mode string
	if err := rawDB(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestOpenRefusesBadOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		path string
		opt  sqlite.Options
	}{
		{"empty path", "", sqlite.Options{}},
		{"memory", ":memory:", sqlite.Options{}},
		{"synchronous", filepath.Join(dir, "a.db"), sqlite.Options{Synchronous: "sometimes"}},
	} {
		if db, err := sqlite.Open(t.Context(), tt.path, tt.opt); err == nil {
			db.Close()
			t.Errorf("%s: Open succeeded, want an error", tt.name)
		}
	}
}
