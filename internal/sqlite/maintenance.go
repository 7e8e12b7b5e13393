package sqlite

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/threads-server/threads"
)

// Background maintenance (docs/sqlite.md, "Background maintenance") has
// one owner, the store's maintenance: Open starts it, and Close stops it
// and waits for all of it before the database closes. It runs
//
//   - the purges of deleted conversations (DeleteConversation starts one
//     here and waits for it only while its context lasts);
//   - the sweep: at Open and every sweepEvery, the purges that tombstones
//     still record (a process stopped half way, a purge that failed);
//   - the event log's retention: at Open and every eventPurgeEvery, the
//     events older than Options.EventRetention plus an hour
//     (threads.EventsExpireBefore) go, when the retention is set.

const (
	// sweepEvery is how often purges that failed (or that an earlier
	// process left unfinished) are retried.
	sweepEvery = time.Minute
	// eventPurgeEvery is how often old events are purged.
	eventPurgeEvery = 10 * time.Minute
)

// maintenance runs the store's background work under a context of its
// own: stop cancels it and waits for every pass and purge to return.
type maintenance struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	hooks  *maintenanceHooks // nil outside tests

	mu      sync.Mutex
	stopped bool
	running map[[2]string]*purgeRun // the purges of deleted conversations
}

// maintenanceHooks let tests see the periodic passes: beforePass runs
// before each pass (and may hold it), afterPass after it with its error.
type maintenanceHooks struct {
	beforePass func(task string)
	afterPass  func(task string, err error)
}

func (m *maintenance) init(hooks *maintenanceHooks) {
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.running = map[[2]string]*purgeRun{}
	m.hooks = hooks
}

// every runs pass at once, then every interval, until stop.
func (m *maintenance) every(task string, interval time.Duration, pass func(ctx context.Context) error) {
	m.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if h := m.hooks; h != nil && h.beforePass != nil {
				h.beforePass(task)
			}
			err := pass(m.ctx)
			if h := m.hooks; h != nil && h.afterPass != nil {
				h.afterPass(task, err)
			}
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// purgeRun is one purge; err is set when done is closed.
type purgeRun struct {
	done chan struct{}
	err  error
}

// purge runs fn for the conversation unless a purge of it is running
// already, and returns that purge. After stop, it returns a run that is
// done, with no error: the next Open's sweep will do it.
func (m *maintenance) purge(tenant, id string, fn func(ctx context.Context, tenant, id string) error) *purgeRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{tenant, id}
	if r, ok := m.running[key]; ok {
		return r
	}
	r := &purgeRun{done: make(chan struct{})}
	if m.stopped {
		close(r.done)
		return r
	}
	m.running[key] = r
	m.wg.Go(func() {
		err := fn(m.ctx, tenant, id)
		if m.ctx.Err() != nil {
			err = nil // stopped by Close, not failed
		}
		m.mu.Lock()
		delete(m.running, key)
		m.mu.Unlock()
		r.err = err
		close(r.done)
	})
	return r
}

// stop cancels the maintenance and waits for all of it to return.
func (m *maintenance) stop() {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// startMaintenance starts the periodic passes (Open).
func (db *DB) startMaintenance(retention time.Duration, log *slog.Logger) {
	db.maint.every("sweep", sweepEvery, func(ctx context.Context) error {
		db.purgeDeleted(ctx)
		return nil
	})
	if retention > 0 {
		db.maint.every("events", eventPurgeEvery, func(ctx context.Context) error {
			err := db.PurgeEvents(ctx, threads.EventsExpireBefore(db.clock(), retention))
			if err != nil && ctx.Err() == nil {
				log.Warn("purging old events", "err", err)
			}
			return err
		})
	}
}
