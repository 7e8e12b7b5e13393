// Package postgres is the store for deployments that outgrow one file: a
// PostgreSQL database shared by any number of threads replicas, through
// pgx's connection pool. Ordering and idempotency hold across replicas
// because they rest on the database (a row lock per conversation, a unique
// index per client id, the database's clock), not on any one process.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/maintain"
)

// Options tune the engine; the zero value is the documented default.
type Options struct {
	// Logger receives background errors (the fan-out's, the
	// maintenance's).
	Logger *slog.Logger
	// EventRetention is how long events stay in the log: the store's
	// maintenance purges those older than this plus an hour
	// (threads.EventsExpireBefore) at Open and every 10 minutes. Zero
	// purges none: threads serve sets it (--event-retention), and the
	// commands that open the database for a moment (keys, migrate) do not,
	// so they never purge by a retention of their own.
	EventRetention time.Duration
}

// DB is a threads.Store on PostgreSQL.
type DB struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	cancel context.CancelFunc // the fan-out's goroutines
	wg     sync.WaitGroup
	fan    fanout
	finals finals
	maint  maintain.Maintenance // background work; see maintenance.go

	migrated int
}

var _ threads.Store = (*DB)(nil)

// Defaults applied when the URL does not set them (see docs/postgres.md).
const (
	defaultConnectTimeout   = 3 * time.Second
	defaultStatementTimeout = "10s"
	// defaultMaxConns replaces pgx's default pool size, max(4, CPUs): a
	// CreateMessage holds its connection while PostgreSQL flushes the WAL
	// at commit, and PostgreSQL flushes the commits that are waiting
	// together, so more connections in flight means more commits per
	// flush. 32 clients on 2 cores: 3,500 messages/s with 4 connections,
	// 4,600 with 16 (BENCHMARKS.md). pool_max_conns in the URL overrides it.
	defaultMaxConns = 16
)

// Open connects to the database at url, applies pending migrations (under
// an advisory lock, so replicas starting together take turns), and starts
// the event fan-out and the background maintenance (maintenance.go).
func Open(ctx context.Context, url string, opt Options) (*DB, error) {
	return open(ctx, url, opt, nil)
}

// open is Open with the tests' hooks into the maintenance.
func open(ctx context.Context, url string, opt Options, hooks *maintenanceHooks) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = defaultStatementTimeout
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "threads"
	if !poolSizeGiven(url) {
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	logger := opt.Logger
	if logger == nil {
		logger = slog.Default()
	}
	bg, cancel := context.WithCancel(context.Background())
	db := &DB{pool: pool, log: logger, cancel: cancel}
	db.maint.Init(hooks)
	if db.migrated, err = db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.startEvents(ctx, bg); err != nil {
		db.Close()
		return nil, err
	}
	db.startMaintenance(opt.EventRetention, logger)
	return db, nil
}

// startEvents starts the fan-out of events across replicas: the notifier,
// and the listener, whose first connection is made here so that once Open
// returns, this replica hears every other one's commits. If that first
// connection fails, the listener keeps trying in the background.
func (db *DB) startEvents(ctx, bg context.Context) error {
	var schema string
	if err := db.pool.QueryRow(ctx, `SELECT COALESCE(current_schema(), '')`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres: %w", mapErr(err))
	}
	db.finals.schema = schema
	db.fan.channel = channelFor(schema)
	db.fan.pending = map[string]int64{}
	db.fan.wake = make(chan struct{}, 1)
	conn, err := db.connectListener(ctx)
	if err != nil {
		db.log.Warn("event listener cannot connect; retrying in the background", "err", err)
	}
	db.wg.Add(2)
	go func() {
		defer db.wg.Done()
		db.listen(bg, conn)
	}()
	go func() {
		defer db.wg.Done()
		db.notify(bg)
	}()
	return nil
}

// Migrated returns how many migrations Open applied.
func (db *DB) Migrated() int { return db.migrated }

// Close stops the background maintenance and the event fan-out, waits
// for both, and closes the pool.
func (db *DB) Close() error {
	db.maint.Stop()
	db.cancel()
	db.wg.Wait()
	db.pool.Close()
	return nil
}

// Ping checks that the database answers a query.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return threads.Unavailable(err)
	}
	return nil
}

// nowMicros is the database's clock in unix microseconds. Every replica
// stamps with the same clock, so created_at and sent_at do not depend on
// which replica took the request.
const nowMicros = `(extract(epoch from clock_timestamp()) * 1000000)::bigint`

// tx runs fn in one transaction.
func (db *DB) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return mapErr(pgx.BeginFunc(ctx, db.pool, fn))
}

// poolSizeGiven reports whether the connection string sets
// pool_max_conns, as a URL parameter or a keyword=value pair, or names a
// pg service (whose file may set it): then pgx's parse of it stands.
func poolSizeGiven(conn string) bool {
	if os.Getenv("PGSERVICE") != "" {
		return true
	}
	if u, err := neturl.Parse(conn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		return q.Has("pool_max_conns") || q.Has("service")
	}
	for _, f := range strings.Fields(conn) {
		if k, _, _ := strings.Cut(f, "="); k == "pool_max_conns" || k == "service" {
			return true
		}
	}
	return false
}

// mapErr turns pgx errors into domain errors. Anything that means "the
// database cannot be reached or cannot answer now" is UNAVAILABLE, so
// clients retry (safely: message ids make CreateMessage idempotent).
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var te *threads.Error
	if errors.As(err, &te) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return &threads.Error{Code: threads.ECONFLICT, Detail: "already exists", Err: err}
		case pe.Code == "57014", // query_canceled (statement_timeout)
			pe.Code == "40001", pe.Code == "40P01", // serialization failure, deadlock
			strings.HasPrefix(pe.Code, "08"),  // connection exception
			strings.HasPrefix(pe.Code, "53"),  // insufficient resources
			strings.HasPrefix(pe.Code, "57P"): // shutdown, cannot connect now
			return threads.Unavailable(err)
		}
		return threads.Internal(err)
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "conn closed") {
		return threads.Unavailable(err)
	}
	return threads.Internal(err)
}
