package server_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/server"
)

// TestEventsLive: every mutation reaches a group subscriber, in order,
// with the object in the API's JSON shape, and nothing else does.
func TestEventsLive(t *testing.T) {
	e := newTestEnv(t)
	s := e.mustSubscribe(t, e.Key, "group_id=g1", "")
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
	} {
		if got := s.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	conv := e.post("CreateConversation", e.Key, map[string]any{"group_id": "g1", "topic": "t"})
	id := conv.ok(t)["conversation"].(map[string]any)["id"].(string)
	e.createConversation(e.Key, "g2", "another group")       // not selected
	e.createConversation(e.OtherKey, "g1", "another tenant") // not selected
	msg := e.post("CreateMessage", e.Key, map[string]any{"conversation_id": id, "author_id": "ann", "text": "hi\nthere"})
	retry := e.post("CreateMessage", e.Key, map[string]any{"id": msg.ok(t)["message"].(map[string]any)["id"],
		"conversation_id": id, "author_id": "ann", "text": "hi\nthere"})
	retry.ok(t) // an idempotent retry is no new event
	upd := e.post("UpdateConversation", e.Key, map[string]any{"id": id, "topic": "new topic"})
	upd.ok(t)
	e.post("DeleteConversation", e.Key, map[string]any{"id": id}).ok(t)

	// Each event's data is {"type", "cursor", and the object as the call
	// that made it answered}; its SSE id is the cursor.
	want := []struct {
		typ, field string
		object     json.RawMessage
	}{
		{threads.EventConversationCreated, "conversation", field(t, conv, "conversation")},
		{threads.EventMessageCreated, "message", field(t, msg, "message")},
		{threads.EventConversationUpdated, "conversation", field(t, upd, "conversation")},
		{threads.EventConversationDeleted, "conversation", field(t, upd, "conversation")},
	}
	var last string
	for i, w := range want {
		ev := s.next()
		if ev.Type != w.typ || ev.Data.Type != w.typ {
			t.Fatalf("event %d: type %q (data %q), want %q: %s", i, ev.Type, ev.Data.Type, w.typ, ev.Raw)
		}
		if ev.ID == "" || ev.ID != ev.Data.Cursor || ev.ID == last {
			t.Errorf("event %d: id %q, cursor %q: want the same new cursor in both", i, ev.ID, ev.Data.Cursor)
		}
		last = ev.ID
		var data map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ev.Raw), &data); err != nil {
			t.Fatal(err)
		}
		if len(data) != 3 || string(data[w.field]) != string(w.object) {
			t.Errorf("event %d data = %s, want type, cursor and %s = %s", i, ev.Raw, w.field, w.object)
		}
	}
}

// field returns the raw JSON of one top-level field of a response.
func field(t *testing.T, r *response, name string) json.RawMessage {
	t.Helper()
	var all map[string]json.RawMessage
	if err := json.Unmarshal(r.Raw, &all); err != nil {
		t.Fatal(err)
	}
	return all[name]
}

// TestEventsFilters: conversation_id (repeatable) selects conversations
// across groups; tenants never see each other's events, even with the
// same group and conversation filters.
func TestEventsFilters(t *testing.T) {
	e := newTestEnv(t)
	a := e.createConversation(e.Key, "g1", "a")["id"].(string)
	b := e.createConversation(e.Key, "g2", "b")["id"].(string)
	c := e.createConversation(e.Key, "g1", "c")["id"].(string)
	q := url.Values{"conversation_id": {a, b}}.Encode()
	byConv := e.mustSubscribe(t, e.Key, q, "")
	other := e.mustSubscribe(t, e.OtherKey, q+"&group_id=g1", "")
	for _, id := range []string{a, c, b} {
		e.createMessage(e.Key, id, "ann", "to "+id)
	}
	for _, want := range []string{a, b} {
		if ev := byConv.next(); ev.Data.Message == nil || ev.Data.Message.ConversationID != want {
			t.Fatalf("got %s, want a message in %s", ev.Raw, want)
		}
	}
	// The other tenant's first event is its own: none of acme's came
	// before it.
	own := e.createConversation(e.OtherKey, "g1", "globex's")["id"].(string)
	if ev := other.next(); ev.Data.Conversation == nil || ev.Data.Conversation.ID != own {
		t.Fatalf("tenant globex received %s, want only its own conversation %s", ev.Raw, own)
	}
}

// TestEventsRefused: every way a stream can be refused answers the
// go-micro envelope before any stream starts.
func TestEventsRefused(t *testing.T) {
	e := newTestEnv(t, func(c *server.Config, _ *broker.Config) { c.MaxStreamsPerKey = 2 })
	valid := e.mustSubscribe(t, e.Key, "group_id=g", "").lastID()
	cases := []struct {
		name, key, query, lastID string
		headers                  []string
		status                   int
		id                       string
	}{
		{"no key", "", "group_id=g", "", nil, http.StatusUnauthorized, threads.EUNAUTHORIZED},
		{"revoked key", e.Revoked, "group_id=g", "", nil, http.StatusUnauthorized, threads.EUNAUTHORIZED},
		{"no filter", e.Key, "", "", nil, http.StatusBadRequest, threads.EBADREQUEST},
		{"empty conversation id", e.Key, "conversation_id=", "", nil, http.StatusBadRequest, "MISSING_CONVERSATION_ID"},
		{"bad cursor", e.Key, "group_id=g", "not-a-cursor", nil, http.StatusBadRequest, threads.EBADREQUEST},
		{"bad after", e.Key, "group_id=g&after=e1!!", "", nil, http.StatusBadRequest, threads.EBADREQUEST},
		{"other namespace", e.Key, "group_id=g", "", []string{"Micro-Namespace", "globex"}, http.StatusForbidden, threads.EFORBIDDEN},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, res := e.subscribe(t, c.key, c.query, c.lastID, c.headers...)
			if s != nil {
				t.Fatal("the stream opened")
			}
			res.wantError(t, c.id, c.status)
		})
	}
	t.Run("streams per key", func(t *testing.T) {
		e.mustSubscribe(t, e.Key, "group_id=g", valid)
		s, res := e.subscribe(t, e.Key, "group_id=g", "")
		if s != nil {
			t.Fatal("a third stream opened with a limit of 2")
		}
		res.wantError(t, threads.ERATELIMITED, http.StatusTooManyRequests)
		e.mustSubscribe(t, e.OtherKey, "group_id=g", "") // other keys are not affected
	})
}

