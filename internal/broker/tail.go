package broker

import (
	"context"
	"sync"
	"time"

	"github.com/threads-server/threads"
)

// tail follows one tenant's log for every subscriber of the tenant in this
// process: one read of the log per commit, however many subscribers.
type tail struct {
	b      *Broker
	tenant string
	tag    uint32 // threads.EventCursorTag(tenant), stamped on what it delivers
	refs   int    // guarded by b.mu
	wakeC  chan struct{}
	stop   chan struct{}

	mu     sync.Mutex
	inited bool
	head   threads.EventCursor // the last position handed to subscribers
	subs   map[*Subscription]struct{}
}

func newTail(b *Broker, tenant string) *tail {
	return &tail{b: b, tenant: tenant, tag: threads.EventCursorTag(tenant), wakeC: make(chan struct{}, 1), stop: make(chan struct{}),
		subs: map[*Subscription]struct{}{}}
}

func (t *tail) poke() {
	select {
	case t.wakeC <- struct{}{}:
	default:
	}
}

// init sets the head to the end of the log the first time: the tail
// delivers only what is committed after it started; what came before is
// the business of each subscriber's own replay.
func (t *tail) init(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inited {
		return nil
	}
	h, err := t.b.cfg.Store.EventHead(ctx, t.tenant)
	if err != nil {
		return err
	}
	t.head, t.inited = h, true
	return nil
}

// join adds s to the live subscribers and returns the position after
// which the tail will hand s events: s must read the log itself up to it.
func (t *tail) join(s *Subscription) threads.EventCursor {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs[s] = struct{}{}
	return t.head
}

func (t *tail) leave(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.subs, s)
}

// run reads the log when woken or when the poll timer fires, until the
// last subscriber leaves.
func (t *tail) run() {
	tick := time.NewTicker(t.b.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-t.wakeC:
		case <-tick.C:
		}
		t.readAll()
	}
}

// readAll reads and delivers every event after the head, a page at a
// time. A failed read is logged and retried at the next wake-up or tick:
// the head does not move, so nothing is skipped.
func (t *tail) readAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		t.mu.Lock()
		inited, head := t.inited, t.head
		t.mu.Unlock()
		if !inited {
			return
		}
		evs, more, err := t.b.cfg.Store.ReadEvents(ctx, t.tenant, head, threads.EventFilter{}, t.b.cfg.Page)
		if err != nil {
			t.b.log.Warn("reading events", "tenant", t.tenant, "err", err)
			return
		}
		if len(evs) > 0 {
			t.deliver(evs)
		}
		if !more {
			return
		}
	}
}

// deliver hands evs to every subscriber whose filter selects them and
// moves the head, in one critical section, so a subscriber joining now
// either gets an event from the tail or finds it in its own replay.
func (t *tail) deliver(evs []*threads.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range evs {
		if !t.head.Before(e.Cursor) {
			continue // read twice by overlapping wake-ups
		}
		e.Cursor.Tag = t.tag // this read's own copy, not yet shared
		t.head = e.Cursor
		for s := range t.subs {
			if !s.filter.Match(e) {
				continue
			}
			select {
			case s.live <- e:
				t.b.delivered.Add(1)
			default:
				// The subscriber is too slow: drop it rather than wait,
				// so a slow reader never slows the others or the writers.
				delete(t.subs, s)
				s.drop()
			}
		}
	}
}
