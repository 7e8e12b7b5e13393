package postgres_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/postgres/pgtest"
	"github.com/threads-server/threads/internal/server"
)

// TestReplicas runs two servers, each with its own store (its own pool),
// on one database, as two replicas of one deployment would: keys,
// ordering and idempotency must hold across them because they rest on the
// database, not on either process.
func TestReplicas(t *testing.T) {
	url := pgtest.SchemaURL(t)
	storeA, storeB := pgtest.OpenURL(t, url), pgtest.OpenURL(t, url)
	a, b := serveStore(t, storeA), serveStore(t, storeB)
	replicas := []*apiClient{a, b}
	names := []string{"A", "B"}
	ctx := t.Context()

	// A key created through replica A is accepted by both.
	k, key, err := threads.NewKey("acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := storeA.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	for i, r := range replicas {
		res := r.mustPost(t, "ListConversations", key, map[string]any{"group_id": "g1"})
		if res.status != http.StatusOK {
			t.Fatalf("replica %s refuses a key created on A: status %d: %s", names[i], res.status, res.raw)
		}
	}

	conv := mustDecode[apiConversation](t, a.mustPost(t, "CreateConversation", key,
		map[string]any{"group_id": "g1", "topic": "replicas"}).ok(t), "conversation")

	// 8 concurrent writers, 4 through each replica, into one conversation.
	const writers, perWriter = 8, 40
	const total = writers * perWriter
	acked := make([][]apiMessage, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := replicas[w%2]
			<-start
			for i := range perWriter {
				res, err := r.post("CreateMessage", key, map[string]any{
					"conversation_id": conv.ID,
					"author_id":       fmt.Sprintf("writer-%d", w),
					"text":            fmt.Sprintf("writer %d message %d", w, i),
				})
				if err != nil {
					t.Errorf("writer %d (replica %s) message %d: %v", w, names[w%2], i, err)
					return
				}
				if res.status != http.StatusOK {
					t.Errorf("writer %d (replica %s) message %d: status %d: %s", w, names[w%2], i, res.status, res.raw)
					return
				}
				m, err := decodeField[apiMessage](res, "message")
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
	ackedByID := map[string]apiMessage{}
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
	var lists [2][]apiMessage
	for i, r := range replicas {
		lists[i] = pageMessages(t, r, key, conv.ID, 9)
		checkHistory(t, "through replica "+names[i], lists[i], total)
		listedByID := map[string]apiMessage{}
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
	got := make([]apiMessage, retries)
	start = make(chan struct{})
	for i := range retries {
		wg.Go(func() {
			r := replicas[i%2]
			<-start
			res, err := r.post("CreateMessage", key, retryBody)
			if err != nil {
				t.Errorf("retry %d (replica %s): %v", i, names[i%2], err)
				return
			}
			if res.status != http.StatusOK {
				t.Errorf("retry %d (replica %s): status %d, want 200: %s", i, names[i%2], res.status, res.raw)
				return
			}
			if got[i], err = decodeField[apiMessage](res, "message"); err != nil {
				t.Errorf("retry %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	want := apiMessage{
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
		res := r.mustPost(t, "ListConversations", key, map[string]any{"group_id": "g1"})
		if err := res.wantError("UNAUTHORIZED", http.StatusUnauthorized); err != nil {
			t.Errorf("replica %s after revocation through B: %v", names[i], err)
		}
	}
}

// pageMessages reads a whole conversation through r with ListMessages,
// limit messages at a time, each page's sent_before the previous page's
// oldest sent_at.
func pageMessages(t *testing.T, r *apiClient, key, conversation string, limit int) []apiMessage {
	t.Helper()
	var all []apiMessage
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
		ms := mustDecode[[]apiMessage](t, r.mustPost(t, "ListMessages", key, body).ok(t), "messages")
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
func checkHistory(t *testing.T, what string, ms []apiMessage, n int) {
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

// The helpers below are a small local copy of what the server package's
// test harness does (which cannot be imported): a real server over a
// store, and calls to its m3o JSON routes.

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// apiClient calls one server's m3o JSON routes. Its methods are safe for
// concurrent use.
type apiClient struct {
	url    string
	client *http.Client
}

// serveStore serves st as the binary does (the production timeouts and
// h2c) and returns a client for it. The client's timeout only guards
// against hangs.
func serveStore(t *testing.T, st threads.Store) *apiClient {
	t.Helper()
	api := server.New(server.Config{Store: st, Logger: quietLogger(),
		Broker: broker.New(broker.Config{Store: st, Logger: quietLogger()})})
	h := api.Handler()
	ts := httptest.NewUnstartedServer(h)
	ts.Config = server.HTTPServer("", h, quietLogger())
	ts.Start()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(func() {
		api.StopStreams()
		tr.CloseIdleConnections()
		ts.Close()
	})
	return &apiClient{url: ts.URL, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// apiResult is one HTTP answer.
type apiResult struct {
	status int
	header http.Header
	raw    []byte
	took   time.Duration
}

// post calls POST /v1/threads/{method} with body JSON-encoded.
func (c *apiClient) post(method, key string, body any) (*apiResult, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return c.do(http.MethodPost, "/v1/threads/"+method, key, raw)
}

func (c *apiClient) do(verb, path, key string, body []byte) (*apiResult, error) {
	req, err := http.NewRequest(verb, c.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	res, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return &apiResult{status: res.StatusCode, header: res.Header, raw: raw, took: time.Since(start)}, nil
}

// mustPost is post for the test's own goroutine.
func (c *apiClient) mustPost(t *testing.T, method, key string, body any) *apiResult {
	t.Helper()
	res, err := c.post(method, key, body)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return res
}

// ok fails the test unless the call answered 200.
func (r *apiResult) ok(t *testing.T) *apiResult {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.raw)
	}
	return r
}

// apiError is the go-micro error envelope.
type apiError struct {
	ID     string `json:"id"`
	Code   int    `json:"code"`
	Detail string `json:"detail"`
	Status string `json:"status"`
}

// wantError reports how r differs from the envelope with this id and
// status (and, for UNAVAILABLE, a Retry-After header), or nil.
func (r *apiResult) wantError(id string, status int) error {
	if r.status != status {
		return fmt.Errorf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	var got apiError
	if err := json.Unmarshal(r.raw, &got); err != nil {
		return fmt.Errorf("error body is not JSON: %v: %s", err, r.raw)
	}
	want := apiError{ID: id, Code: status, Detail: got.Detail, Status: http.StatusText(status)}
	if diff := cmp.Diff(want, got); diff != "" || got.Detail == "" {
		return fmt.Errorf("error body %s, want id %s, code %d, a detail, status %q", r.raw, id, status, http.StatusText(status))
	}
	if id == threads.EUNAVAILABLE && r.header.Get("Retry-After") == "" {
		return fmt.Errorf("%s without Retry-After", id)
	}
	return nil
}

// apiConversation and apiMessage are the m3o JSON shapes.
type apiConversation struct {
	ID        string `json:"id"`
	GroupID   string `json:"group_id"`
	Topic     string `json:"topic"`
	CreatedAt string `json:"created_at"`
}

type apiMessage struct {
	ID             string `json:"id"`
	AuthorID       string `json:"author_id"`
	ConversationID string `json:"conversation_id"`
	Text           string `json:"text"`
	SentAt         string `json:"sent_at"`
	Seq            int64  `json:"seq"`
}

// decodeField decodes one top-level field of a JSON answer.
func decodeField[T any](r *apiResult, field string) (T, error) {
	var all map[string]json.RawMessage
	var v T
	if err := json.Unmarshal(r.raw, &all); err != nil {
		return v, fmt.Errorf("answer is not a JSON object: %v: %s", err, r.raw)
	}
	raw, ok := all[field]
	if !ok {
		return v, fmt.Errorf("answer has no field %q: %s", field, r.raw)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("field %q: %v: %s", field, err, r.raw)
	}
	return v, nil
}

func mustDecode[T any](t *testing.T, r *apiResult, field string) T {
	t.Helper()
	v, err := decodeField[T](r, field)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
