package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/threads-server/threads"
)

// wantMessages checks that a response carries exactly these messages.
func wantMessages(want ...apiMessage) func(*testing.T, *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		if diff := cmp.Diff(want, decodeField[[]apiMessage](t, r, "messages"), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}
	}
}

// wantCount checks how many messages a response carries.
func wantCount(n int) func(*testing.T, *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		if got := len(decodeField[[]apiMessage](t, r, "messages")); got != n {
			t.Errorf("%d messages, want %d", got, n)
		}
	}
}

// postMessages posts n messages through the API and returns them, oldest first.
func postMessages(t *testing.T, e *testEnv, conversation string, n int) []apiMessage {
	t.Helper()
	out := make([]apiMessage, n)
	for i := range out {
		r := e.post("CreateMessage", e.Key, map[string]any{"conversation_id": conversation, "author_id": "ann", "text": fmt.Sprint(conversation[len(conversation)-4:], " #", i)})
		out[i] = decodeField[apiMessage](t, r.withOK(t), "message")
	}
	return out
}

// withOK fails the test unless r answered 200, and returns r.
func (r *response) withOK(t *testing.T) *response {
	t.Helper()
	r.ok(t)
	return r
}

func TestMessageSemantics(t *testing.T) {
	e := newTestEnv(t)
	c := e.createConversation(e.Key, "g", "t")["id"].(string)
	m := postMessages(t, e, c, 5)
	for i, msg := range m {
		if msg.Seq != int64(i+1) || msg.ConversationID != c || msg.AuthorID != "ann" || msg.ID == "" {
			t.Fatalf("message %d: %+v, want seq %d in %s by ann with an id", i, msg, i+1, c)
		}
		if i > 0 && msg.SentAt <= m[i-1].SentAt {
			t.Fatalf("sent_at %s not after %s", msg.SentAt, m[i-1].SentAt)
		}
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	justAfter := func(s string) string {
		ts, _ := time.Parse(time.RFC3339Nano, s)
		return ts.Add(time.Nanosecond).Format(time.RFC3339Nano)
	}
	retry := map[string]any{"id": "client-1", "conversation_id": c, "author_id": "bob", "text": "once"}
	var first apiMessage
	e.runScenarios(t, []apiScenario{
		{name: "newest first", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c}, check: wantMessages(m[4], m[3], m[2], m[1], m[0])},
		{name: "limit", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "limit": 2}, check: wantMessages(m[4], m[3])},
		{name: "sent_before is exclusive", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "sent_before": m[2].SentAt}, check: wantMessages(m[1], m[0])},
		{name: "sent_before a nanosecond later includes it", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "sent_before": justAfter(m[2].SentAt)}, check: wantMessages(m[2], m[1], m[0])},
		{name: "sent_before with limit", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "sent_before": m[3].SentAt, "limit": 1}, check: wantMessages(m[2])},
		{name: "sent_before the first", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "sent_before": m[0].SentAt}, check: wantMessages()},
		{name: "sent_before the future", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "sent_before": future}, check: wantCount(5)},
		{name: "negative limit", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "limit": -1}, wantStatus: 400, wantID: "BAD_REQUEST"},
		{name: "client id kept", method: "CreateMessage", key: e.Key, body: retry, check: func(t *testing.T, r *response) {
			first = decodeField[apiMessage](t, r, "message")
			if first.ID != "client-1" || first.Seq != 6 {
				t.Errorf("got %+v, want id client-1 and seq 6", first)
			}
		}},
		{name: "retry returns the stored message", method: "CreateMessage", key: e.Key, body: retry, check: func(t *testing.T, r *response) {
			if diff := cmp.Diff(first, decodeField[apiMessage](t, r, "message")); diff != "" {
				t.Errorf("retry (-first +retry):\n%s", diff)
			}
		}},
		{name: "retry stored nothing new", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c}, check: wantCount(6)},
	})
}

func TestMessageLimits(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	c := e.createConversation(e.Key, "g", "t")["id"].(string)
	for i := range threads.MaxMessageLimit + 10 {
		if _, err := e.Store.CreateMessage(ctx, "acme", &threads.Message{ID: fmt.Sprint("m", i), ConversationID: c, AuthorID: "a", Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	e.runScenarios(t, []apiScenario{
		{name: "default 25", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c}, check: wantCount(threads.DefaultMessageLimit)},
		{name: "zero is the default", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "limit": 0}, check: wantCount(threads.DefaultMessageLimit)},
		{name: "200 is allowed", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "limit": 200}, check: wantCount(200)},
		{name: "500 is clamped to 200", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c, "limit": 500}, check: wantCount(200)},
		{name: "recent default 25", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{c}}, check: wantCount(threads.DefaultMessageLimit)},
		{name: "recent clamped to 200", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{c}, "limit_per_conversation": 500}, check: wantCount(200)},
		{name: "recent negative", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{c}, "limit_per_conversation": -3}, wantStatus: 400, wantID: "BAD_REQUEST"},
	})

	// A page of 200 (about 20 KiB) comes with its length, not chunked.
	r := e.post("ListMessages", e.Key, map[string]any{"conversation_id": c, "limit": 200})
	if got, want := r.Header.Get("Content-Length"), fmt.Sprint(len(r.Raw)); got != want || len(r.Raw) < 8<<10 {
		t.Errorf("Content-Length %q for a body of %d bytes", got, len(r.Raw))
	}
}

