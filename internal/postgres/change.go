package postgres

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/threads-server/threads"
)

// Changes that write events (docs/postgres.md, "Changes and their
// events").
//
// Every change of a tenant's data that writes events goes through one
// entry point, in one of two shapes, and is declared once as a writer:
//
//   - change, for a change of several statements: it begins the
//     transaction, takes the writer's locks before the change's first
//     statement (sent with it, in the same round trip), lets the change's
//     function do its writes through a changeTx (the only way to the
//     transaction) and hand back its events, writes them, commits, and
//     then announces them (published);
//   - changeStatement, for a change that is one statement run on its own
//     (autocommit), CreateMessage's and CreateConversation's fast path: one
//     round trip, where BEGIN, the statement and COMMIT took three. The
//     writer's statement is composed once, by newStatement, from the
//     change's own writes: the locks come first (a CTE, l, that the
//     writes join), the event row last, and the statement returns the
//     transaction's id for the announcement.
//
// Either way the locks are taken before the transaction's first write,
// that is before it has a txid (final.go: what makes positions final),
// the events are written in the change's transaction, and the
// announcement comes after the commit. TestLocksBeforeTxid runs every
// writer in writers under each of its locks, and
// TestEventsOnlyThroughChange keeps event writes and announcements in
// this file.

// writer is one kind of change that writes events.
type writer struct {
	name string
	// conversation: the change is to an existing conversation, whose lock
	// it takes before the tenant's event lock (see lockCTE).
	conversation bool
	// stmt is the composed statement of a one-statement writer, "" for a
	// transaction writer.
	stmt string
}

// writers are all the writers, in the order they were declared: the list
// TestLocksBeforeTxid walks.
var writers []*writer

// newWriter declares a writer whose changes go through change.
func newWriter(name string, conversation bool) *writer {
	w := &writer{name: name, conversation: conversation}
	writers = append(writers, w)
	return w
}

// statement is what a one-statement writer writes, as SQL.
type statement struct {
	// params is how many parameters the change passes: $1 is the tenant,
	// $2 … $params the change's own. The locks' keys follow them.
	params int
	// writes are the change's CTEs, after l. The first write must join l
	// (INSERT … SELECT … FROM l, UPDATE … FROM l, DELETE … USING l), so
	// that the locks are taken before it.
	writes string
	// The event row, as SQL expressions: its time, type, group,
	// conversation and data (jsonb), selected from eventFrom, which must
	// have a row whenever result has one: a statement that returns a row
	// has written its event. (No row in either: it changed nothing.)
	eventAt, eventType, eventGroup, eventConversation, eventData, eventFrom string
	// result is what the statement returns after the transaction's id:
	// "columns FROM cte".
	result string
}

// newStatement declares a writer whose change is one statement, and
// composes that statement:
//
//	WITH l AS (the locks), <writes>,
//	e AS (INSERT INTO events … SELECT $1, <event> FROM <eventFrom> RETURNING txid)
//	SELECT (SELECT txid FROM e), <result>
func newStatement(name string, conversation bool, s statement) *writer {
	tenantKey, convKey := "$"+strconv.Itoa(s.params+1), ""
	if conversation {
		convKey = "$" + strconv.Itoa(s.params+2)
	}
	w := newWriter(name, conversation)
	w.stmt = `WITH ` + lockCTE(tenantKey, convKey) + `,
` + s.writes + `,
e AS (
	INSERT INTO events (tenant_id, at, type, group_id, conversation_id, data)
	SELECT $1, ` + s.eventAt + `, ` + s.eventType + `, ` + s.eventGroup + `, ` + s.eventConversation + `, ` + s.eventData + `
	FROM ` + s.eventFrom + `
	RETURNING ` + txidOut + ` AS txid)
SELECT (SELECT txid FROM e), ` + s.result
	return w
}

// lockCTE is the writers' locks as a CTE named l: the tenant's event lock
// (param tenantKey, shared), and first, for a change to an existing
// conversation, the conversation's lock (param convKey, exclusive; see
// final.go).
func lockCTE(tenantKey, convKey string) string {
	return `l AS (SELECT ` + locks(tenantKey, convKey) + `)`
}

func locks(tenantKey, convKey string) string {
	l := `pg_advisory_xact_lock_shared(` + tenantKey + `)`
	if convKey != "" {
		l = `pg_advisory_xact_lock(` + convKey + `), ` + l
	}
	return l
}

// The lock statements of transaction writers, sent with their first
// statement: $1 is the tenant's key, $2 the conversation's.
var (
	lockTenant       = `SELECT ` + locks("$1", "")
	lockConversation = `SELECT ` + locks("$1", "$2")
)

// keys returns the writer's lock keys: the tenant's, then the
// conversation's if it takes that lock.
func (db *DB) keys(w *writer, tenant, conversationID string) []any {
	if w.conversation {
		return []any{db.eventLockKey(tenant), db.conversationLockKey(tenant, conversationID)}
	}
	return []any{db.eventLockKey(tenant)}
}

