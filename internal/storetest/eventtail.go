package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/threads-server/threads"
)

// The event log seen live: the head, the commit callbacks, retention and
// readers that tail the log while it grows.

// testEventHead: reading after the head returns exactly what was written
// after it was taken, on an empty tenant and on a busy one.
func testEventHead(t *testing.T, s threads.Store) {
	start := time.Now()
	h := eventHead(t, s, tenantA)
	checkTime(t, "EventHead.At", h.Time(), start, time.Now())
	if got := mustParse(t, h.Token()); got != h {
		t.Fatalf("head %+v comes back from its token as %+v", h, got)
	}
	if got := readEvents(t, s, tenantA, h, all, 10); len(got) != 0 {
		t.Fatalf("%d events after the head of an empty log", len(got))
	}
	c := createConversation(t, s, tenantA, "group-1", "topic")
	m := createMessages(t, s, tenantA, c.ID, 1)[0]
	diffEvents(t, "events after the first head", []*threads.Event{
		convEvent(threads.EventConversationCreated, c), threads.NewMessageEvent("group-1", m),
	}, readEvents(t, s, tenantA, h, all, 10))

	h2 := eventHead(t, s, tenantA)
	if got := readEvents(t, s, tenantA, h2, all, 10); len(got) != 0 {
		t.Fatalf("%d events after the head", len(got))
	}
	m2 := createMessages(t, s, tenantA, c.ID, 1)[0]
	diffEvents(t, "events after the second head", []*threads.Event{threads.NewMessageEvent("group-1", m2)},
		readEvents(t, s, tenantA, h2, all, 10))
	if got := readEvents(t, s, tenantA, h, all, 10); len(got) != 3 {
		t.Fatalf("%d events after the first head, want 3", len(got))
	}
}

// testOnEvents: the callback names the tenant, and comes after the
// commit: the event can be read as soon as it is called.
func testOnEvents(t *testing.T, s threads.Store) {
	got := make(chan string, 100)
	s.OnEvents(func(tenant string) {
		select {
		case got <- tenant:
		default: // fn must not block
		}
	})
	for _, tenant := range []string{tenantA, tenantB} {
		h := eventHead(t, s, tenant)
		done := make(chan error, 1)
		go func() {
			done <- s.CreateConversation(context.WithoutCancel(t.Context()), tenant, &threads.Conversation{ID: newID(), GroupID: "g", Topic: "t"})
		}()
		waitFor(t, got, tenant)
		if evs := readEvents(t, s, tenant, h, all, 10); len(evs) != 1 {
			t.Fatalf("when OnEvents was called for %s, %d new events could be read, want 1", tenant, len(evs))
		}
		if err := <-done; err != nil {
			t.Fatalf("CreateConversation(%s): %v", tenant, err)
		}
	}
}

// waitFor waits for the callback to name tenant; other names ("" for "any
// tenant") may come first.
func waitFor(t *testing.T, got <-chan string, tenant string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case name := <-got:
			if name == tenant {
				return
			}
		case <-deadline:
			t.Fatalf("OnEvents was not called for %s within 10s", tenant)
		}
	}
}

// testPurgeEvents removes the events made before a time, in every tenant,
// more than one batch of them; the rest stay, and positions go on after
// the purged ones.
func testPurgeEvents(t *testing.T, s threads.Store) {
	ctx := t.Context()
	old := createConversation(t, s, tenantA, "group-1", "old")
	createMessages(t, s, tenantA, old.ID, 1100)
	createConversation(t, s, tenantB, "group-1", "old")
	// Time passing is the point: the old events must be older than the
	// cutoff taken below, and the new ones newer.
	time.Sleep(20 * time.Millisecond)
	c := createConversation(t, s, tenantA, "group-1", "new")
	createMessages(t, s, tenantA, c.ID, 2)

	evs := readAll(t, s, tenantA, threads.EventCursor{}, all, 1000)
	kept := evs[len(evs)-3:]
	boundary := kept[0].Cursor.Time()
	oldB := readAll(t, s, tenantB, threads.EventCursor{}, all, 10)
	if last := evs[len(evs)-4].Cursor; !last.Time().Before(boundary) || !oldB[0].Cursor.Time().Before(boundary) {
		t.Fatalf("events 20ms apart have times %v, %v and %v", last.Time(), oldB[0].Cursor.Time(), boundary)
	}
	if err := s.PurgeEvents(ctx, boundary); err != nil {
		t.Fatalf("PurgeEvents: %v", err)
	}
	diff(t, "A's log after the purge", kept, readAll(t, s, tenantA, threads.EventCursor{}, all, 1000))
	diff(t, "A's log after the purge, from an old cursor", kept, readAll(t, s, tenantA, evs[5].Cursor, all, 1000))
	if got := readAll(t, s, tenantB, threads.EventCursor{}, all, 10); len(got) != 0 {
		t.Fatalf("B's log after the purge has %d events, want 0", len(got))
	}

	last := kept[len(kept)-1].Cursor
	if err := s.PurgeEvents(ctx, last.Time().Add(time.Hour)); err != nil {
		t.Fatalf("PurgeEvents(everything): %v", err)
	}
	if got := readAll(t, s, tenantA, threads.EventCursor{}, all, 10); len(got) != 0 {
		t.Fatalf("%d events after purging everything", len(got))
	}
	h := eventHead(t, s, tenantA)
	createConversation(t, s, tenantA, "group-1", "after")
	now := readAll(t, s, tenantA, threads.EventCursor{}, all, 10)
	if len(now) != 1 || !last.Before(now[0].Cursor) {
		t.Fatalf("after a purge the new event is at %+v; want one event after the purged %+v", now, last)
	}
	diff(t, "events after the last purged one", now, readAll(t, s, tenantA, last, all, 10))
	diff(t, "events after the head", now, readAll(t, s, tenantA, h, all, 10))
}

