package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// TestMigrateOutwaitsStatementTimeout: a replica that waits for another's
// migration longer than the statement timeout still starts, and its pool
// keeps the timeout for API calls afterwards.
func TestMigrateOutwaitsStatementTimeout(t *testing.T) {
	url := pgtest.SchemaURL(t) + "&statement_timeout=200"
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	// Another replica in the middle of a migration.
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock(hashtext('threads.migrate.' || current_schema()))`); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		// Hold the lock for several statement timeouts: the time passing
		// is what the test is about, there is no condition to wait for.
		time.Sleep(time.Second)
		holder.Exec(ctx, `SELECT pg_advisory_unlock(hashtext('threads.migrate.' || current_schema()))`)
	}()
	db := pgtest.OpenURL(t, url) // fails the test if the wait was cut short
	<-released
	var timeout string
	c, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if err := c.QueryRow(ctx, `SHOW statement_timeout`).Scan(&timeout); err != nil || timeout != "200ms" {
		t.Fatalf("statement_timeout after migrating = %q (%v), want the URL's 200ms", timeout, err)
	}
}
