package threads

import "context"

// Events is the live-event service: it follows each tenant's durable log
// (EventStore) and hands its events to subscribers, replayed from a
// cursor and then live, each once and in order. The server holds this
// interface, not the broker that implements it (internal/broker), so that
// another consumer of the log (webhooks) or another implementation (one
// sharded by tenant) can stand behind it.
type Events interface {
	// Subscribe starts a subscription to the tenant's events that f
	// selects, after the cursor: the zero cursor means "from now on"; a
	// cursor older than the retention window, or past the end of the log,
	// yields one resync_required event first.
	Subscribe(ctx context.Context, tenant string, f EventFilter, after EventCursor) (Subscription, error)
	// Stats returns the service's counters, for metrics.
	Stats() EventStats
}

// Subscription is one subscriber's stream of events. It is used by one
// goroutine.
type Subscription interface {
	// Next returns the next event, waiting for one. It returns
	// ErrSubscriberDropped when the subscriber fell too far behind, and
	// ctx's error when ctx ends (even with events in hand).
	Next(ctx context.Context) (*Event, error)
	// Ready reports whether Next would return without waiting.
	Ready() bool
	// Cursor is where to resume to miss nothing Next has not returned.
	Cursor() EventCursor
	// Close ends the subscription.
	Close()
}

// EventStats are the live-event service's counters.
type EventStats struct {
	Subscribers, Dropped, Delivered int64
}

// ErrSubscriberDropped ends a subscription that fell too far behind a
// busy log. Nothing is lost: the client resumes from the last cursor it
// received.
var ErrSubscriberDropped = Errorf(EUNAVAILABLE, "the subscriber fell too far behind; resume from the last cursor received")
