package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/threads-server/threads"
)

// The event log's behaviour. Cursors are compared only with Before and
// through their tokens: what Hi and Lo mean is each engine's business.
var eventTests = []leaf{
	{"OnePerChange", testEventPerChange},
	{"AfterCursor", testEventsAfterCursor},
	{"Paging", testEventPaging},
	{"Filters", testEventFilters},
	{"Tenant", testEventTenants},
	{"NoEventWithoutChange", testNoEventWithoutChange},
	{"Head", testEventHead},
	{"OnEvents", testOnEvents},
	{"Purge", testPurgeEvents},
	{"ConcurrentTail", testEventsConcurrentTail},
}

var all threads.EventFilter

func readEvents(t *testing.T, s threads.Store, tenant string, after threads.EventCursor, f threads.EventFilter, limit int) []*threads.Event {
	t.Helper()
	evs, err := s.ReadEvents(t.Context(), tenant, after, f, limit)
	if err != nil {
		t.Fatalf("ReadEvents(%s, after %+v, %+v, %d): %v", tenant, after, f, limit, err)
	}
	if len(evs) > limit {
		t.Fatalf("ReadEvents returned %d events, limit %d", len(evs), limit)
	}
	checkCursors(t, evs)
	return evs
}

// readAll pages through every event after the cursor that f selects.
func readAll(t *testing.T, s threads.Store, tenant string, after threads.EventCursor, f threads.EventFilter, limit int) []*threads.Event {
	t.Helper()
	var out []*threads.Event
	for page := 0; ; page++ {
		if page > 100000 {
			t.Fatal("ReadEvents paging does not end")
		}
		evs := readEvents(t, s, tenant, after, f, limit)
		out = append(out, evs...)
		if len(evs) < limit {
			checkCursors(t, out)
			return out
		}
		after = evs[len(evs)-1].Cursor
	}
}

// checkCursors fails unless the cursors strictly increase and survive
// the trip through a token, as they do through a client.
func checkCursors(t *testing.T, evs []*threads.Event) {
	t.Helper()
	for i, e := range evs {
		if got, err := threads.ParseEventCursor(e.Cursor.Token()); err != nil || got != e.Cursor {
			t.Fatalf("event %d: cursor %+v comes back from its token as %+v, %v", i, e.Cursor, got, err)
		}
		if i > 0 && !evs[i-1].Cursor.Before(e.Cursor) {
			t.Fatalf("event %d: cursor %+v is not after the previous %+v", i, e.Cursor, evs[i-1].Cursor)
		}
	}
}

func eventHead(t *testing.T, s threads.Store, tenant string) threads.EventCursor {
	t.Helper()
	h, err := s.EventHead(t.Context(), tenant)
	if err != nil {
		t.Fatalf("EventHead(%s): %v", tenant, err)
	}
	if h.IsZero() {
		t.Fatalf("EventHead(%s) is the zero cursor", tenant)
	}
	return h
}

