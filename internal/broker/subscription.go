package broker

import (
	"context"
	"sync"
	"time"

	"github.com/threads-server/threads"
)

// ErrDropped ends a subscription that fell more than Config.Buffer events
// behind (threads.ErrSubscriberDropped).
var ErrDropped = threads.ErrSubscriberDropped

// Subscription is one client's stream: first the events after its
// cursor, read from the log, then live events, each exactly once and in
// log order. It is used by one goroutine.
type Subscription struct {
	b      *Broker
	t      *tail
	tenant string
	filter threads.EventFilter

	live     chan *threads.Event
	dropped  chan struct{}
	dropOnce sync.Once
	closed   bool

	last     threads.EventCursor // the position of the last event returned (or the start)
	joined   bool                // registered with the tail
	replayed bool                // the log has been read up to where the tail took over
	pending  []*threads.Event    // a page of the log not yet returned
	resync   *threads.Event      // returned first, when the cursor was too old
}

// Subscribe starts a subscription to the tenant's events that f selects,
// after the cursor: the zero cursor means "from now on"; a cursor older
// than the retention window yields one resync_required event and then
// follows from now on. Close it when done.
func (b *Broker) Subscribe(ctx context.Context, tenant string, f threads.EventFilter, after threads.EventCursor) (threads.Subscription, error) {
	t, err := b.acquire(ctx, tenant)
	if err != nil {
		return nil, err
	}
	s := &Subscription{b: b, t: t, tenant: tenant, filter: f,
		live: make(chan *threads.Event, b.cfg.Buffer), dropped: make(chan struct{}), last: after}
	tooOld := !after.IsZero() && after.Time().Before(b.cfg.Now().Add(-b.cfg.Retention))
	if !after.IsZero() && !tooOld {
		if tooOld, err = b.ahead(ctx, tenant, t, after); err != nil {
			b.release(t)
			return nil, err
		}
	}
	if after.IsZero() || tooOld {
		s.last, s.joined, s.replayed = t.join(s), true, true
	}
	if tooOld {
		s.resync = &threads.Event{Type: threads.EventResyncRequired, Cursor: s.Cursor()}
	}
	b.subscribers.Add(1)
	return s, nil
}

// ahead reports whether after is past the end of the tenant's log: not a
// position of this log at all (a database restored from a backup, a
// cursor from another deployment). Following from it would silently skip
// every event until the log caught up, so it is answered like a cursor too
// old: resync_required. The end of the log is asked for again a few times
// before concluding, because on PostgreSQL a replica may briefly know a
// lower end than the one that made the cursor.
func (b *Broker) ahead(ctx context.Context, tenant string, t *tail, after threads.EventCursor) (bool, error) {
	t.mu.Lock()
	head := t.head
	t.mu.Unlock()
	for try := 0; head.Before(after); try++ {
		if try == 3 {
			return true, nil
		}
		if try > 0 {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(time.Duration(try) * 20 * time.Millisecond):
			}
		}
		h, err := b.cfg.Store.EventHead(ctx, tenant)
		if err != nil {
			return false, err
		}
		head = h
	}
	return false, nil
}

// Cursor returns where a client should resume to miss nothing that this
// subscription has not yet returned: the last position returned, stamped
// now, so a quiet stream's cursor does not age out of the retention window,
// and tagged with the tenant, as are the cursors of the events Next
// returns (threads.ParseEventCursorFor refuses them for another tenant).
func (s *Subscription) Cursor() threads.EventCursor {
	c := s.last
	c.At = s.b.cfg.Now().UnixMicro()
	c.Tag = s.t.tag
	return c
}

// Next returns the next event, waiting for one if none is ready. It
// returns ErrDropped when the subscriber fell too far behind, the context's
// error when ctx ends, and store errors during replay.
func (s *Subscription) Next(ctx context.Context) (*threads.Event, error) {
	// An ended context wins over events in hand: a stream ended for a
	// cause (a revoked key) must not go on draining a queue that a slow
	// reader keeps from ever being empty.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e := s.resync; e != nil {
		s.resync = nil
		return e, nil
	}
	for !s.replayed {
		if len(s.pending) > 0 {
			return s.take(), nil
		}
		page, more, err := s.b.cfg.Store.ReadEvents(ctx, s.tenant, s.last, s.filter, s.b.cfg.Page)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			e.Cursor.Tag = s.t.tag
		}
		s.pending = page
		if !more {
			// The log is read to its end (a short page is not the end:
			// the store cuts pages by bytes too). Join the tail, then
			// read once more up to where it took over; its events are
			// deduplicated by position below.
			if s.joined {
				s.replayed = true
			} else {
				s.t.join(s)
				s.joined = true
			}
		}
	}
	if len(s.pending) > 0 {
		return s.take(), nil
	}
	for {
		var e *threads.Event
		select {
		case e = <-s.live:
		default:
			select {
			case e = <-s.live:
			case <-s.dropped:
				return nil, ErrDropped
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if s.last.Before(e.Cursor) {
			s.last = e.Cursor
			return e, nil
		}
	}
}

// Ready reports whether Next would return an event without waiting for
// one to be published: a resync notice, replayed events in hand, or live
// events queued. A stream writer uses it to send what is queued in one
// write and flush instead of one per event.
func (s *Subscription) Ready() bool {
	return s.resync != nil || len(s.pending) > 0 || len(s.live) > 0
}

func (s *Subscription) take() *threads.Event {
	e := s.pending[0]
	s.pending[0] = nil
	s.pending = s.pending[1:]
	s.last = e.Cursor
	return e
}

// drop is called by the tail, which has already forgotten s.
func (s *Subscription) drop() {
	s.dropOnce.Do(func() {
		s.b.dropped.Add(1)
		close(s.dropped)
	})
}

// Close ends the subscription.
func (s *Subscription) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.t.leave(s)
	s.b.release(s.t)
	s.b.subscribers.Add(-1)
}
