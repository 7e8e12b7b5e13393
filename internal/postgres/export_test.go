package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/threads-server/threads"
)

// Hooks for this package's external tests (package postgres_test), which
// need pgtest and so cannot be internal tests.

// Pool is the store's pool, for raw transactions.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// InsertEvent writes e in tx the way the changes' entry point does: the
// tenant's event lock first, sent with the insert.
func (db *DB) InsertEvent(ctx context.Context, tx pgx.Tx, tenant string, e *threads.Event) (txid int64, err error) {
	t := &changeTx{tx: tx, keys: []any{db.eventLockKey(tenant)}}
	return t.insertEvents(ctx, tenant, []*threads.Event{e})
}

// WriterInfo describes a writer: a kind of change that writes events,
// declared with the changes' entry point (change.go).
type WriterInfo struct {
	Name string
	// Conversation: it takes the conversation's lock as well as the
	// tenant's.
	Conversation bool
}

// Writers are every writer declared, in order.
func Writers() []WriterInfo {
	var out []WriterInfo
	for _, w := range writers {
		out = append(out, WriterInfo{Name: w.name, Conversation: w.conversation})
	}
	return out
}

// ListenerPID is the listener's backend, 0 while it reconnects.
func (db *DB) ListenerPID() uint32 { return db.fan.listenerPID.Load() }

// Channel is the store's LISTEN/NOTIFY channel.
func (db *DB) Channel() string { return db.fan.channel }

// JSONTime is the SQL that renders unix microseconds as time.Time's JSON.
var JSONTime = jsonTime

// EventLockKey is the tenant's event lock (final.go).
func (db *DB) EventLockKey(tenant string) int64 { return db.eventLockKey(tenant) }

// ConversationLockKey is the conversation's lock (final.go).
func (db *DB) ConversationLockKey(tenant, id string) int64 { return db.conversationLockKey(tenant, id) }

// PoolSizeGiven exposes poolSizeGiven.
var PoolSizeGiven = poolSizeGiven

// OpenHooked is Open with hooks into the maintenance's periodic passes:
// before runs before each one (and may hold it), after after it, with its
// error.
func OpenHooked(ctx context.Context, url string, opt Options, before func(task string), after func(task string, err error)) (*DB, error) {
	return open(ctx, url, opt, &maintenanceHooks{BeforePass: before, AfterPass: after})
}
