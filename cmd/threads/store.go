package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/postgres"
	"github.com/threads-server/threads/internal/sqlite"
)

// dbFlags are the database flags every command shares.
type dbFlags struct {
	db         string
	sqliteSync string
	// eventRetention is the store's event retention (serve's
	// --event-retention): its maintenance purges older events. Zero, for
	// the other commands, purges none.
	eventRetention time.Duration
}

func (f *dbFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.db, "db", env("db", "threads.db"),
		"database: a SQLite file path, sqlite:PATH, or a postgres:// URL (env THREADS_DB)")
	fs.StringVar(&f.sqliteSync, "sqlite-synchronous", env("sqlite-synchronous", "FULL"),
		"SQLite synchronous pragma: FULL (a 200 survives power loss) or NORMAL (survives a crash of the process) (env THREADS_SQLITE_SYNCHRONOUS)")
}

// display is the database for logs and errors: a URL with its password
// replaced by "xxxxx", so credentials never reach a log.
func (f *dbFlags) display() string {
	if u, err := url.Parse(f.db); err == nil && u.User != nil {
		return u.Redacted()
	}
	return f.db
}

// store is what the commands need beyond threads.Store.
type store interface {
	threads.Store
	Migrated() int
	SchemaVersion(ctx context.Context) (int, error)
}

// open opens the configured database and applies pending migrations.
func (f *dbFlags) open(ctx context.Context, log *slog.Logger) (store, error) {
	dsn := f.db
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn, postgres.Options{Logger: log, EventRetention: f.eventRetention})
	case strings.HasPrefix(dsn, "sqlite:"):
		dsn = strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("--db: unknown database URL scheme in %q", f.display())
	}
	return sqlite.Open(ctx, dsn, sqlite.Options{Synchronous: strings.ToUpper(f.sqliteSync), Logger: log, EventRetention: f.eventRetention})
}
