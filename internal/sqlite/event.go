package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/threads-server/threads"
)

// The event log (DESIGN.md §4). Positions are a per-tenant counter kept in
// event_heads and taken inside the writer's transaction. SQLite has one
// writer, so transactions commit in the order they took their positions:
// a reader never sees position p+1 without p, and a position ReadEvents has
// passed can never be filled in later. The cursor is {At: at, Hi: pos}.

// The statements whose plans plan_test.go checks (see docs/query-plans.md).
const (
	// sqlNextEventPos takes the tenant's next position and time: one
	// primary-key upsert, under the write lock. The time never goes back
	// within a tenant, so that purging by time leaves no holes.
	sqlNextEventPos = `INSERT INTO event_heads (tenant_id, last_pos, last_at) VALUES (?1, 1, ?2)
		ON CONFLICT (tenant_id) DO UPDATE SET last_pos = last_pos + 1, last_at = max(last_at, ?2)
		RETURNING last_pos, last_at`
	// sqlInsertEvent appends one event to the tenant's log.
	sqlInsertEvent = `INSERT INTO events (tenant_id, pos, at, type, group_id, conversation_id, data)
		VALUES (?, ?, ?, ?, ?, ?, ?)`
	// sqlReadHead and sqlWriteHead are a batch's read and write of the
	// tenant's counter (see flushHeads).
	sqlReadHead  = `SELECT last_pos, last_at FROM event_heads WHERE tenant_id = ?`
	sqlWriteHead = `INSERT INTO event_heads (tenant_id, last_pos, last_at) VALUES (?1, ?2, ?3)
		ON CONFLICT (tenant_id) DO UPDATE SET last_pos = ?2, last_at = ?3`
	// sqlEventHead is one primary-key lookup.
	sqlEventHead = `SELECT last_pos FROM event_heads WHERE tenant_id = ?`
	// sqlReadEvents is one range scan of the events primary key.
	sqlReadEvents = `SELECT pos, at, type, group_id, conversation_id, data FROM events
		WHERE tenant_id = ? AND pos > ? ORDER BY pos LIMIT ?`
	// sqlPurgeEvents removes up to ?2 events older than ?1: a range of
	// events_by_at, then one primary-key probe per row.
	sqlPurgeEvents = `DELETE FROM events WHERE (tenant_id, pos) IN (
		SELECT tenant_id, pos FROM events WHERE at < ?1 LIMIT ?2)`
)

// appendEvent appends e to the tenant's log in the transaction of the
// change it describes (ts, its statements: stmts.go), and sets e.Cursor.
// Only the changes' entry point calls it (change.go), and tells the
// listeners (notify) once the transaction has committed. In a batch (ts.heads set) the tenant's counter is kept in memory and
// written once per tenant at the end of the batch (flushHeads), not
// advanced by a statement per message.
func (db *DB) appendEvent(ctx context.Context, ts *txStmts, tenant string, e *threads.Event) error {
	data, err := e.MarshalData()
	if err != nil {
		return err
	}
	var pos, at int64
	var h *eventHead
	if ts.heads == nil {
		if err := ts.queryRow(ctx, stNextEventPos, tenant, db.now()).Scan(&pos, &at); err != nil {
			return err
		}
	} else {
		if h, err = ts.head(ctx, tenant); err != nil {
			return err
		}
		pos, at = h.pos+1, max(h.at, db.now())
	}
	if _, err := ts.exec(ctx, stInsertEvent, tenant, pos, at, e.Type, e.GroupID, e.ConversationID, string(data)); err != nil {
		return err
	}
	if h != nil {
		h.pos, h.at = pos, at
	}
	e.Cursor = threads.EventCursor{At: at, Hi: pos}
	return nil
}

// eventHead is a tenant's counter (its event_heads row) during a batch.
type eventHead struct{ pos, at int64 }

