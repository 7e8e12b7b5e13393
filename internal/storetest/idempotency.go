package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/threads-server/threads"
)

var idempotencyTests = []leaf{
	{"RetryReturnsStored", testIdempotentRetry},
	{"Conflict", testIdempotentConflict},
	{"ConcurrentRetries", testIdempotentConcurrent},
}

func testIdempotentRetry(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c := createConversation(t, s, tenantA, "group-1", "chat")
	in := threads.Message{ID: "client-id-1", ConversationID: c.ID, AuthorID: "alice", Text: "hello"}
	first, err := s.CreateMessage(ctx, tenantA, &in)
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	for range 3 {
		retry := in
		again, err := s.CreateMessage(ctx, tenantA, &retry)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		diff(t, "retry result", first, again)
	}
	diff(t, "messages after retries", []*threads.Message{first}, listMessages(t, s, tenantA, c.ID, 0, 25))

	// The retries did not advance the conversation's counter.
	next, err := s.CreateMessage(ctx, tenantA, &threads.Message{ID: "client-id-2", ConversationID: c.ID, AuthorID: "alice", Text: "hello"})
	if err != nil {
		t.Fatalf("CreateMessage(second id): %v", err)
	}
	if next.Seq != 2 {
		t.Errorf("next message Seq %d, want 2", next.Seq)
	}
	if !next.SentAt.After(first.SentAt) {
		t.Errorf("next message SentAt %v is not after %v", next.SentAt, first.SentAt)
	}
}

func testIdempotentConflict(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c1 := createConversation(t, s, tenantA, "group-1", "one")
	c2 := createConversation(t, s, tenantA, "group-1", "two")
	stored, err := s.CreateMessage(ctx, tenantA, &threads.Message{ID: "client-id-1", ConversationID: c1.ID, AuthorID: "alice", Text: "hello"})
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	conflicts := []struct {
		name string
		m    threads.Message
	}{
		{"different text", threads.Message{ID: "client-id-1", ConversationID: c1.ID, AuthorID: "alice", Text: "hello!"}},
		{"different author", threads.Message{ID: "client-id-1", ConversationID: c1.ID, AuthorID: "bob", Text: "hello"}},
		{"different conversation", threads.Message{ID: "client-id-1", ConversationID: c2.ID, AuthorID: "alice", Text: "hello"}},
		{"everything different", threads.Message{ID: "client-id-1", ConversationID: c2.ID, AuthorID: "bob", Text: "bye"}},
		{"a conversation that does not exist", threads.Message{ID: "client-id-1", ConversationID: newID(), AuthorID: "alice", Text: "hello"}},
	}
	for _, tt := range conflicts {
		got, err := s.CreateMessage(ctx, tenantA, &tt.m)
		wantCode(t, tt.name, err, threads.ECONFLICT)
		if got != nil {
			t.Errorf("%s: returned %+v with the error, want nil", tt.name, got)
		}
	}
	diff(t, "conversation 1 after conflicts", []*threads.Message{stored}, listMessages(t, s, tenantA, c1.ID, 0, 25))
	if got := listMessages(t, s, tenantA, c2.ID, 0, 25); len(got) != 0 {
		t.Errorf("conversation 2 has %d messages after conflicts, want none", len(got))
	}
	next := createMessages(t, s, tenantA, c1.ID, 1)[0]
	if next.Seq != 2 {
		t.Errorf("next message Seq %d, want 2 (conflicts must not use a seq)", next.Seq)
	}
	if first := createMessages(t, s, tenantA, c2.ID, 1)[0]; first.Seq != 1 {
		t.Errorf("conversation 2's first message Seq %d, want 1 (conflicts there must not use a seq)", first.Seq)
	}
}

// testIdempotentConcurrent sends one message id from many goroutines at
// once: all get the same stored message and only one is stored.
func testIdempotentConcurrent(t *testing.T, s threads.Store) {
	const n = 16
	c := createConversation(t, s, tenantA, "group-1", "chat")
	results := make([]*threads.Message, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			m, err := s.CreateMessage(t.Context(), tenantA, &threads.Message{ID: "client-id-1", ConversationID: c.ID, AuthorID: "alice", Text: "once"})
			if err != nil {
				t.Errorf("goroutine %d: %v", i, err)
				return
			}
			results[i] = m
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, m := range results {
		diff(t, fmt.Sprintf("result of goroutine %d", i), results[0], m)
	}
	if results[0].Seq != 1 {
		t.Errorf("Seq %d, want 1", results[0].Seq)
	}
	diff(t, "stored messages", []*threads.Message{results[0]}, listMessages(t, s, tenantA, c.ID, 0, 25))
}