func TestRecentMessages(t *testing.T) {
	e := newTestEnv(t)
	a, b, c := e.createConversation(e.Key, "g", "a")["id"].(string), e.createConversation(e.Key, "g", "b")["id"].(string), e.createConversation(e.Key, "g", "c")["id"].(string)
	ma, mb, mc := postMessages(t, e, a, 3), postMessages(t, e, b, 2), postMessages(t, e, c, 4)
	empty := e.createConversation(e.Key, "g", "empty")["id"].(string)
	var many []string
	for i := range threads.MaxRecentConversations + 1 {
		many = append(many, fmt.Sprint("id-", i))
	}
	e.runScenarios(t, []apiScenario{
		{name: "request order, newest first", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{c, a, b}}, check: wantMessages(mc[3], mc[2], mc[1], mc[0], ma[2], ma[1], ma[0], mb[1], mb[0])},
		{name: "limit_per_conversation", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{b, c, a}, "limit_per_conversation": 2}, check: wantMessages(mb[1], mb[0], mc[3], mc[2], ma[2], ma[1])},
		{name: "unknown, empty and repeated ids", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{a, "nope", empty, a, b}, "limit_per_conversation": 1}, check: wantMessages(ma[2], mb[1])},
		{name: "100 ids", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": append([]string{a}, many[:99]...), "limit_per_conversation": 1}, check: wantMessages(ma[2])},
		{name: "101 ids", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": many}, wantStatus: 400, wantID: "BAD_REQUEST"},
	})
}

func TestMessageOrderingUnderConcurrentWriters(t *testing.T) {
	e := newTestEnv(t)
	c := e.createConversation(e.Key, "g", "busy")["id"].(string)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r, err := e.tryPost("CreateMessage", e.Key, map[string]any{"conversation_id": c, "author_id": fmt.Sprint("w", w), "text": fmt.Sprint(i)})
				if err == nil && r.Status != 200 {
					err = fmt.Errorf("status %d: %s", r.Status, r.Raw)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var all []apiMessage
	body := map[string]any{"conversation_id": c, "limit": 7}
	for page := 0; ; page++ {
		ms := decodeField[[]apiMessage](t, e.post("ListMessages", e.Key, body).withOK(t), "messages")
		if len(ms) == 0 || page > writers*each {
			break
		}
		all = append(all, ms...)
		body["sent_before"] = ms[len(ms)-1].SentAt
	}
	if len(all) != writers*each {
		t.Fatalf("paged back %d messages, want %d", len(all), writers*each)
	}
	next := map[string]int{} // per writer, the next text expected walking backwards
	for w := range writers {
		next[fmt.Sprint("w", w)] = each - 1
	}
	for i, m := range all {
		if want := int64(writers*each - i); m.Seq != want {
			t.Fatalf("message %d has seq %d, want %d", i, m.Seq, want)
		}
		if i > 0 && m.SentAt >= all[i-1].SentAt {
			t.Fatalf("sent_at not strictly decreasing: %s then %s", all[i-1].SentAt, m.SentAt)
		}
		if m.Text != fmt.Sprint(next[m.AuthorID]) {
			t.Fatalf("writer %s: got text %q, want %d (each writer's messages in its order)", m.AuthorID, m.Text, next[m.AuthorID])
		}
		next[m.AuthorID]--
	}
}

func TestIdempotentCreateMessageUnderConcurrentRetries(t *testing.T) {
	e := newTestEnv(t)
	c := e.createConversation(e.Key, "g", "retries")["id"].(string)
	body := map[string]any{"id": "once", "conversation_id": c, "author_id": "ann", "text": "exactly once"}
	const n = 16
	raws := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := e.tryPost("CreateMessage", e.Key, body)
			if err == nil && r.Status != 200 {
				err = fmt.Errorf("status %d: %s", r.Status, r.Raw)
			}
			if errs[i] = err; err == nil {
				raws[i] = string(r.Raw)
			}
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("retry %d: %v", i, errs[i])
		}
		if diff := cmp.Diff(raws[0], raws[i]); diff != "" {
			t.Errorf("retry %d answered another message (-first +this):\n%s", i, diff)
		}
	}
	stored := decodeField[[]apiMessage](t, e.post("ListMessages", e.Key, map[string]any{"conversation_id": c}).withOK(t), "messages")
	if len(stored) != 1 || stored[0].ID != "once" || stored[0].Seq != 1 {
		t.Fatalf("stored %+v, want exactly one message with id once and seq 1", stored)
	}
	other := e.createConversation(e.Key, "g", "other")["id"].(string)
	e.runScenarios(t, []apiScenario{
		{name: "same id other text", method: "CreateMessage", key: e.Key, body: map[string]any{"id": "once", "conversation_id": c, "author_id": "ann", "text": "changed"}, wantStatus: 409, wantID: "CONFLICT"},
		{name: "same id other author", method: "CreateMessage", key: e.Key, body: map[string]any{"id": "once", "conversation_id": c, "author_id": "bob", "text": "exactly once"}, wantStatus: 409, wantID: "CONFLICT"},
		{name: "same id other conversation", method: "CreateMessage", key: e.Key, body: map[string]any{"id": "once", "conversation_id": other, "author_id": "ann", "text": "exactly once"}, wantStatus: 409, wantID: "CONFLICT"},
		{name: "same id in another tenant is another message", method: "CreateMessage", key: e.OtherKey, body: map[string]any{"id": "once", "conversation_id": e.createConversation(e.OtherKey, "g", "x")["id"], "author_id": "ann", "text": "mine"}},
		{name: "still one message", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c}, check: wantMessages(stored...)},
	})
}