// head reads the tenant's counter the first time the batch needs it.
func (ts *txStmts) head(ctx context.Context, tenant string) (*eventHead, error) {
	if h, ok := ts.heads[tenant]; ok {
		return h, nil
	}
	h := &eventHead{}
	err := ts.queryRow(ctx, stReadHead, tenant).Scan(&h.pos, &h.at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	ts.heads[tenant] = h
	return h, nil
}

// flushHeads writes the batch's counters back, before its COMMIT. A
// message whose savepoint was rolled back never advanced its head (the
// event's insert is the last statement of a message), so the heads hold
// exactly the positions the batch used.
func (ts *txStmts) flushHeads(ctx context.Context) error {
	for tenant, h := range ts.heads {
		if _, err := ts.exec(ctx, stWriteHead, tenant, h.pos, h.at); err != nil {
			return err
		}
	}
	return nil
}

// ReadEvents reads on the reader pool. Lo plays no part in SQLite's
// positions (it is always 0), so "after (Hi, Lo)" is "pos > Hi". SQLite
// makes each row when it is stepped to, so stopping at the byte bound
// reads nothing beyond it, and finding a next row there tells exactly
// whether more follow.
func (db *DB) ReadEvents(ctx context.Context, tenant string, after threads.EventCursor, f threads.EventFilter, limit int) ([]*threads.Event, bool, error) {
	if limit <= 0 {
		return []*threads.Event{}, false, nil // a negative LIMIT would mean "no limit" to SQLite
	}
	var rows *sql.Rows
	var err error
	if f.All() {
		rows, err = db.query(ctx, sqlReadEvents, tenant, after.Hi, limit)
	} else {
		args := make([]any, 0, len(f.ConversationIDs)+4)
		args = append(args, tenant, after.Hi, limit, f.GroupID)
		seen := make(map[string]bool, len(f.ConversationIDs))
		for _, id := range f.ConversationIDs {
			if !seen[id] {
				seen[id] = true
				args = append(args, id)
			}
		}
		rows, err = db.r.QueryContext(ctx, filteredEventsQuery(f.GroupID != "", len(args)-4), args...)
	}
	if err != nil {
		return nil, false, mapErr(err)
	}
	defer rows.Close()
	out := make([]*threads.Event, 0, min(limit, 256))
	size := 0             // payload bytes read
	var data sql.RawBytes // one buffer for every row's payload
	for rows.Next() {
		if size >= threads.MaxEventPageBytes {
			return out, true, nil
		}
		var e threads.Event
		if err := rows.Scan(&e.Cursor.Hi, &e.Cursor.At, &e.Type, &e.GroupID, &e.ConversationID, &data); err != nil {
			return nil, false, mapErr(err)
		}
		size += len(data)
		if err := e.UnmarshalData(data); err != nil {
			return nil, false, threads.Internal(err)
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, mapErr(err)
	}
	return out, len(out) == limit, nil
}

var filteredEventsQueries sync.Map // [2]int{group, n} → string

// filteredEventsQuery selects the events of a group (?4, when group) or of
// n conversations (?5 …); ?1 is the tenant, ?2 the position to read after
// and ?3 the limit. Each group or conversation is its own part: the first
// ?3 positions after ?2 in its index, a bounded range. The first ?3 events
// of the union are among those, and IN walks its set in pos order, so the
// outer query reads at most ?3 rows by primary key and never sorts. (A
// plain "group_id = ? OR conversation_id IN (…)" makes SQLite read the
// tenant's whole log after the cursor in the primary key instead.)
func filteredEventsQuery(group bool, n int) string {
	key := [2]int{0, n}
	if group {
		key[0] = 1
	}
	if q, ok := filteredEventsQueries.Load(key); ok {
		return q.(string)
	}
	var parts []string
	part := func(col, param string) {
		parts = append(parts, `SELECT pos FROM (SELECT pos FROM events
			WHERE tenant_id = ?1 AND `+col+` = `+param+` AND pos > ?2 ORDER BY pos LIMIT ?3)`)
	}
	if group {
		part("group_id", "?4")
	}
	for i := range n {
		part("conversation_id", "?"+strconv.Itoa(i+5))
	}
	q := `SELECT pos, at, type, group_id, conversation_id, data FROM events
		WHERE tenant_id = ?1 AND pos IN (` + strings.Join(parts, " UNION ALL ") + `)
		ORDER BY pos LIMIT ?3`
	filteredEventsQueries.Store(key, q)
	return q
}

// EventHead reads the tenant's counter: reading after it returns only
// events committed after this call began.
func (db *DB) EventHead(ctx context.Context, tenant string) (threads.EventCursor, error) {
	head := threads.EventCursor{At: db.now()}
	err := db.queryRow(ctx, sqlEventHead, tenant).Scan(&head.Hi)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return threads.EventCursor{}, mapErr(err)
	}
	return head, nil
}

// PurgeEvents removes events older than before, purgeBatch rows per
// transaction, so that writers waiting for the lock are never delayed by
// more than one batch. event_heads is kept: positions go on from where
// they were.
func (db *DB) PurgeEvents(ctx context.Context, before time.Time) error {
	for {
		var n int64
		err := db.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, sqlPurgeEvents, threads.Micros(before), purgeBatch)
			if err == nil {
				n, err = res.RowsAffected()
			}
			return err
		})
		if err != nil || n < purgeBatch {
			return err
		}
	}
}

// listeners are the OnEvents callbacks. The zero value is ready.
type listeners struct {
	mu  sync.Mutex
	fns []func(tenant string)
}

// OnEvents registers fn. Only this process writes to the file through this
// DB, so every event is announced by notify; another process writing to
// the same file is not seen until something else prompts a read.
func (db *DB) OnEvents(fn func(tenant string)) {
	db.listeners.mu.Lock()
	defer db.listeners.mu.Unlock()
	db.listeners.fns = append(db.listeners.fns, fn)
}

// notify tells the listeners that the tenant has new events. It is called
// after the commit, never inside the transaction, so a listener that reads
// at once finds the events, and a failed transaction announces nothing.
func (db *DB) notify(tenant string) {
	db.listeners.mu.Lock()
	fns := db.listeners.fns
	db.listeners.mu.Unlock()
	for _, fn := range fns {
		fn(tenant)
	}
}