// changeFunc is the work of one change: its writes, through tx, and the
// events they make, in log order. An error rolls the change back.
type changeFunc func(ctx context.Context, tx *changeTx) ([]*threads.Event, error)

// change runs fn as one transaction of w's: the locks with fn's first
// statement, fn's writes, its events, COMMIT, then the announcement.
// conversationID names the conversation whose lock w takes, if it takes
// one.
func (db *DB) change(ctx context.Context, w *writer, tenant, conversationID string, fn changeFunc) error {
	if w.stmt != "" {
		return threads.Internal(fmt.Errorf("postgres: %s is a one-statement writer", w.name))
	}
	var txid int64
	var wrote bool
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		t := &changeTx{tx: tx, keys: db.keys(w, tenant, conversationID)}
		evs, err := fn(ctx, t)
		if err != nil {
			return err
		}
		txid, err = t.insertEvents(ctx, tenant, evs)
		wrote = len(evs) > 0
		return err
	})
	if err != nil {
		return mapErr(err)
	}
	if wrote {
		db.published(tenant, txid)
	}
	return nil
}

// changeStatement runs w's statement on its own (autocommit) with args
// ($1 the tenant, then the change's own; the lock keys are added here),
// scans the columns of its result into dest, and announces the event.
// Its error is pgx's, not mapped: the caller tells a taken id
// (unique_violation) or no row (pgx.ErrNoRows: nothing written) from a
// failure.
func (db *DB) changeStatement(ctx context.Context, w *writer, tenant, conversationID string, args []any, dest ...any) error {
	if w.stmt == "" {
		return threads.Internal(fmt.Errorf("postgres: %s is not a one-statement writer", w.name))
	}
	params := make([]any, len(args), len(args)+2)
	copy(params, args)
	params = append(params, db.eventLockKey(tenant))
	if w.conversation {
		params = append(params, db.conversationLockKey(tenant, conversationID))
	}
	var txid int64
	targets := make([]any, 1, 1+len(dest))
	targets[0] = &txid
	if err := db.pool.QueryRow(ctx, w.stmt, params...).Scan(append(targets, dest...)...); err != nil {
		return err
	}
	db.published(tenant, txid)
	return nil
}

// changeTx is a change's transaction, as its function sees it. Its first
// statement is sent together with the writer's locks, which run first: one
// round trip, as when the locks were a CTE of that statement.
type changeTx struct {
	tx     pgx.Tx
	keys   []any // the writer's lock keys (keys)
	locked bool
}

// lockWith sends the writer's locks and sql in one round trip, and
// returns the results with the locks' read: the next is sql's.
func (t *changeTx) lockWith(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	var b pgx.Batch
	if len(t.keys) == 2 {
		b.Queue(lockConversation, t.keys...)
	} else {
		b.Queue(lockTenant, t.keys...)
	}
	b.Queue(sql, args...)
	br := t.tx.SendBatch(ctx, &b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close() // the locks' error is the one that explains it
		return nil, err
	}
	t.locked = true
	return br, nil
}

// Exec runs a statement of the change (after the locks, if it is the
// first).
func (t *changeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.locked {
		return t.tx.Exec(ctx, sql, args...)
	}
	br, err := t.lockWith(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// QueryRow runs a query of the change (after the locks, if it is the
// first). Scan its row before the next statement: the first one's row
// holds the batch it came in.
func (t *changeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.locked {
		return t.tx.QueryRow(ctx, sql, args...)
	}
	br, err := t.lockWith(ctx, sql, args)
	if err != nil {
		return errRow{err}
	}
	return batchRow{br: br, row: br.QueryRow()}
}

// batchRow is the row of the statement sent with the locks; Scan also
// closes the batch, so that the connection takes the next statement.
type batchRow struct {
	br  pgx.BatchResults
	row pgx.Row
}

func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// insertEventSQL writes one event, stamped now by the database's clock;
// txid defaults to the transaction's id. The locks are taken by then.
var insertEventSQL = `INSERT INTO events (tenant_id, at, type, group_id, conversation_id, data)
VALUES ($1, ` + nowMicros + `, $2, $3, $4, $5::jsonb) RETURNING ` + txidOut

// insertEvents writes evs in the change's transaction, in order, and
// returns the transaction's id, which the notifier needs to tell when the
// events have become readable.
func (t *changeTx) insertEvents(ctx context.Context, tenant string, evs []*threads.Event) (txid int64, err error) {
	for _, e := range evs {
		data, err := e.MarshalData()
		if err != nil {
			return 0, err
		}
		if err := t.QueryRow(ctx, insertEventSQL, tenant, e.Type, e.GroupID, e.ConversationID, data).Scan(&txid); err != nil {
			return 0, err
		}
	}
	return txid, nil
}
