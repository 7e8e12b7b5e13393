package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/threads-server/threads"
)

// Changes that write events (docs/sqlite.md, "Changes and their events").
//
// Every change of a tenant's data that writes events goes through one
// entry point: change, or changeBatch for CreateMessage's group commit.
// The entry point opens the transaction (IMMEDIATE: it holds SQLite's one
// write lock from its first statement), hands the change's function a
// changeTx, the only way to that transaction, writes the events the
// function returns into the tenant's log in the same transaction (taking
// their positions from the tenant's counter, see event.go), commits, and
// only then tells the OnEvents listeners. A change cannot write without
// its events, announce events that did not commit, or announce them
// before they are readable: none of that is the change's to do.
//
// A change belongs to one tenant (its events go to that tenant's log).
// TestEventsOnlyThroughChange keeps the event log's writes (appendEvent)
// and the announcements (notify) in this file.

// changeFunc is the work of one change: its writes, through tx, and the
// events they make, in log order. An error undoes the change: nothing it
// wrote is kept and no event is written.
type changeFunc func(ctx context.Context, tx *changeTx) ([]*threads.Event, error)

// changeTx is a change's transaction, as its function sees it.
type changeTx struct {
	db *DB
	ts *txStmts
	// savepoint is set in a batch, where each change runs in a savepoint
	// that undo may roll back to.
	savepoint bool
}

// Exec runs a statement given as text.
func (t *changeTx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.ts.tx.ExecContext(ctx, query, args...)
}

// QueryRow runs a query given as text.
func (t *changeTx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return t.ts.tx.QueryRowContext(ctx, query, args...)
}

// exec and queryRow run one of the prepared write statements (stmts.go).
func (t *changeTx) exec(ctx context.Context, st int, args ...any) (sql.Result, error) {
	return t.ts.exec(ctx, st, args...)
}

func (t *changeTx) queryRow(ctx context.Context, st int, args ...any) *sql.Row {
	return t.ts.queryRow(ctx, st, args...)
}

// errNoSavepoint: undo outside a batch, which nothing does.
var errNoSavepoint = errors.New("sqlite: undo of a change that has no savepoint")

// undo rolls back what the change wrote so far, and lets it go on (its
// savepoint stays): CreateMessage undoes its counter when the id turns out
// to be taken, then answers from the stored message.
func (t *changeTx) undo(ctx context.Context) error {
	if !t.savepoint {
		return errNoSavepoint
	}
	_, err := t.ts.exec(ctx, stRollbackTo)
	return err
}

// change runs fn as one transaction on the writer connection under ctx:
// its writes, then its events, then COMMIT, then the listeners.
func (db *DB) change(ctx context.Context, tenant string, fn changeFunc) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	t := &changeTx{db: db, ts: db.inTx(tx)}
	evs, err := fn(ctx, t)
	if err == nil {
		err = db.appendEvents(ctx, t.ts, tenant, evs)
	}
	if err != nil {
		tx.Rollback()
		return mapErr(err)
	}
	if err := tx.Commit(); err != nil {
		return mapErr(err)
	}
	if len(evs) > 0 {
		db.notify(tenant)
	}
	return nil
}

// A batchedChange is one change of a batch (msgReq, CreateMessage's).
type batchedChange interface {
	// changeTenant is the tenant whose log gets the change's events.
	changeTenant() string
	// apply is the change's function (changeFunc).
	apply(ctx context.Context, tx *changeTx) ([]*threads.Event, error)
	// settle records the change's own outcome: its error (mapped), or
	// whether it wrote events. The batch's outcome may still override it
	// (changeBatch's error).
	settle(err error, wrote bool)
}

// changeBatch is change for many changes at once (group commit, batch.go):
// one transaction, each change in a savepoint of its own, in order, with
// its events written in its savepoint right after its writes. A change
// that fails is rolled back to its savepoint and settled with its error;
// the others go on. After COMMIT, the listeners are told once per tenant
// whose log got events (a listener that panics is logged; the writes
// stand). It returns an error, and nothing of the batch is stored or
// announced, when the transaction as a whole failed: it could not begin,
// a savepoint could not be rolled back to or released (SQLite may have
// rolled back everything, after an I/O error), something panicked, or
// COMMIT failed.
//
// prepared is the writer goroutine's way: the prepared statements, and
// each tenant's event counter kept in memory and written once at the end.
// Without it (createMessageAlone, for the benchmarks' comparison) the
// statements run as text and each event advances its counter with a
// statement, as before group commit.
func changeBatch[C batchedChange](db *DB, ctx context.Context, changes []C, prepared bool) (err error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			err = db.recovered(p, "a batch")
		}
	}()
	abandon := func(err error) error {
		tx.Rollback()
		return mapErr(err)
	}
	ts := &txStmts{tx: tx}
	if prepared {
		ts = db.inTx(tx)
		ts.heads = make(map[string]*eventHead)
	}
	t := &changeTx{db: db, ts: ts, savepoint: true}
	announce := make([]bool, len(changes))
	for i, c := range changes {
		if _, err := ts.exec(ctx, stSavepoint); err != nil {
			return abandon(err)
		}
		evs, err := c.apply(ctx, t)
		if err == nil {
			err = db.appendEvents(ctx, ts, c.changeTenant(), evs)
		}
		if err != nil {
			// If SQLite rolled back the whole transaction on this error, the
			// savepoint is gone with it, ROLLBACK TO fails, and the batch is
			// abandoned with the change's error, the one that explains it.
			if _, e := ts.exec(ctx, stRollbackTo); e != nil {
				return abandon(err)
			}
			c.settle(mapErr(err), false)
		} else {
			announce[i] = len(evs) > 0
			c.settle(nil, announce[i])
		}
		if _, e := ts.exec(ctx, stRelease); e != nil {
			return abandon(e)
		}
	}
	if err := ts.flushHeads(ctx); err != nil {
		return abandon(err)
	}
	if err := tx.Commit(); err != nil {
		// The driver rolls back what COMMIT left open (modernc's tx.Commit
		// checks sqlite3_get_autocommit), so the connection is clean.
		return commitErr(err)
	}
	notifyBatch(db, changes, announce)
	return nil
}

// appendEvents writes a change's events into the tenant's log, in order.
func (db *DB) appendEvents(ctx context.Context, ts *txStmts, tenant string, evs []*threads.Event) error {
	for _, e := range evs {
		if err := db.appendEvent(ctx, ts, tenant, e); err != nil {
			return err
		}
	}
	return nil
}

// notifyBatch calls notify once for each tenant with announce set for one
// of its changes. Listeners must not block (threads.EventStore); one that
// panics is logged, and the callers still get their answers.
func notifyBatch[C batchedChange](db *DB, changes []C, announce []bool) {
	defer func() {
		if p := recover(); p != nil {
			_ = db.recovered(p, "an OnEvents listener") // logged; the writes stand
		}
	}()
	var tenants []string
next:
	for i, c := range changes {
		if !announce[i] {
			continue
		}
		for _, t := range tenants {
			if t == c.changeTenant() {
				continue next
			}
		}
		tenants = append(tenants, c.changeTenant())
	}
	for _, t := range tenants {
		db.notify(t)
	}
}

// commitErr maps a failed COMMIT. A constraint code here is not a taken
// id (that would have failed its INSERT, in its savepoint) but a refused
// commit, so it is INTERNAL, not CONFLICT.
func commitErr(err error) error {
	mapped := mapErr(err)
	if threads.ErrorCode(mapped) == threads.ECONFLICT {
		return threads.Internal(err)
	}
	return mapped
}
