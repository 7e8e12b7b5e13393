package storetest

import (
	"fmt"
	"strings"
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
	{"PageBytes", testEventPageBytes},
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
	evs, _ := readPage(t, s, tenant, after, f, limit)
	return evs
}

// readPage is one ReadEvents call, its answer checked against the
// contract: at most limit events, in order, and at least one when it says
// more may follow (a reader paging on "more" must make progress).
func readPage(t *testing.T, s threads.Store, tenant string, after threads.EventCursor, f threads.EventFilter, limit int) ([]*threads.Event, bool) {
	t.Helper()
	evs, more, err := s.ReadEvents(t.Context(), tenant, after, f, limit)
	if err != nil {
		t.Fatalf("ReadEvents(%s, after %+v, %+v, %d): %v", tenant, after, f, limit, err)
	}
	if len(evs) > limit {
		t.Fatalf("ReadEvents returned %d events, limit %d", len(evs), limit)
	}
	if more && len(evs) == 0 {
		t.Fatalf("ReadEvents(%s, after %+v, %+v, %d) returned no event and more", tenant, after, f, limit)
	}
	checkCursors(t, evs)
	return evs, more
}

// readAll pages through every event after the cursor that f selects.
func readAll(t *testing.T, s threads.Store, tenant string, after threads.EventCursor, f threads.EventFilter, limit int) []*threads.Event {
	t.Helper()
	var out []*threads.Event
	for page := 0; ; page++ {
		if page > 100000 {
			t.Fatal("ReadEvents paging does not end")
		}
		evs, more := readPage(t, s, tenant, after, f, limit)
		out = append(out, evs...)
		if !more {
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

// testEventPageBytes: a page is bounded by bytes as well as by count. The
// log has runs of messages near threads.MaxTextBytes (tabs, so their JSON
// is twice that) between runs of small ones, in two groups. Every page,
// read whole and filtered, holds less than threads.MaxEventPageBytes of
// payload before its last event; one cut short of its limit says more and
// is not cut early; and paging on "more" reads every selected event once,
// in order. The payload is measured as Event.MarshalData, which is what
// SQLite stores; PostgreSQL returns its jsonb a few bytes longer per event
// (a space after each colon and comma), never shorter for these texts.
func testEventPageBytes(t *testing.T, s threads.Store) {
	ctx := t.Context()
	cs := []*threads.Conversation{
		createConversation(t, s, tenantA, "group-1", "one"),
		createConversation(t, s, tenantA, "group-2", "two"),
	}
	want := []*threads.Event{convEvent(threads.EventConversationCreated, cs[0]), convEvent(threads.EventConversationCreated, cs[1])}
	n := 0
	post := func(count int, big bool) {
		for range count {
			text := fmt.Sprintf("message %d", n)
			if big {
				text += strings.Repeat("\t", threads.MaxTextBytes-len(text))
			}
			c := cs[n%2]
			m, err := s.CreateMessage(ctx, tenantA, &threads.Message{ID: newID(), ConversationID: c.ID, AuthorID: "alice", Text: text})
			if err != nil {
				t.Fatalf("CreateMessage %d: %v", n, err)
			}
			want = append(want, threads.NewMessageEvent(c.GroupID, m))
			n++
		}
	}
	for range 3 {
		post(20, false)
		post(20, true)
	}
	post(3, false)

	const slack = 64 // per event: what PostgreSQL's jsonb text may add
	for _, tc := range []struct {
		f     threads.EventFilter
		limit int
	}{
		{all, 500},
		{all, 30},
		{threads.EventFilter{GroupID: "group-1"}, 500},
		{threads.EventFilter{ConversationIDs: []string{cs[1].ID}}, 500},
		{threads.EventFilter{ConversationIDs: []string{cs[1].ID}, GroupID: "group-1"}, 500},
		{threads.EventFilter{GroupID: "group-2"}, 10},
	} {
		what := fmt.Sprintf("filter %+v, limit %d", tc.f, tc.limit)
		var got []*threads.Event
		after, cut := threads.EventCursor{}, 0
		for pages := 0; ; pages++ {
			if pages > len(want) {
				t.Fatalf("%s: paging does not end", what)
			}
			page, more := readPage(t, s, tenantA, after, tc.f, tc.limit)
			size := 0
			for i, e := range page {
				data, err := e.MarshalData()
				if err != nil {
					t.Fatalf("MarshalData: %v", err)
				}
				if i == len(page)-1 && more && len(page) < tc.limit {
					if size+len(data)+slack*len(page) < threads.MaxEventPageBytes {
						t.Fatalf("%s: page %d says more but stops at %d events, %d bytes, %d short of the bound and of its limit",
							what, pages, len(page), size+len(data), threads.MaxEventPageBytes-size-len(data))
					}
					cut++
				}
				if size += len(data); size >= threads.MaxEventPageBytes && i < len(page)-1 {
					t.Fatalf("%s: page %d goes on after %d of its %d events with %d bytes of payload, bound %d",
						what, pages, i+1, len(page), size, threads.MaxEventPageBytes)
				}
			}
			got = append(got, page...)
			if !more {
				break
			}
			after = page[len(page)-1].Cursor
		}
		checkCursors(t, got)
		var selected []*threads.Event
		for _, e := range want {
			if tc.f.Match(e) {
				selected = append(selected, e)
			}
		}
		// Compared by identity first: a diff of the texts would be megabytes.
		if d := cmp.Diff(eventKeys(selected), eventKeys(got)); d != "" {
			t.Fatalf("%s: the pages are not the log (-want +got):\n%s", what, d)
		}
		for i := range selected {
			if !cmp.Equal(selected[i], got[i], cmpopts.IgnoreFields(threads.Event{}, "Cursor")) {
				t.Fatalf("%s: event %d differs from what was written", what, i)
			}
		}
		if cut == 0 {
			t.Fatalf("%s: no page was cut by bytes; the test no longer tests the bound", what)
		}
	}
}

// eventKeys names each event by its type and object.
func eventKeys(evs []*threads.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		switch {
		case e.Message != nil:
			out[i] = fmt.Sprintf("%s %s %s seq %d, %d bytes", e.Type, e.ConversationID, e.Message.ID, e.Message.Seq, len(e.Message.Text))
		default:
			out[i] = e.Type + " " + e.ConversationID
		}
	}
	return out
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
