package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations, numbered 1, 2, 3, … in order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []migration
	for i, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want number %04d", base, i+1)
		}
		b, err := migrationFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	return out, nil
}

// Migrate applies pending migrations. Replicas starting at once take turns
// on a session advisory lock (keyed by the schema, so databases and test
// schemas do not wait for each other); each migration runs in its own
// transaction with its version row. A schema newer than this binary is
// refused.
func (db *DB) Migrate(ctx context.Context) (applied int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: %w", mapErr(err))
	}
	defer conn.Release()
	// Waiting for another replica's migration, or a long migration (an
	// index on a big table), may take longer than the statement timeout
	// meant for API calls: lift it on this connection while migrating.
	if _, err := conn.Exec(ctx, `SET statement_timeout = 0`); err != nil {
		return 0, fmt.Errorf("postgres: %w", mapErr(err))
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('threads.migrate.' || current_schema()))`); err != nil {
		return 0, fmt.Errorf("postgres: migration lock: %w", err)
	}
	// Unlock and reset before the connection goes back to the pool; if
	// either fails, close the session, which ends its lock and setting,
	// rather than pool a connection that holds the lock for good.
	defer func() {
		ctx := context.WithoutCancel(ctx)
		_, unlock := conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext('threads.migrate.' || current_schema()))`)
		_, reset := conn.Exec(ctx, `RESET statement_timeout`)
		if unlock != nil || reset != nil {
			conn.Conn().Close(ctx)
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`); err != nil {
		return 0, fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, fmt.Errorf("postgres: read schema version: %w", err)
	}
	if current > len(ms) {
		return 0, fmt.Errorf("postgres: database schema version %d is newer than this binary (%d): upgrade threads", current, len(ms))
	}
	for _, m := range ms[current:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, `+nowMicros+`)`, m.version, m.name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("postgres: migration %s: %w", m.name, err)
		}
		applied++
	}
	return applied, nil
}

// SchemaVersion returns the highest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, mapErr(err)
}
