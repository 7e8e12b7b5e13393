// Package maintain runs a store's background work with one owner: the
// periodic passes (sweeps, retention purges) and the purges of deleted
// conversations, all under one context that Stop cancels before it waits
// for every one of them. Both engines use it (docs/sqlite.md and
// docs/postgres.md, "Background maintenance"), so that Close never closes
// a database under work still running.
package maintain

import (
	"context"
	"sync"
	"time"
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

// Err is the purge's error, once Done is closed (nil when Stop ended it:
// the store's next sweep finishes it).
func (r *Run) Err() error { return r.err }

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
