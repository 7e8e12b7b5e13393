package postgres

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
)

// Where a tenant's log is final (docs/postgres.md, "Live events across
// replicas"). A position (txid, id) is final once no transaction that may
// still commit an event of the tenant has a smaller txid. Two ways to know
// a txid F below which that holds:
//
//   - xmin: pg_snapshot_xmin of any snapshot. Every transaction below it
//     has ended. Always true, but one long transaction anywhere in the
//     cluster holds it back for every tenant.
//   - the tenant's event lock: every transaction that writes events of the
//     tenant takes pg_advisory_xact_lock_shared(key) before its first write,
//     that is before it has a txid, and keeps it until it has committed and
//     become visible. Writers share it, so they never wait for each other.
//     A checker that gets the same key exclusively, without waiting, in a
//     statement whose snapshot S was taken just before, knows that no
//     writer of the tenant is in flight: every one with a txid below
//     pg_snapshot_xmax(S) took the lock before S and has finished, and any
//     later one gets a txid at or above it. So F = xmax(S), usually past
//     everything committed: a reader sees its own writes at once.
//
// Either F stays true forever, so each process keeps the best one it has
// learnt per tenant (from its own checks and from other replicas'
// notifications) and reads with the greatest: a process's boundaries never
// go back, which the broker relies on when a subscriber's replay hands
// over to the live tail.

// The writers' half, the locks, is taken by the changes' entry point
// (change.go: lockCTE and change). A change to an existing conversation
// also takes, first, the conversation's lock (exclusive; see
// conversationLockKey): it is what serializes writers of one
// conversation, so that each takes its txid only once the previous one has
// committed, and the log's txid order within a conversation is the order
// of its changes (message.created in seq order). The conversation row's
// own lock would not do: an UPDATE takes its txid before it waits for the
// row.

// tenantFinal is what a process knows about one tenant's log.
type tenantFinal struct {
	key  int64
	best atomic.Int64  // the greatest known F
	turn chan struct{} // capacity 1: held while this process checks the lock
}

// raise records a new F if it is better.
func (tf *tenantFinal) raise(f int64) {
	for {
		old := tf.best.Load()
		if f <= old || tf.best.CompareAndSwap(old, f) {
			return
		}
	}
}

// finals maps tenant → *tenantFinal.
type finals struct {
	schema string
	m      sync.Map
}

func (fs *finals) get(tenant string) *tenantFinal {
	if tf, ok := fs.m.Load(tenant); ok {
		return tf.(*tenantFinal)
	}
	h := fnv.New64a()
	h.Write([]byte("threads.events\x00" + fs.schema + "\x00" + tenant))
	tf, _ := fs.m.LoadOrStore(tenant, &tenantFinal{key: int64(h.Sum64()), turn: make(chan struct{}, 1)})
	return tf.(*tenantFinal)
}

// conversationLockKey is the conversation's lock (change.go), per schema.
// A collision between two conversations only serializes their writers.
func (db *DB) conversationLockKey(tenant, id string) int64 {
	h := fnv.New64a()
	h.Write([]byte("threads.conversation\x00" + db.finals.schema + "\x00" + tenant + "\x00" + id))
	return int64(h.Sum64())
}

// eventLockKey is the tenant's event lock: per schema (each schema is a
// deployment of its own), a hash of the tenant. Two tenants that share a
// key only make each other's checks fail more often.
func (db *DB) eventLockKey(tenant string) int64 { return db.finals.get(tenant).key }

// finalCheck is one check: it tries the lock (released when the statement
// ends, so writers wait microseconds at most) and reads the snapshot's
// bounds and the database's clock.
const finalCheck = `SELECT pg_try_advisory_xact_lock($1), pg_snapshot_xmax(s)::text::bigint, pg_snapshot_xmin(s)::text::bigint, ` +
	nowMicros + ` FROM pg_current_snapshot() AS s`

// final checks the tenant's lock and returns the best F now known and the
// database's clock. Checks of one tenant take turns within the process, so
// that its own readers do not make each other's checks fail; checks from
// other replicas may still collide, which costs only freshness.
func (db *DB) final(ctx context.Context, tenant string) (f, now int64, err error) {
	tf := db.finals.get(tenant)
	select {
	case tf.turn <- struct{}{}:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	defer func() { <-tf.turn }()
	var locked bool
	var xmax, xmin int64
	if err := db.pool.QueryRow(ctx, finalCheck, tf.key).Scan(&locked, &xmax, &xmin, &now); err != nil {
		return 0, 0, mapErr(err)
	}
	tf.raise(xmin)
	if locked {
		tf.raise(xmax)
	}
	return tf.best.Load(), now, nil
}
