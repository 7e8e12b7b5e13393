package postgres_test

import (
	"os"
	"sync"
	"testing"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/postgres"
	"github.com/threads-server/threads/internal/postgres/pgtest"
	"github.com/threads-server/threads/internal/storetest"
)

func TestMain(m *testing.M) {
	pgtest.Report("internal/postgres")
	os.Exit(m.Run())
}

// TestStore runs the engine-independent behaviour suite, unchanged.
func TestStore(t *testing.T) {
	pgtest.URL(t) // skip (or, in CI, fail) once, not per subtest
	storetest.Run(t, func(t *testing.T) threads.Store { return pgtest.Open(t) })
}

// TestMigrateConcurrentOpen: replicas starting at once on an empty schema
// take turns on the advisory lock; all open, the schema is migrated once.
func TestMigrateConcurrentOpen(t *testing.T) {
	url := pgtest.SchemaURL(t)
	const replicas, migrations = 6, 3
	dbs := make([]*postgres.DB, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { dbs[i] = pgtest.OpenURL(t, url) })
	}
	wg.Wait()
	applied := 0
	for _, db := range dbs {
		if db == nil {
			t.FailNow()
		}
		applied += db.Migrated()
	}
	if applied != migrations {
		t.Errorf("%d migrations applied across %d replicas, want %d (each exactly once)", applied, replicas, migrations)
	}
	v, err := dbs[0].SchemaVersion(t.Context())
	if err != nil || v != migrations {
		t.Errorf("schema version %d, %v; want %d", v, err, migrations)
	}
	again := pgtest.OpenURL(t, url)
	if again.Migrated() != 0 {
		t.Errorf("reopening applied %d migrations, want 0", again.Migrated())
	}
}

// TestPoolSize: 16 connections unless the URL says otherwise.
func TestPoolSize(t *testing.T) {
	url := pgtest.SchemaURL(t)
	if got := pgtest.OpenURL(t, url).Pool().Config().MaxConns; got != 16 {
		t.Errorf("default pool: %d connections, want 16", got)
	}
	if got := pgtest.OpenURL(t, url+"&pool_max_conns=3").Pool().Config().MaxConns; got != 3 {
		t.Errorf("pool_max_conns=3: %d connections, want 3", got)
	}
}

// TestPoolSizeGiven: the default pool size applies unless the connection
// string sets pool_max_conns or names a service, whichever its form; the
// words elsewhere in it (a password, a database name) do not count.
func TestPoolSizeGiven(t *testing.T) {
	t.Setenv("PGSERVICE", "")
	for _, tt := range []struct {
		conn string
		want bool
	}{
		{"postgres://u@h/db", false},
		{"postgres://u@h/db?sslmode=disable&pool_max_conns=3", true},
		{"postgresql://u@h/db?pool_max_conns=3", true},
		{"postgres://u:pool_max_conns@h/pool_max_conns?application_name=pool_max_conns", false},
		{"postgres://u@h/db?service=threads", true},
		{"host=h user=u pool_max_conns=3", true},
		{"host=h user=u dbname=pool_max_conns", false},
		{"service=threads", true},
	} {
		if got := postgres.PoolSizeGiven(tt.conn); got != tt.want {
			t.Errorf("PoolSizeGiven(%q) = %v, want %v", tt.conn, got, tt.want)
		}
	}
	t.Setenv("PGSERVICE", "threads")
	if !postgres.PoolSizeGiven("postgres://u@h/db") {
		t.Error("with PGSERVICE set, the service's settings must stand")
	}
}
