package broker_test

import (
	"context"
	"sync"
	"time"

	"github.com/threads-server/threads"
)

// memStore is an in-memory threads.EventStore: one log per tenant,
// positions 1, 2, 3, … It lets the broker's tests append at any moment,
// fail reads on demand and lose wake-ups, which a real engine cannot be
// made to do on cue. The engines themselves pass internal/storetest.
type memStore struct {
	mu       sync.Mutex
	log      map[string][]*threads.Event
	fns      []func(string)
	failRead error
	quiet    bool // append without calling the callbacks (a lost wake-up)
	reads    int
	// afterRead, when set, runs after every read, outside the lock: a
	// commit landing just after a reader looked, the moment a resuming
	// subscriber could miss it.
	afterRead func(f threads.EventFilter)
	allReads  int // reads of the whole log: the tail's
	// pageBytes is the byte bound of a read, counted in message text
	// (threads.MaxEventPageBytes when 0).
	pageBytes int
}

func newMemStore() *memStore { return &memStore{log: map[string][]*threads.Event{}} }

// append adds an event to the tenant's log and wakes the callbacks, as a
// store does after commit.
func (m *memStore) append(tenant, group, conv, text string) *threads.Event {
	m.mu.Lock()
	n := int64(len(m.log[tenant]) + 1)
	e := threads.NewMessageEvent(group, &threads.Message{ID: text, ConversationID: conv, AuthorID: "a", Text: text, Seq: n})
	e.Cursor = threads.EventCursor{At: time.Now().UnixMicro(), Hi: n}
	m.log[tenant] = append(m.log[tenant], e)
	fns, quiet := m.fns, m.quiet
	m.mu.Unlock()
	if !quiet {
		for _, fn := range fns {
			fn(tenant)
		}
	}
	return e
}

// ReadEvents keeps the contract of the engines: at most limit events,
// cut once their texts reach the byte bound, more when cut either way.
// Each read returns copies, as a database does.
func (m *memStore) ReadEvents(ctx context.Context, tenant string, after threads.EventCursor, f threads.EventFilter, limit int) ([]*threads.Event, bool, error) {
	if m.afterRead != nil {
		defer m.afterRead(f)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if f.All() {
		m.allReads++
	}
	if m.failRead != nil {
		return nil, false, m.failRead
	}
	budget := m.pageBytes
	if budget == 0 {
		budget = threads.MaxEventPageBytes
	}
	var out []*threads.Event
	size := 0
	for _, e := range m.log[tenant] {
		if after.Before(e.Cursor) && f.Match(e) {
			if size >= budget {
				return out, true, nil
			}
			c := *e
			out = append(out, &c)
			size += len(e.Message.Text)
			if len(out) == limit {
				return out, true, nil // like the engines: whether or not more follow
			}
		}
	}
	return out, false, nil
}

func (m *memStore) EventHead(ctx context.Context, tenant string) (threads.EventCursor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return threads.EventCursor{At: time.Now().UnixMicro(), Hi: int64(len(m.log[tenant]))}, nil
}

func (m *memStore) OnEvents(fn func(string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fns = append(m.fns, fn)
}

func (m *memStore) PurgeEvents(ctx context.Context, before time.Time) error { return nil }

// tailReads returns how many times the whole log was read.
func (m *memStore) tailReads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.allReads
}

func (m *memStore) all(tenant string) []*threads.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*threads.Event(nil), m.log[tenant]...)
}