// diffEvents compares events without their cursors: want is built with
// threads.NewConversationEvent and NewMessageEvent, which have none.
func diffEvents(t *testing.T, what string, want, got []*threads.Event) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpopts.IgnoreFields(threads.Event{}, "Cursor")); d != "" {
		t.Fatalf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func convEvent(typ string, c *threads.Conversation) *threads.Event {
	return threads.NewConversationEvent(typ, c)
}

// testEventPerChange makes each kind of change once: each writes exactly
// one event, of its type, with the object the method returned.
func testEventPerChange(t *testing.T, s threads.Store) {
	ctx := t.Context()
	start := time.Now()
	h := eventHead(t, s, tenantA)
	checkTime(t, "EventHead.At", h.Time(), start, time.Now())
	expect := func(what string, want *threads.Event) {
		t.Helper()
		got := readEvents(t, s, tenantA, h, all, 10)
		diffEvents(t, "events of "+what, []*threads.Event{want}, got)
		checkTime(t, what+" event time", got[0].Cursor.Time(), start, time.Now())
		h = got[0].Cursor
	}
	c := createConversation(t, s, tenantA, "group-1", "topic")
	expect("CreateConversation", convEvent(threads.EventConversationCreated, c))
	u, err := s.UpdateConversation(ctx, tenantA, c.ID, "new topic")
	if err != nil {
		t.Fatalf("UpdateConversation: %v", err)
	}
	expect("UpdateConversation", convEvent(threads.EventConversationUpdated, u))
	m, err := s.CreateMessage(ctx, tenantA, &threads.Message{ID: newID(), ConversationID: c.ID, AuthorID: "alice",
		Text: "h\u00e9llo \"quoted\" \\ </script>\n\t\U0001F600"})
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	expect("CreateMessage", threads.NewMessageEvent("group-1", m))
	if err := s.DeleteConversation(ctx, tenantA, c.ID); err != nil {
		t.Fatalf("DeleteConversation: %v", err)
	}
	// The conversation as it was when it was deleted.
	expect("DeleteConversation", convEvent(threads.EventConversationDeleted, u))

	// The log, oldest first, outlives the deleted conversation.
	diffEvents(t, "the whole log", []*threads.Event{
		convEvent(threads.EventConversationCreated, c),
		convEvent(threads.EventConversationUpdated, u),
		threads.NewMessageEvent("group-1", m),
		convEvent(threads.EventConversationDeleted, u),
	}, readEvents(t, s, tenantA, threads.EventCursor{}, all, 10))
}

// eventsOf creates conversations and messages in groups and returns the
// whole log they made.
func eventsOf(t *testing.T, s threads.Store, tenant string, groups ...string) ([]*threads.Conversation, []*threads.Event) {
	t.Helper()
	var cs []*threads.Conversation
	for i, g := range groups {
		cs = append(cs, createConversation(t, s, tenant, g, fmt.Sprintf("topic %d", i)))
	}
	for round := range 3 {
		for _, c := range cs {
			createMessages(t, s, tenant, c.ID, round%2+1)
		}
	}
	return cs, readAll(t, s, tenant, threads.EventCursor{}, all, 1000)
}

// testEventsAfterCursor resumes after every event in turn: each time, the
// events after it and no other.
func testEventsAfterCursor(t *testing.T, s threads.Store) {
	_, evs := eventsOf(t, s, tenantA, "group-1", "group-2")
	if len(evs) != 2+2*4 { // two conversations, four messages each
		t.Fatalf("%d events, want %d", len(evs), 2+2*4)
	}
	for i, e := range evs {
		diff(t, fmt.Sprintf("events after event %d", i), evs[i+1:], readEvents(t, s, tenantA, e.Cursor, all, 100))
		diff(t, fmt.Sprintf("events after event %d's token", i), evs[i+1:], readEvents(t, s, tenantA, mustParse(t, e.Cursor.Token()), all, 100))
	}
}

func mustParse(t *testing.T, token string) threads.EventCursor {
	t.Helper()
	c, err := threads.ParseEventCursor(token)
	if err != nil {
		t.Fatalf("ParseEventCursor(%q): %v", token, err)
	}
	return c
}

// testEventPaging reads the log a page at a time: every event once.
func testEventPaging(t *testing.T, s threads.Store) {
	_, evs := eventsOf(t, s, tenantA, "group-1", "group-1", "group-2")
	for _, limit := range []int{1, 2, 5, len(evs) - 1, len(evs), len(evs) + 1} {
		diff(t, fmt.Sprintf("paged by %d", limit), evs, readAll(t, s, tenantA, threads.EventCursor{}, all, limit))
	}
}

// testEventFilters checks each filter against threads.EventFilter.Match
// applied to the whole log, read at once and page by page.
func testEventFilters(t *testing.T, s threads.Store) {
	cs, _ := eventsOf(t, s, tenantA, "group-1", "group-1", "group-2", "group-3")
	if err := s.DeleteConversation(t.Context(), tenantA, cs[1].ID); err != nil {
		t.Fatalf("DeleteConversation: %v", err)
	}
	evs := readAll(t, s, tenantA, threads.EventCursor{}, all, 1000)
	for _, f := range []threads.EventFilter{
		{GroupID: "group-1"},
		{GroupID: "group-2"},
		{ConversationIDs: []string{cs[2].ID}},
		{ConversationIDs: []string{cs[1].ID, cs[3].ID}},
		{ConversationIDs: []string{cs[0].ID, cs[2].ID}, GroupID: "group-1"},
		{ConversationIDs: []string{cs[3].ID}, GroupID: "group-2"},
		{ConversationIDs: []string{newID()}},
		{ConversationIDs: []string{cs[2].ID, cs[2].ID}},
		{ConversationIDs: manyIDs(threads.MaxEventConversations-2, cs[0].ID, cs[3].ID), GroupID: "group-2"},
		{GroupID: "no-such-group"},
		{},
	} {
		var want []*threads.Event
		for _, e := range evs {
			if f.Match(e) {
				want = append(want, e)
			}
		}
		diff(t, fmt.Sprintf("filter %+v", f), want, readAll(t, s, tenantA, threads.EventCursor{}, f, 1000))
		diff(t, fmt.Sprintf("filter %+v, paged by 2", f), want, readAll(t, s, tenantA, threads.EventCursor{}, f, 2))
		if len(want) > 1 {
			diff(t, fmt.Sprintf("filter %+v after its first event", f), want[1:], readAll(t, s, tenantA, want[0].Cursor, f, 3))
		}
	}
}

// manyIDs returns n unknown conversation ids and then ids.
func manyIDs(n int, ids ...string) []string {
	out := make([]string, 0, n+len(ids))
	for range n {
		out = append(out, newID())
	}
	return append(out, ids...)
}

// testEventTenants: a tenant reads only its own log, and its head does not
// move with another tenant's writes.
func testEventTenants(t *testing.T, s threads.Store) {
	cs, evsA := eventsOf(t, s, tenantA, "group-1")
	if got := readAll(t, s, tenantB, threads.EventCursor{}, all, 100); len(got) != 0 {
		t.Fatalf("tenant B reads %d of A's events", len(got))
	}
	f := threads.EventFilter{ConversationIDs: []string{cs[0].ID}, GroupID: "group-1"}
	if got := readAll(t, s, tenantB, threads.EventCursor{}, f, 100); len(got) != 0 {
		t.Fatalf("tenant B reads %d of A's events by A's ids", len(got))
	}
	headA, headB := eventHead(t, s, tenantA), eventHead(t, s, tenantB)
	if got := readEvents(t, s, tenantB, headB, all, 100); len(got) != 0 {
		t.Fatalf("tenant B reads %d events after its head", len(got))
	}
	// B's conversation has A's group name: still only B's.
	cb := createConversation(t, s, tenantB, "group-1", "b")
	mb := createMessages(t, s, tenantB, cb.ID, 1)[0]
	wantB := []*threads.Event{convEvent(threads.EventConversationCreated, cb), threads.NewMessageEvent("group-1", mb)}
	diffEvents(t, "B's log", wantB, readAll(t, s, tenantB, threads.EventCursor{}, all, 100))
	diffEvents(t, "B's log after its head", wantB, readAll(t, s, tenantB, headB, all, 100))
	diffEvents(t, "B's group", wantB, readAll(t, s, tenantB, threads.EventCursor{}, f, 100))
	if got := readEvents(t, s, tenantA, headA, all, 100); len(got) != 0 {
		t.Fatalf("tenant A reads %d events after its head once B wrote", len(got))
	}
	diff(t, "A's log after B wrote", evsA, readAll(t, s, tenantA, threads.EventCursor{}, all, 100))
}

// testNoEventWithoutChange: calls that change nothing write nothing.
func testNoEventWithoutChange(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c := createConversation(t, s, tenantA, "group-1", "topic")
	in := threads.Message{ID: "client-id-1", ConversationID: c.ID, AuthorID: "alice", Text: "hello"}
	retry := in
	if _, err := s.CreateMessage(ctx, tenantA, &retry); err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	headA, headB := eventHead(t, s, tenantA), eventHead(t, s, tenantB)

	retry = in
	if _, err := s.CreateMessage(ctx, tenantA, &retry); err != nil {
		t.Fatalf("retry: %v", err)
	}
	conflict := in
	conflict.Text = "changed"
	_, err := s.CreateMessage(ctx, tenantA, &conflict)
	wantCode(t, "conflict", err, threads.ECONFLICT)
	_, err = s.CreateMessage(ctx, tenantA, &threads.Message{ID: newID(), ConversationID: newID(), AuthorID: "alice", Text: "x"})
	wantCode(t, "message to a missing conversation", err, threads.ENOTFOUND)
	retry = in
	_, err = s.CreateMessage(ctx, tenantB, &retry)
	wantCode(t, "A's message from tenant B", err, threads.ENOTFOUND)
	err = s.CreateConversation(ctx, tenantA, &threads.Conversation{ID: c.ID, GroupID: "group-2", Topic: "dup"})
	wantCode(t, "duplicate conversation", err, threads.ECONFLICT)
	_, err = s.UpdateConversation(ctx, tenantA, newID(), "topic")
	wantCode(t, "update of a missing conversation", err, threads.ENOTFOUND)
	_, err = s.UpdateConversation(ctx, tenantB, c.ID, "topic")
	wantCode(t, "update from tenant B", err, threads.ENOTFOUND)
	wantCode(t, "delete of a missing conversation", s.DeleteConversation(ctx, tenantA, newID()), threads.ENOTFOUND)
	wantCode(t, "delete from tenant B", s.DeleteConversation(ctx, tenantB, c.ID), threads.ENOTFOUND)

	for tenant, h := range map[string]threads.EventCursor{tenantA: headA, tenantB: headB} {
		for _, e := range readEvents(t, s, tenant, h, all, 100) {
			t.Errorf("%s: a call that changed nothing wrote %s %+v %+v", tenant, e.Type, e.Conversation, e.Message)
		}
	}
}