// testEventsConcurrentTail has writers post messages into several
// conversations while readers tail the log, each from its last cursor.
// Each reader must see every event it selects exactly once, in the order
// of a final read, however the reads and the commits interleave.
func testEventsConcurrentTail(t *testing.T, s threads.Store) {
	const writers, each = 6, 25
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cs := []*threads.Conversation{
		createConversation(t, s, tenantA, "group-1", "one"),
		createConversation(t, s, tenantA, "group-1", "two"),
		createConversation(t, s, tenantA, "group-2", "three"),
	}
	start := eventHead(t, s, tenantA)
	filters := []threads.EventFilter{all, {ConversationIDs: []string{cs[0].ID}}, {GroupID: "group-1"}}
	seen := make([][]*threads.Event, len(filters))
	errs := make([]error, writers+len(filters))
	written := make(chan struct{})
	var readers, ws sync.WaitGroup
	for i, f := range filters {
		readers.Go(func() {
			after := start
			idle := time.NewTicker(time.Millisecond) // paces reads of a log not yet written
			defer idle.Stop()
			for {
				select {
				case <-written:
					// Everything is committed: one more empty read is the end.
					evs, _, err := s.ReadEvents(ctx, tenantA, after, f, 7)
					if err != nil || len(evs) == 0 {
						errs[writers+i] = err
						return
					}
					seen[i], after = append(seen[i], evs...), evs[len(evs)-1].Cursor
					continue
				default:
				}
				evs, _, err := s.ReadEvents(ctx, tenantA, after, f, 7)
				if err != nil {
					errs[writers+i] = err
					return
				}
				if len(evs) == 0 {
					<-idle.C
					continue
				}
				seen[i], after = append(seen[i], evs...), evs[len(evs)-1].Cursor
			}
		})
	}
	sent := make([][]*threads.Message, writers)
	for w := range writers {
		ws.Go(func() {
			for j := range each {
				m, err := s.CreateMessage(ctx, tenantA, &threads.Message{ID: newID(), ConversationID: cs[(w+j)%len(cs)].ID,
					AuthorID: fmt.Sprintf("writer-%d", w), Text: fmt.Sprintf("message %d", j)})
				if err != nil {
					errs[w] = err
					return
				}
				sent[w] = append(sent[w], m)
			}
		})
	}
	ws.Wait()
	close(written)
	readers.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	final := readAll(t, s, tenantA, start, all, 1000)
	byID := make(map[string]*threads.Event, len(final))
	for _, e := range final {
		if e.Message == nil {
			t.Fatalf("event %+v has no message", e)
		}
		byID[e.Message.ID] = e
	}
	groups := map[string]string{}
	for _, c := range cs {
		groups[c.ID] = c.GroupID
	}
	for w := range writers {
		for _, m := range sent[w] {
			want := threads.NewMessageEvent(groups[m.ConversationID], m)
			diffEvents(t, "event of message "+m.ID, []*threads.Event{want}, []*threads.Event{byID[m.ID]})
		}
	}
	if len(final) != writers*each {
		t.Fatalf("%d events, want %d", len(final), writers*each)
	}
	// Within a conversation the log is in seq order: a client applying
	// events as they come shows messages in their order, whatever the
	// engine's positions are made of.
	lastSeq := map[string]int64{}
	for _, e := range final {
		if m := e.Message; m.Seq <= lastSeq[m.ConversationID] {
			t.Errorf("conversation %s: message seq %d comes after seq %d in the log", m.ConversationID, m.Seq, lastSeq[m.ConversationID])
		}
		lastSeq[e.Message.ConversationID] = e.Message.Seq
	}
	for i, f := range filters {
		checkCursors(t, seen[i])
		diff(t, fmt.Sprintf("events a reader of %+v saw, against a final read", f), readAll(t, s, tenantA, start, f, 1000), seen[i])
	}
}
