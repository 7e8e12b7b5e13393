package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/threads-server/threads"
)

var messageTests = []leaf{
	{"CreateAssignsSeqAndSentAt", testCreateMessage},
	{"ListNewestFirst", testListMessages},
	{"SentBeforeAndLimit", testListMessagesSentBefore},
	{"UnknownConversation", testMessagesUnknownConversation},
	{"EmptyConversation", testListMessagesEmpty},
	{"ConcurrentWriters", testConcurrentWriters},
}

func testCreateMessage(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c := createConversation(t, s, tenantA, "group-1", "chat")
	before := time.Now()
	var created []*threads.Message
	for i := range 3 {
		in := threads.Message{ID: newID(), ConversationID: c.ID, AuthorID: "alice", Text: fmt.Sprintf("hello %d", i)}
		m, err := s.CreateMessage(ctx, tenantA, &in)
		if err != nil {
			t.Fatalf("CreateMessage %d: %v", i, err)
		}
		checkTime(t, fmt.Sprintf("message %d SentAt", i), m.SentAt, before, time.Now())
		want := in
		want.Seq = int64(i + 1)
		want.SentAt = m.SentAt
		diff(t, fmt.Sprintf("message %d", i), &want, m)
		if i > 0 && !m.SentAt.After(created[i-1].SentAt) {
			t.Errorf("message %d SentAt %s is not after message %d's %s", i, threads.FormatTime(m.SentAt), i-1, threads.FormatTime(created[i-1].SentAt))
		}
		created = append(created, m)
	}
	diff(t, "ListMessages", reversed(created), listMessages(t, s, tenantA, c.ID, 0, 25))
}

func testListMessages(t *testing.T, s threads.Store) {
	c1 := createConversation(t, s, tenantA, "group-1", "one")
	c2 := createConversation(t, s, tenantA, "group-1", "two")
	m1 := createMessages(t, s, tenantA, c1.ID, 4)
	m2 := createMessages(t, s, tenantA, c2.ID, 3)
	m1 = append(m1, createMessages(t, s, tenantA, c1.ID, 2)...)

	diff(t, "conversation 1", reversed(m1), listMessages(t, s, tenantA, c1.ID, 0, 25))
	diff(t, "conversation 2", reversed(m2), listMessages(t, s, tenantA, c2.ID, 0, 25))
	for i, m := range m1 {
		if m.Seq != int64(i+1) {
			t.Errorf("conversation 1 message %d: Seq %d, want %d (seq is per conversation)", i, m.Seq, i+1)
		}
	}
}

func testListMessagesSentBefore(t *testing.T, s threads.Store) {
	c := createConversation(t, s, tenantA, "group-1", "chat")
	m := createMessages(t, s, tenantA, c.ID, 10)
	us := func(i int) int64 { return threads.Micros(m[i].SentAt) }
	newestFirst := func(from, to int) []*threads.Message { return reversed(m[from : to+1]) }

	tests := []struct {
		name   string
		before int64
		limit  int
		want   []*threads.Message
	}{
		{"newest, limit 3", 0, 3, newestFirst(7, 9)},
		{"newest, limit 1", 0, 1, newestFirst(9, 9)},
		{"newest, limit above count", 0, 200, newestFirst(0, 9)},
		{"before 5 is exclusive", us(5), 25, newestFirst(0, 4)},
		{"before 5, limit 2", us(5), 2, newestFirst(3, 4)},
		{"before the newest", us(9), 25, newestFirst(0, 8)},
		{"just after the newest", us(9) + 1, 25, newestFirst(0, 9)},
		{"just after message 4", us(4) + 1, 3, newestFirst(2, 4)},
		{"before the oldest", us(0), 25, nil},
		{"before 1970", 1, 25, nil},
	}
	for _, tt := range tests {
		got := listMessages(t, s, tenantA, c.ID, tt.before, tt.limit)
		if len(tt.want) == 0 {
			if len(got) != 0 {
				t.Errorf("%s: got %d messages, want none", tt.name, len(got))
			}
			continue
		}
		if d := diffOf(tt.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
}

func testMessagesUnknownConversation(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c := createConversation(t, s, tenantA, "group-1", "exists")
	createMessages(t, s, tenantA, c.ID, 2)
	id := newID()
	_, err := s.ListMessages(ctx, tenantA, threads.MessageFilter{ConversationID: id, Limit: 25})
	wantCode(t, "ListMessages(unknown)", err, threads.ENOTFOUND)
	_, err = s.CreateMessage(ctx, tenantA, &threads.Message{ID: newID(), ConversationID: id, AuthorID: "alice", Text: "hi"})
	wantCode(t, "CreateMessage(unknown)", err, threads.ENOTFOUND)
	if n := len(listMessages(t, s, tenantA, c.ID, 0, 25)); n != 2 {
		t.Errorf("existing conversation has %d messages, want 2", n)
	}
}

func testListMessagesEmpty(t *testing.T, s threads.Store) {
	c := createConversation(t, s, tenantA, "group-1", "quiet")
	if got := listMessages(t, s, tenantA, c.ID, 0, 25); len(got) != 0 {
		t.Errorf("empty conversation: %d messages, want none", len(got))
	}
	if got := listMessages(t, s, tenantA, c.ID, threads.Micros(time.Now()), 25); len(got) != 0 {
		t.Errorf("empty conversation, sent before now: %d messages, want none", len(got))
	}
}

// testConcurrentWriters posts from many goroutines into one conversation,
// then pages back through it: each message comes back exactly once, with
// strictly decreasing SentAt and Seq counting down from the total with no
// gap.
func testConcurrentWriters(t *testing.T, s threads.Store) {
	const writers, each, limit = 8, 50, 7
	c := createConversation(t, s, tenantA, "group-1", "busy")
	created := make([][]*threads.Message, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				m, err := s.CreateMessage(t.Context(), tenantA, &threads.Message{
					ID: newID(), ConversationID: c.ID, AuthorID: fmt.Sprintf("writer-%d", w), Text: fmt.Sprintf("message %d", i),
				})
				if err != nil {
					t.Errorf("writer %d, message %d: %v", w, i, err)
					return
				}
				created[w] = append(created[w], m)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	byID := make(map[string]*threads.Message, writers*each)
	for w, ms := range created {
		for i, m := range ms {
			byID[m.ID] = m
			if i > 0 && (m.Seq <= ms[i-1].Seq || !m.SentAt.After(ms[i-1].SentAt)) {
				t.Errorf("writer %d: message %d (seq %d) does not follow message %d (seq %d)", w, i, m.Seq, i-1, ms[i-1].Seq)
			}
		}
	}
	got := pageMessages(t, s, tenantA, c.ID, limit)
	if len(got) != writers*each {
		t.Fatalf("paging returned %d messages, want %d", len(got), writers*each)
	}
	seen := make(map[string]bool, len(got))
	for i, m := range got {
		if seen[m.ID] {
			t.Fatalf("message %s returned twice", m.ID)
		}
		seen[m.ID] = true
		if d := diffOf(byID[m.ID], m); d != "" {
			t.Errorf("message %s differs from what CreateMessage returned (-created +listed):\n%s", m.ID, d)
		}
		if want := int64(len(got) - i); m.Seq != want {
			t.Errorf("position %d: Seq %d, want %d", i, m.Seq, want)
		}
		if i > 0 && !m.SentAt.Before(got[i-1].SentAt) {
			t.Errorf("position %d: SentAt %s is not before %s", i, threads.FormatTime(m.SentAt), threads.FormatTime(got[i-1].SentAt))
		}
	}
}