// TestEventsAdmin: an admin key follows the tenant it names.
func TestEventsAdmin(t *testing.T) {
	e := newTestEnv(t)
	s, res := e.subscribe(t, e.AdminKey, "group_id=g", "", "Micro-Namespace", "acme")
	if s == nil {
		t.Fatalf("admin stream refused: %d %s", res.Status, res.Raw)
	}
	id := e.createConversation(e.Key, "g", "acme's")["id"].(string)
	if ev := s.next(); ev.Data.Conversation == nil || ev.Data.Conversation.ID != id {
		t.Fatalf("admin acting for acme got %s", ev.Raw)
	}
}

// TestEventsHeartbeat: an idle stream gets heartbeats that move its
// Last-Event-ID forward; resuming from one misses nothing and repeats
// nothing.
func TestEventsHeartbeat(t *testing.T) {
	e := newTestEnv(t, func(c *server.Config, _ *broker.Config) { c.Heartbeat = 20 * time.Millisecond })
	s := e.mustSubscribe(t, e.Key, "group_id=g", "")
	conv := e.createConversation(e.Key, "g", "x")["id"].(string)
	if ev := s.next(); ev.Data.Conversation.ID != conv {
		t.Fatalf("got %s", ev.Raw)
	}
	cursor := idOnly(t, s, 2)
	msg := e.createMessage(e.Key, conv, "ann", "after the heartbeat")
	resumed := e.mustSubscribe(t, e.Key, "group_id=g", cursor)
	if ev := resumed.next(); ev.Data.Message == nil || ev.Data.Message.ID != msg["id"] {
		t.Fatalf("resumed from a heartbeat's cursor, got %s, want the message posted after it", ev.Raw)
	}
}

// idOnly reads a stream until it has seen n blocks that carry only an id
// (the first cursor, heartbeats), closes it, and returns the last id.
func idOnly(t *testing.T, s *sseClient, n int) string {
	t.Helper()
	beats := make(chan string, 100)
	s.r.IDOnly = func(id string) {
		select {
		case beats <- id:
		default:
		}
	}
	go s.r.Next() // returns when the stream is closed
	var cursor string
	for range n {
		select {
		case cursor = <-beats:
		case <-time.After(time.Minute): // liveness guard only
			t.Fatal("no id-only block came")
		}
	}
	s.close()
	return cursor
}

// TestEventsFirstCursor: a stream starts with a cursor, so a client that
// drops before its first event resumes from where it subscribed, not from
// wherever "now" is when it comes back.
func TestEventsFirstCursor(t *testing.T) {
	e := newTestEnv(t)
	cursor := idOnly(t, e.mustSubscribe(t, e.Key, "group_id=g", ""), 1)
	if cursor == "" {
		t.Fatal("empty first cursor")
	}
	missed := e.createConversation(e.Key, "g", "while away")["id"].(string)
	s := e.mustSubscribe(t, e.Key, "group_id=g", cursor)
	if ev := s.next(); ev.Data.Conversation == nil || ev.Data.Conversation.ID != missed {
		t.Fatalf("got %s, want the conversation created while away", ev.Raw)
	}
}

// TestEventsRevokedKey: revoking a key ends its open streams within a
// heartbeat interval, and it cannot open new ones.
func TestEventsRevokedKey(t *testing.T) {
	e := newTestEnv(t, func(c *server.Config, _ *broker.Config) { c.Heartbeat = 20 * time.Millisecond })
	k, secret, err := threads.NewKey("acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.CreateKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	s := e.mustSubscribe(t, secret, "group_id=g", "")
	if err := e.Store.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := s.r.Next()
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) {
			t.Fatalf("the stream did not end by the server's hand: %v", err)
		}
		break
	}
	if c, res := e.subscribe(t, secret, "group_id=g", ""); c == nil {
		res.wantError(t, threads.EUNAUTHORIZED, http.StatusUnauthorized)
	} else {
		t.Fatal("a revoked key opened a stream")
	}
}

// TestEventsEndAtShutdown: StopStreams (run by http.Server.Shutdown)
// ends open streams, which would otherwise keep Shutdown waiting.
func TestEventsEndAtShutdown(t *testing.T) {
	e := newTestEnv(t)
	s := e.mustSubscribe(t, e.Key, "group_id=g", "")
	e.api.StopStreams()
	if _, err := s.r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after StopStreams: %v, want the server to end the stream", err)
	}
}
