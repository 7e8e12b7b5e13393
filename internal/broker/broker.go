// Package broker delivers a tenant's events live to its subscribers.
//
// The store's event log is the only source of truth. Each tenant with
// subscribers has one tail: a goroutine that reads the log after the last
// position it has delivered whenever the store says something was
// committed (and on a slow timer, in case a wake-up was lost), and hands
// each event to the subscribers whose filter selects it. A subscriber that
// resumes from a cursor first reads the log itself, then joins the tail at
// a known position, so replay and live delivery meet without a gap and
// without a duplicate: positions are totally ordered within a tenant and
// final once read (threads.EventStore), so an event is delivered only if
// its position is after the last one delivered.
package broker

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threads-server/threads"
)

// Config tunes a Broker; zero values take the documented defaults.
type Config struct {
	Store  threads.EventStore
	Logger *slog.Logger
	// Buffer is how many events may wait for one subscriber; a subscriber
	// that falls further behind is dropped (it can resume from its last
	// cursor). Default 1024.
	Buffer int
	// Retention is how long events stay available for resuming; older
	// cursors get resync_required. Default threads.DefaultEventRetention.
	Retention time.Duration
	// Poll is how often a tail reads the log without being woken, to cover
	// a lost notification. Default 1s.
	Poll time.Duration
	// Page is how many events one read of the log returns at most. Default
	// 500. A read also stops at threads.MaxEventPageBytes of payload, so
	// that a subscriber's page holds little however large its events.
	Page int
	// Now is the clock (tests move it); default time.Now.
	Now func() time.Time
}

// Broker fans events out to subscribers. It is safe for concurrent use.
type Broker struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	tails map[string]*tail

	subscribers atomic.Int64 // connected now
	dropped     atomic.Int64 // dropped for falling behind, since start
	delivered   atomic.Int64 // events handed to subscribers, since start
}

// New returns a Broker reading cfg.Store and registers for its commit
// notifications.
func New(cfg Config) *Broker {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	if cfg.Retention <= 0 {
		cfg.Retention = threads.DefaultEventRetention
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Page <= 0 {
		cfg.Page = 500
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, tails: map[string]*tail{}}
	if b.log == nil {
		b.log = slog.Default()
	}
	cfg.Store.OnEvents(b.wake)
	return b
}

var _ threads.Events = (*Broker)(nil)

// Stats are the broker's counters, for metrics.
type Stats = threads.EventStats

// Stats returns the current counters.
func (b *Broker) Stats() Stats {
	return Stats{Subscribers: b.subscribers.Load(), Dropped: b.dropped.Load(), Delivered: b.delivered.Load()}
}

// wake tells the tail of tenant (every tail for "") to read the log. It
// never blocks: a tail already woken reads everything anyway.
func (b *Broker) wake(tenant string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tenant == "" {
		for _, t := range b.tails {
			t.poke()
		}
		return
	}
	if t := b.tails[tenant]; t != nil {
		t.poke()
	}
}

// acquire returns the tenant's tail, starting it if needed, with its head
// known; release undoes it.
func (b *Broker) acquire(ctx context.Context, tenant string) (*tail, error) {
	b.mu.Lock()
	t := b.tails[tenant]
	if t == nil {
		t = newTail(b, tenant)
		b.tails[tenant] = t
		go t.run()
	}
	t.refs++
	b.mu.Unlock()
	if err := t.init(ctx); err != nil {
		b.release(t)
		return nil, err
	}
	return t, nil
}

func (b *Broker) release(t *tail) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t.refs--
	if t.refs == 0 {
		delete(b.tails, t.tenant)
		close(t.stop)
	}
}
