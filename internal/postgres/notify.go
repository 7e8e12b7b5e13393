package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Fan-out of "tenant T has new events" to every replica (docs/postgres.md,
// "Live events across replicas"). The events themselves are in the
// database; this only wakes readers, so a lost or repeated wake-up costs
// latency or a read, never an event.

const (
	// notifyEvery is the least time between two announcements by one
	// replica: commits in between share one statement, and a tenant is
	// announced at most once per interval.
	notifyEvery = 5 * time.Millisecond
	// notifyRetryMax bounds the wait between checks while a committed
	// event is not yet readable (an older transaction is still open), and
	// notifyErrorMax the wait after a failed announcement.
	notifyRetryMax = 250 * time.Millisecond
	notifyErrorMax = 5 * time.Second
)

// fanout is the DB's part that calls OnEvents callbacks and announces
// commits to other replicas.
type fanout struct {
	channel string
	fns     atomic.Pointer[[]func(tenant string)]

	mu      sync.Mutex
	pending map[string]int64 // tenant → newest committed txid not yet announced
	wake    chan struct{}    // capacity 1: a wake-up is pending

	listenerPID atomic.Uint32 // the listener's backend, 0 while it reconnects
}

// channelFor names the LISTEN/NOTIFY channel of a schema. Channels are
// per database, and each schema is a separate deployment (tests use one
// schema each), so the schema is part of the name unless it is public.
// Channel names are at most 63 bytes: a long schema name is hashed.
func channelFor(schema string) string {
	name := "threads_events"
	if schema == "public" || schema == "" {
		return name
	}
	if name += "." + schema; len(name) > 63 {
		sum := sha256.Sum256([]byte(schema))
		name = "threads_events." + hex.EncodeToString(sum[:16])
	}
	return name
}

// OnEvents registers fn. Copy-on-write, so that firing takes no lock and
// fn may itself call OnEvents.
func (db *DB) OnEvents(fn func(tenant string)) {
	db.fan.mu.Lock()
	defer db.fan.mu.Unlock()
	var fns []func(string)
	if old := db.fan.fns.Load(); old != nil {
		fns = append(fns, *old...)
	}
	fns = append(fns, fn)
	db.fan.fns.Store(&fns)
}

func (db *DB) fire(tenant string) {
	if fns := db.fan.fns.Load(); fns != nil {
		for _, fn := range *fns {
			fn(tenant)
		}
	}
}

// published is called after a transaction that wrote events of tenant
// committed. Callbacks in this process run at once; the notifier tells the
// other replicas, off the request's path.
func (db *DB) published(tenant string, txid int64) {
	db.fire(tenant)
	f := &db.fan
	f.mu.Lock()
	if txid > f.pending[tenant] {
		f.pending[tenant] = txid
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// notify runs until ctx ends, announcing pending tenants at most once per
// notifyEvery. A tenant stays pending, and is checked again with backoff,
// until its events are final: a reader woken before that might find
// nothing and not be woken again.
func (db *DB) notify(ctx context.Context) {
	f := &db.fan
	backoff := notifyEvery
	for {
		var retry <-chan time.Time
		if f.waiting() > 0 {
			retry = time.After(backoff)
		}
		select {
		case <-ctx.Done():
			// Best effort for what committed just before Close.
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_, _ = db.announce(last)
			cancel()
			return
		case <-f.wake:
		case <-retry:
		}
		left, err := db.announce(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				db.log.Warn("announce events to other replicas", "err", err)
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), notifyErrorMax)
		case left > 0:
			backoff = min(2*backoff, notifyRetryMax)
		default:
			backoff = notifyEvery
		}
		select {
		case <-ctx.Done():
		case <-time.After(notifyEvery):
		}
	}
}

func (f *fanout) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// announce checks the pending tenants' event locks in one statement, like
// final does (skipping a tenant whose check this process is making right
// now), then sends "tenant F" for each tenant whose events are final, in
// a second statement of its own. Never in the writing transaction: a
// transaction that has notified takes a database-wide lock at commit,
// which would make every write wait for every other write's commit; nor
// with the locks held, for the same reason. It returns how many tenants
// are still pending.
func (db *DB) announce(ctx context.Context) (left int, err error) {
	f := &db.fan
	f.mu.Lock()
	pending := make(map[string]int64, len(f.pending))
	for t, x := range f.pending {
		pending[t] = x
	}
	f.mu.Unlock()
	var tenants, known []string
	var keys, knownFinals []int64
	var held []*tenantFinal
	for t, x := range pending {
		tf := db.finals.get(t)
		if final := tf.best.Load(); x < final {
			// Already known final (a reader's check, another replica's
			// notification): no need to check again.
			known, knownFinals = append(known, t), append(knownFinals, final)
			continue
		}
		select {
		case tf.turn <- struct{}{}:
			held = append(held, tf)
			tenants, keys = append(tenants, t), append(keys, tf.key)
		default:
		}
	}
	ready, finals, err := db.checkFinal(ctx, tenants, keys, pending)
	for _, tf := range held {
		<-tf.turn
	}
	if err != nil {
		return len(pending), err
	}
	ready, finals = append(ready, known...), append(finals, knownFinals...)
	if len(ready) > 0 {
		if _, err := db.pool.Exec(ctx, `SELECT pg_notify($1, p.tenant || ' ' || p.final)
			FROM unnest($2::text[], $3::bigint[]) AS p(tenant, final)`, f.channel, ready, finals); err != nil {
			return len(pending), mapErr(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, t := range ready {
		// A newer commit of t since the copy stays unless it is final too.
		if f.pending[t] < finals[i] {
			delete(f.pending, t)
		}
	}
	return len(f.pending), nil
}

// checkFinal is final's check for several tenants in one statement; it
// returns those whose pending txid is now below their F, and F.
func (db *DB) checkFinal(ctx context.Context, tenants []string, keys []int64, pending map[string]int64) (ready []string, finals []int64, err error) {
	if len(tenants) == 0 {
		return nil, nil, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT p.tenant, pg_try_advisory_xact_lock(p.key),
			pg_snapshot_xmax(s)::text::bigint, pg_snapshot_xmin(s)::text::bigint
		FROM pg_current_snapshot() AS s, unnest($1::text[], $2::bigint[]) AS p(tenant, key)`, tenants, keys)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	var t string
	var locked bool
	var xmax, xmin int64
	_, err = pgx.ForEachRow(rows, []any{&t, &locked, &xmax, &xmin}, func() error {
		tf := db.finals.get(t)
		tf.raise(xmin)
		if locked {
			tf.raise(xmax)
		}
		if final := tf.best.Load(); pending[t] < final {
			ready, finals = append(ready, t), append(finals, final)
		}
		return nil
	})
	return ready, finals, mapErr(err)
}
