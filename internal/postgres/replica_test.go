package postgres_test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// TestReplicas runs two servers, each with its own store (its own pool),
// on one database, as two replicas of one deployment would: keys,
// ordering and idempotency must hold across them because they rest on the
// database, not on either process.
func TestReplicas(t *testing.T) {
	url := pgtest.SchemaURL(t)
	storeA, storeB := pgtest.OpenURL(t, url), pgtest.OpenURL(t, url)
	// The clients' timeout only guards against hangs.
	a, b := apitest.Serve(t, storeA).WithTimeout(30*time.Second), apitest.Serve(t, storeB).WithTimeout(30*time.Second)
	replicas := []*apitest.Client{a, b}
	names := []string{"A", "B"}
	ctx := t.Context()

	// A key created through replica A is accepted by both.
	k, key := apitest.CreateKey(t, storeA, "acme", false)
	for i, r := range replicas {
		res := r.MustPost(t, "ListConversations", key, map[string]any{"group_id": "g1"})
		if res.Status != http.StatusOK {
			t.Fatalf("replica %s refuses a key created on A: status %d: %s", names[i], res.Status, res.Raw)
		}
	}

	conv := apitest.MustField[apitest.Conversation](t, a.MustPost(t, "CreateConversation", key,
		map[string]any{"group_id": "g1", "topic": "replicas"}).OK(t), "conversation")

	// 8 concurrent writers, 4 through each replica, into one conversation.
	const writers, perWriter = 8, 40
	const total = writers * perWriter
	acked := make([][]apitest.Message, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := replicas[w%2]
			<-start
			for i := range perWriter {
				res, err := r.Post("CreateMessage", key, map[string]any{
					"conversation_id": conv.ID,
					"author_id":       fmt.Sprintf("writer-%d", w),
					"text":            fmt.Sprintf("writer %d message %d", w, i),
				})
				if err != nil {
					t.Errorf("writer %d (replica %s) message %d: %v", w, names[w%2], i, err)
					return
				}
				if res.Status != http.StatusOK {
					t.Errorf("writer %d (replica %s) message %d: status %d: %s", w, names[w%2], i, res.Status, res.Raw)
					return
				}
				m, err := apitest.Field[apitest.Message](res, "message")
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				acked[w] = append(acked[w], m)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Each writer's own messages, sent one after another, got increasing
	// seq and sent_at.
	ackedByID := map[string]apitest.Message{}
	for w, ms := range acked {
		for i, m := range ms {
			if _, dup := ackedByID[m.ID]; dup {
				t.Errorf("message id %s acknowledged twice", m.ID)
			}
			ackedByID[m.ID] = m
			if i > 0 && (m.Seq <= ms[i-1].Seq || !parseTime(t, m.SentAt).After(parseTime(t, ms[i-1].SentAt))) {
				t.Errorf("writer %d: message %d (seq %d, %s) not after message %d (seq %d, %s)",
					w, i, m.Seq, m.SentAt, i-1, ms[i-1].Seq, ms[i-1].SentAt)
			}
		}
	}
	if len(ackedByID) != total {
		t.Fatalf("%d messages acknowledged, want %d", len(ackedByID), total)
	}

	// Paged back through each replica (so every writer's messages are read
	// through the replica it did not write to): every acknowledged message
	// exactly once, as acknowledged, newest first, seq total..1.
	var lists [2][]apitest.Message
	for i, r := range replicas {
		lists[i] = pageMessages(t, r, key, conv.ID, 9)
		checkHistory(t, "through replica "+names[i], lists[i], total)
		listedByID := map[string]apitest.Message{}
		for _, m := range lists[i] {
			listedByID[m.ID] = m
		}
		if diff := cmp.Diff(ackedByID, listedByID); diff != "" {
			t.Errorf("through replica %s: listed messages differ from acknowledged ones (-acked +listed):\n%s", names[i], diff)
		}
	}
	if diff := cmp.Diff(lists[0], lists[1]); diff != "" {
		t.Errorf("replicas A and B page differently (-A +B):\n%s", diff)
	}

	// Concurrent idempotent retries of one client id through both
	// replicas: all succeed with the same message, and one is stored,
	// with the next seq (the losers' rolled-back transactions leave no gap).
	const retries = 16
	retryBody := map[string]any{
		"id":              "retry-" + rand.Text(),
		"conversation_id": conv.ID,
		"author_id":       "retrier",
		"text":            "sent sixteen times, stored once",
	}
	got := make([]apitest.Message, retries)
	start = make(chan struct{})
	for i := range retries {
		wg.Go(func() {
			r := replicas[i%2]
			<-start
			res, err := r.Post("CreateMessage", key, retryBody)
			if err != nil {
				t.Errorf("retry %d (replica %s): %v", i, names[i%2], err)
				return
			}
			if res.Status != http.StatusOK {
				t.Errorf("retry %d (replica %s): status %d, want 200: %s", i, names[i%2], res.Status, res.Raw)
				return
			}
			if got[i], err = apitest.Field[apitest.Message](res, "message"); err != nil {
				t.Errorf("retry %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	want := apitest.Message{
		ID:             retryBody["id"].(string),
		AuthorID:       retryBody["author_id"].(string),
		ConversationID: conv.ID,
		Text:           retryBody["text"].(string),
		SentAt:         got[0].SentAt,
		Seq:            total + 1,
	}
	for i, m := range got {
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("retry %d (replica %s) answered a different message (-want +got):\n%s", i, names[i%2], diff)
		}
	}
	for i, r := range replicas {
		all := pageMessages(t, r, key, conv.ID, 200)
		checkHistory(t, "after retries, through replica "+names[i], all, total+1)
		n := 0
		for _, m := range all {
			if m.ID == want.ID {
				n++
				if diff := cmp.Diff(want, m); diff != "" {
					t.Errorf("through replica %s: stored retry differs from the answered one (-answered +stored):\n%s", names[i], diff)
				}
			}
		}
		if n != 1 {
			t.Errorf("through replica %s: the retried id is stored %d times, want 1", names[i], n)
		}
	}

	// A key revoked through replica B is refused by A at once (no cache),
	// and by B.
	if err := storeB.RevokeKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	for i, r := range replicas {
		res := r.MustPost(t, "ListConversations", key, map[string]any{"group_id": "g1"})
		if err := res.Envelope("UNAUTHORIZED", http.StatusUnauthorized); err != nil {
			t.Errorf("replica %s after revocation through B: %v", names[i], err)
		}
	}
}

// pageMessages reads a whole conversation through r with ListMessages,
// limit messages at a time, each page's sent_before the previous page's
// oldest sent_at.
func pageMessages(t *testing.T, r *apitest.Client, key, conversation string, limit int) []apitest.Message {
	t.Helper()
	var all []apitest.Message
	before := ""
	short := false
	for page := 0; ; page++ {
		if page > 100000 {
			t.Fatalf("paging does not end")
		}
		body := map[string]any{"conversation_id": conversation, "limit": limit}
		if before != "" {
			body["sent_before"] = before
		}
		ms := apitest.MustField[[]apitest.Message](t, r.MustPost(t, "ListMessages", key, body).OK(t), "messages")
		if len(ms) > limit {
			t.Fatalf("page %d has %d messages, limit %d", page, len(ms), limit)
		}
		if len(ms) == 0 {
			return all
		}
		if short {
			t.Fatalf("page %d follows a short page: paging returned fewer than limit before the end", page)
		}
		short = len(ms) < limit
		all = append(all, ms...)
		before = ms[len(ms)-1].SentAt
	}
}

// checkHistory checks a conversation read newest first: n messages, ids
// unique, sent_at strictly decreasing, seq n, n-1, …, 1.
func checkHistory(t *testing.T, what string, ms []apitest.Message, n int) {
	t.Helper()
	if len(ms) != n {
		t.Errorf("%s: %d messages, want %d", what, len(ms), n)
	}
	seen := map[string]int{}
	for i, m := range ms {
		if j, dup := seen[m.ID]; dup {
			t.Errorf("%s: message %s listed at %d and %d", what, m.ID, j, i)
		}
		seen[m.ID] = i
		if want := int64(n - i); m.Seq != want {
			t.Errorf("%s: position %d has seq %d, want %d", what, i, m.Seq, want)
		}
		if i > 0 && !parseTime(t, m.SentAt).Before(parseTime(t, ms[i-1].SentAt)) {
			t.Errorf("%s: sent_at not strictly decreasing at %d: %s then %s", what, i, ms[i-1].SentAt, m.SentAt)
		}
	}
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("sent_at %q: %v", s, err)
	}
	return v
}
