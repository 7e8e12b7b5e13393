// Package storetest is the one behaviour suite every threads.Store must
// pass. It uses nothing but the threads.Store interface, so it runs
// unchanged against every engine (SQLite today, PostgreSQL later):
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) threads.Store {
//			s := open a fresh, empty store
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Every leaf test opens its own store and runs in parallel with the others.
package storetest

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/threads-server/threads"
)

// Opener returns a fresh, empty store whose Close is registered with
// t.Cleanup.
type Opener func(t *testing.T) threads.Store

// Two tenants; every test acts as tenantA unless it checks isolation.
const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
)

// clockSkew is how far a store's clock may be from the test's (a database
// server may stamp rows with its own clock).
const clockSkew = time.Minute

type leaf struct {
	name string
	fn   func(t *testing.T, s threads.Store)
}

// Run runs the suite. open must return a fresh, empty store each call.
func Run(t *testing.T, open func(t *testing.T) threads.Store) {
	groups := []struct {
		name   string
		leaves []leaf
	}{
		{"Conversation", conversationTests},
		{"ListConversations", listConversationTests},
		{"Message", messageTests},
		{"Idempotency", idempotencyTests},
		{"RecentMessages", recentTests},
		{"AnswerBounds", boundTests},
		{"Delete", deleteTests},
		{"Tenant", tenantTests},
		{"Key", keyTests},
		{"Event", eventTests},
		{"Ping", []leaf{{"Nil", testPing}}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, l := range g.leaves {
				t.Run(l.name, func(t *testing.T) {
					t.Parallel()
					l.fn(t, open(t))
				})
			}
		})
	}
}

func testPing(t *testing.T, s threads.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping = %v, want nil", err)
	}
}

// newID returns a caller-made id, as the server makes them.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// wantCode fails unless err carries the domain error code want.
func wantCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if got := threads.ErrorCode(err); got != want {
		t.Fatalf("%s: error code %q (err = %v), want %q", what, got, err, want)
	}
}

// checkTime fails unless ts is a store-made timestamp: UTC, whole
// microseconds, and taken between before and after (give or take
// clockSkew).
func checkTime(t *testing.T, what string, ts, before, after time.Time) {
	t.Helper()
	if ts.IsZero() {
		t.Fatalf("%s is zero", what)
	}
	if ts.Location() != time.UTC {
		t.Errorf("%s = %v has location %v, want UTC", what, ts, ts.Location())
	}
	if ts.Nanosecond()%1000 != 0 {
		t.Errorf("%s = %v is finer than a microsecond", what, ts)
	}
	if ts.Before(before.Add(-clockSkew)) || ts.After(after.Add(clockSkew)) {
		t.Errorf("%s = %v, want between %v and %v", what, ts, before, after)
	}
}

func createConversation(t *testing.T, s threads.Store, tenant, group, topic string) *threads.Conversation {
	t.Helper()
	c := &threads.Conversation{ID: newID(), GroupID: group, Topic: topic}
	if err := s.CreateConversation(t.Context(), tenant, c); err != nil {
		t.Fatalf("CreateConversation(%s, %s): %v", tenant, group, err)
	}
	return c
}

// createMessages posts n messages to a conversation, one after another,
// and returns what the store returned, oldest first.
func createMessages(t *testing.T, s threads.Store, tenant, conversationID string, n int) []*threads.Message {
	t.Helper()
	out := make([]*threads.Message, 0, n)
	for i := range n {
		m, err := s.CreateMessage(t.Context(), tenant, &threads.Message{
			ID:             newID(),
			ConversationID: conversationID,
			AuthorID:       fmt.Sprintf("author-%d", i%3),
			Text:           fmt.Sprintf("message %d", i),
		})
		if err != nil {
			t.Fatalf("CreateMessage %d: %v", i, err)
		}
		out = append(out, m)
	}
	return out
}

func listMessages(t *testing.T, s threads.Store, tenant, conversationID string, before int64, limit int) []*threads.Message {
	t.Helper()
	ms, err := s.ListMessages(t.Context(), tenant, threads.MessageFilter{ConversationID: conversationID, SentBefore: before, Limit: limit})
	if err != nil {
		t.Fatalf("ListMessages(%s, before %d, limit %d): %v", conversationID, before, limit, err)
	}
	return ms
}

// pageMessages walks a conversation's whole history, newest first, limit
// messages at a time, continuing each page before the last one's SentAt.
func pageMessages(t *testing.T, s threads.Store, tenant, conversationID string, limit int) []*threads.Message {
	t.Helper()
	var all []*threads.Message
	var before int64
	for page := 0; ; page++ {
		if page > 100000 {
			t.Fatal("ListMessages paging does not end")
		}
		ms := listMessages(t, s, tenant, conversationID, before, limit)
		if len(ms) > limit {
			t.Fatalf("page %d has %d messages, limit %d", page, len(ms), limit)
		}
		all = append(all, ms...)
		if len(ms) < limit {
			return all
		}
		before = threads.Micros(ms[len(ms)-1].SentAt)
	}
}

func reversed[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// newestFirst sorts conversations the way ListConversations must: by
// CreatedAt, then ID, both descending.
func newestFirst(cs []*threads.Conversation) []*threads.Conversation {
	out := append([]*threads.Conversation(nil), cs...)
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func diffOf(want, got any) string { return cmp.Diff(want, got) }
