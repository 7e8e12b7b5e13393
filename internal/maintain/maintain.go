// Package maintain runs a store's background work with one owner: the
// periodic passes (sweeps, retention purges) and the purges of deleted
// conversations, all under one context that Stop cancels before it waits
// for every one of them. Both engines use it (docs/sqlite.md and
// docs/postgres.md, "Background maintenance"), so that Close never closes
// a database under work still running.
package maintain

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/threads-server/threads"
)

// Hooks let tests see the periodic passes: BeforePass runs before each
// pass (and may hold it), AfterPass after it with its error.
type Hooks struct {
	BeforePass func(task string)
	AfterPass  func(task string, err error)
}

// Maintenance is one store's background work. Its zero value is not
// ready: call Init.
type Maintenance struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	hooks  *Hooks // nil outside tests

	mu      sync.Mutex
	stopped bool
	running map[[2]string]*Run // the purges of deleted conversations
}

// Init readies m; hooks may be nil.
func (m *Maintenance) Init(hooks *Hooks) {
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.running = map[[2]string]*Run{}
	m.hooks = hooks
}

// Every runs pass at once, then every interval, until Stop.
func (m *Maintenance) Every(task string, interval time.Duration, pass func(ctx context.Context) error) {
	m.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if h := m.hooks; h != nil && h.BeforePass != nil {
				h.BeforePass(task)
			}
			err := pass(m.ctx)
			if h := m.hooks; h != nil && h.AfterPass != nil {
				h.AfterPass(task, err)
			}
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// Run is one purge.
type Run struct {
	done chan struct{}
	err  error
}

// Done is closed when the purge has returned.
func (r *Run) Done() <-chan struct{} { return r.done }

// Wait waits for the purge while ctx lasts: its error when it ends first
// (nil when Stop ended it: the store's next sweep finishes it),
// nil when ctx ends first (the purge goes on, and a later sweep finishes
// it if this process stops). DeleteConversation answers within its
// request's deadline this way, whatever the conversation's size.
func (r *Run) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return nil
	}
}

// Purge runs fn for the conversation unless a purge of it is running
// already, and returns that purge. After Stop, it returns a run that is
// done, with no error.
func (m *Maintenance) Purge(tenant, id string, fn func(ctx context.Context, tenant, id string) error) *Run {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{tenant, id}
	if r, ok := m.running[key]; ok {
		return r
	}
	r := &Run{done: make(chan struct{})}
	if m.stopped {
		close(r.done)
		return r
	}
	m.running[key] = r
	m.wg.Go(func() {
		err := fn(m.ctx, tenant, id)
		if m.ctx.Err() != nil {
			err = nil // stopped, not failed
		}
		m.mu.Lock()
		delete(m.running, key)
		m.mu.Unlock()
		r.err = err
		close(r.done)
	})
	return r
}

// Stop cancels the maintenance and waits for all of it to return.
func (m *Maintenance) Stop() {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// How often the periodic passes run.
const (
	// SweepEvery is how often the purges that tombstones still record (a
	// process or replica stopped half way, a purge that failed) are
	// retried.
	SweepEvery = time.Minute
	// EventPurgeEvery is how often old events are purged.
	EventPurgeEvery = 10 * time.Minute
)

// Tasks are a store's periodic passes.
type Tasks struct {
	// Sweep finishes the purges that tombstones still record; every
	// process (every replica) sweeps, so whichever runs next finishes them.
	Sweep func(ctx context.Context)
	// PurgeEvents deletes the events before a time. It runs when
	// Retention is set, for the events older than the window plus an hour
	// (threads.EventsExpireBefore); a purge batch is a short transaction of
	// its own, so replicas purging at once cost each other little.
	PurgeEvents func(ctx context.Context, before time.Time) error
	Retention   time.Duration
	Now         func() time.Time
	Log         *slog.Logger
}

// Start starts the periodic passes: each at once, then at its interval.
func (m *Maintenance) Start(t Tasks) {
	m.Every("sweep", SweepEvery, func(ctx context.Context) error {
		t.Sweep(ctx)
		return nil
	})
	if t.Retention <= 0 {
		return
	}
	m.Every("events", EventPurgeEvery, func(ctx context.Context) error {
		err := t.PurgeEvents(ctx, threads.EventsExpireBefore(t.Now(), t.Retention))
		if err != nil && ctx.Err() == nil {
			t.Log.Warn("purging old events", "err", err)
		}
		return err
	})
}
