// Package sqlite is the embedded storage engine: one SQLite file in WAL
// mode, created on first open, with one writer connection and a pool of
// readers. SQLite allows one writer at a time anyway; giving it a single
// connection turns lock contention (SQLITE_BUSY) into an orderly queue in
// database/sql, and lets readers run beside it on WAL snapshots.
// CreateMessage goes through that queue too, but in batches: concurrent
// messages share one transaction (group commit, batch.go).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/maintain"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Options tune the engine. The zero value is the documented default.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "FULL" (default) makes a
	// commit durable against power loss before CreateMessage answers;
	// "NORMAL" survives a crash of the process but may lose the last
	// commits on power loss, and is faster.
	Synchronous string
	// Readers is the size of the read pool (default 2×GOMAXPROCS, at least 4).
	Readers int
	// Now is the clock (tests pin it); default time.Now.
	Now func() time.Time
	// Logger receives background errors (the maintenance's: purges of
	// deleted conversations and of old events).
	Logger *slog.Logger
	// EventRetention is how long events stay in the log: the store's
	// maintenance purges those older than this plus an hour
	// (threads.EventsExpireBefore) at Open and every 10 minutes. Zero
	// purges none: threads serve sets it (--event-retention), and the
	// commands that open the same file for a moment (keys, migrate) do
	// not, so they never purge by a retention of their own.
	EventRetention time.Duration
}

// DB is a threads.Store on SQLite.
type DB struct {
	w, r  *sql.DB
	now   func() int64 // the clock in unix microseconds
	clock func() time.Time
	log   *slog.Logger
	wg    sync.WaitGroup // the writer goroutine

	migrated int // migrations applied by Open

	listeners listeners // OnEvents callbacks; see event.go

	maint     maintain.Maintenance // background work; see maintenance.go
	stmts     writeStmts           // prepared on w; see stmts.go
	reads     readStmts            // prepared on r as used; see read.go
	batch     batcher              // group commit for CreateMessage; see batch.go
	unbatched bool                 // one transaction per CreateMessage (benchmarks only)
	closeOnce sync.Once
}

var _ threads.Store = (*DB)(nil)

// Open opens (creating if needed) the database file at path and applies
// pending migrations. A path of ":memory:" is not supported: readers and
// the writer must share one file.
func Open(ctx context.Context, path string, opt Options) (*DB, error) {
	return open(ctx, path, opt, nil, false)
}

// open is Open with the knobs tests and benchmarks use: hooks into the
// writer goroutine and the maintenance, and unbatched, which makes
// CreateMessage write one transaction per message, as it did before group
// commit.
func open(ctx context.Context, path string, opt Options, hooks *testHooks, unbatched bool) (*DB, error) {
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: a file path is required")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	sync := opt.Synchronous
	if sync == "" {
		sync = "FULL"
	}
	if sync != "FULL" && sync != "NORMAL" && sync != "OFF" {
		return nil, fmt.Errorf("sqlite: synchronous must be FULL, NORMAL or OFF (tests only), not %q", sync)
	}
	readers := opt.Readers
	if readers <= 0 {
		readers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	common := url.Values{}
	common.Add("_pragma", "busy_timeout(10000)")
	common.Add("_pragma", "journal_mode(WAL)")
	common.Add("_pragma", "synchronous("+sync+")")
	common.Add("_pragma", "foreign_keys(OFF)")
	common.Set("_txlock", "immediate")
	// The writer keeps temporary files in memory: a batch (batch.go) puts
	// each message in a savepoint, and SQLite copies every page a message
	// changes into the savepoint's sub-journal, which would otherwise
	// spill to a temporary file after 64 KiB and cost a write(2) per page.
	// It checkpoints every 10,000 WAL pages (about 40 MiB) rather than
	// SQLite's 1,000: the checkpoint runs on the committing connection,
	// the writer goroutine, and most pages a batch changes are the same
	// few hot ones (the tails of the indexes, the counters), which a
	// longer interval copies to the database file once instead of ten
	// times. BenchmarkCreateMessageClients (FULL, 64 clients): +22 %.
	wo := url.Values{}
	for k, v := range common {
		wo[k] = v
	}
	wo.Add("_pragma", "temp_store(MEMORY)")
	wo.Add("_pragma", "wal_autocheckpoint(10000)")
	w, err := sql.Open("sqlite", "file:"+path+"?"+wo.Encode())
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	ro := url.Values{}
	for k, v := range common {
		ro[k] = v
	}
	ro.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", "file:"+path+"?"+ro.Encode())
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxIdleTime(0)

	now := opt.Now
	if now == nil {
		now = time.Now
	}
	logger := opt.Logger
	if logger == nil {
		logger = slog.Default()
	}
	db := &DB{w: w, r: r, now: func() int64 { return now().UnixMicro() }, clock: now, log: logger, unbatched: unbatched}
	db.batch.init(hooks)
	var mh *maintenanceHooks
	if hooks != nil {
		mh = hooks.maintenance
	}
	db.maint.Init(mh)

	if err := db.checkWAL(ctx, path); err != nil {
		db.Close()
		return nil, err
	}
	if db.migrated, err = db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.stmts.prepare(ctx, w); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	db.wg.Go(db.writeLoop)
	db.startMaintenance(opt.EventRetention, logger)
	return db, nil
}

// checkWAL opens the first connection and checks that WAL is on. Turning
// a brand-new file to WAL needs an exclusive lock that SQLite does not
// wait for, so when two processes create the file at once (serve and a
// "threads keys" beside it) one may see SQLITE_BUSY: it is retried for a
// few seconds rather than failing the start.
func (db *DB) checkWAL(ctx context.Context, path string) error {
	var mode string
	var err error
	for try := 0; try < 50; try++ {
		err = db.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if err == nil || threads.ErrorCode(mapErr(err)) != threads.EUNAVAILABLE {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil || mode != "wal" {
		return fmt.Errorf("sqlite: cannot use WAL on %s (journal_mode=%q): %v", path, mode, err)
	}
	return nil
}

// Migrated returns how many migrations Open applied.
func (db *DB) Migrated() int { return db.migrated }

// Close stops the background maintenance and waits for it, stops the
// writer goroutine, and closes both pools. A batch being written is
// finished (its callers get its answer); messages still queued are not
// written, and their callers get UNAVAILABLE.
func (db *DB) Close() error {
	db.maint.Stop()
	db.closeOnce.Do(func() { close(db.batch.stop) })
	db.wg.Wait()
	return errors.Join(db.stmts.close(), db.reads.close(), db.r.Close(), db.w.Close())
}

// Ping checks that a reader can query the file.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return threads.Unavailable(err)
	}
	return nil
}

// write runs fn in one IMMEDIATE transaction on the writer connection.
// It is for writes that make no event (keys, purges, migrations); a
// change that writes events goes through change (change.go).
func (db *DB) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return mapErr(err)
	}
	return mapErr(tx.Commit())
}

// mapErr turns driver errors into domain errors: a database that stays
// locked or cannot be opened is UNAVAILABLE; domain and context errors pass
// through; anything else is INTERNAL (its text is logged, never shown).
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var te *threads.Error
	if errors.As(err, &te) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL:
			return threads.Unavailable(err)
		case sqlite3.SQLITE_CONSTRAINT:
			// A unique key taken by another row: the caller's id is in use.
			return &threads.Error{Code: threads.ECONFLICT, Detail: "already exists", Err: err}
		}
	}
	return threads.Internal(err)
}
