package apitest_test

import (
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
)

// TestEnv: a server on port 0 answers the m3o routes and the event
// stream with the shapes the wire structs decode, and refuses a revoked
// key with the envelope.
func TestEnv(t *testing.T) {
	e := apitest.NewEnv(t)
	s := e.MustSubscribe(t, e.Key, "group_id=g", "")
	c := e.CreateConversation(t, e.Key, "g", "topic")
	if c.ID == "" || c.GroupID != "g" || c.Topic != "topic" || c.CreatedAt == "" {
		t.Errorf("conversation %+v", c)
	}
	m := e.CreateMessage(t, e.Key, c.ID, "ann", "hello")
	if m.ID == "" || m.ConversationID != c.ID || m.AuthorID != "ann" || m.Text != "hello" || m.Seq != 1 || m.SentAt == "" {
		t.Errorf("message %+v", m)
	}
	ms := apitest.MustField[[]apitest.Message](t, e.MustPost(t, "ListMessages", e.Key, map[string]any{"conversation_id": c.ID}).OK(t), "messages")
	if len(ms) != 1 || ms[0] != m {
		t.Errorf("ListMessages: %+v, want [%+v]", ms, m)
	}
	if ev := s.Next(); ev.Type != threads.EventConversationCreated || ev.Data.Conversation == nil || *ev.Data.Conversation != c {
		t.Errorf("first event %+v", ev)
	}
	if ev := s.Next(); ev.Type != threads.EventMessageCreated || ev.Data.Message == nil || *ev.Data.Message != m || ev.ID != s.LastID() {
		t.Errorf("second event %+v", ev)
	}

	for _, key := range []string{e.Revoked, ""} {
		r, err := e.Post("ListConversations", key, map[string]any{"group_id": "g"})
		if err != nil {
			t.Fatal(err)
		}
		r.WantError(t, threads.EUNAUTHORIZED, http.StatusUnauthorized)
	}
	if _, err := apitest.Field[string](e.MustPost(t, "ListConversations", e.OtherKey, `{"group_id":"g"}`).OK(t), "nope"); err == nil {
		t.Error("Field of a missing field: no error")
	}
	if _, res := e.Subscribe(t, e.AdminKey+"x", "group_id=g", ""); res == nil {
		t.Error("a stream opened with an unknown key")
	} else {
		res.WantError(t, threads.EUNAUTHORIZED, http.StatusUnauthorized)
	}
}

// TestEnvelope: the check accepts exactly the go-micro envelope.
func TestEnvelope(t *testing.T) {
	json := http.Header{"Content-Type": {"application/json"}}
	good := `{"id":"NOT_FOUND","code":404,"detail":"no such conversation","status":"Not Found"}`
	if err := (&apitest.Response{Status: 404, Header: json, Raw: []byte(good)}).Envelope(threads.ENOTFOUND, 404); err != nil {
		t.Errorf("the envelope itself: %v", err)
	}
	unavailable := `{"id":"UNAVAILABLE","code":503,"detail":"try later","status":"Service Unavailable"}`
	withRetry := http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}}
	if err := (&apitest.Response{Status: 503, Header: withRetry, Raw: []byte(unavailable)}).Envelope(threads.EUNAVAILABLE, 503); err != nil {
		t.Errorf("UNAVAILABLE with Retry-After: %v", err)
	}
	for _, c := range []struct {
		name   string
		status int
		header http.Header
		raw    string
	}{
		{"another status", 400, json, good},
		{"no content type", 404, http.Header{}, good},
		{"another id", 404, json, strings.Replace(good, "NOT_FOUND", "CONFLICT", 1)},
		{"another code", 404, json, strings.Replace(good, "404", "400", 1)},
		{"a string code", 404, json, strings.Replace(good, "404", `"404"`, 1)},
		{"another status text", 404, json, strings.Replace(good, "Not Found", "Gone", 1)},
		{"no detail", 404, json, strings.Replace(good, "no such conversation", "", 1)},
		{"a fifth field", 404, json, strings.Replace(good, "}", `,"extra":1}`, 1)},
		{"a field renamed", 404, json, strings.Replace(good, `"id"`, `"Id"`, 1)},
		{"a field missing", 404, json, `{"id":"NOT_FOUND","code":404,"detail":"x"}`},
		{"not JSON", 404, json, "Not Found"},
		{"UNAVAILABLE without Retry-After", 503, json, unavailable},
	} {
		id := threads.ENOTFOUND
		if c.status == 503 {
			id = threads.EUNAVAILABLE
		}
		want := 404
		if c.status == 503 {
			want = 503
		}
		if err := (&apitest.Response{Status: c.status, Header: c.header, Raw: []byte(c.raw)}).Envelope(id, want); err == nil {
			t.Errorf("%s: accepted %d %s", c.name, c.status, c.raw)
		}
	}
}

func TestPoll(t *testing.T) {
	var n atomic.Int32
	apitest.Eventually(t, "the third check", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Errorf("Eventually checked %d times, want 3", n.Load())
	}
	if apitest.Poll(time.Millisecond, 20*time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a condition never true reported true")
	}
}

// TestTestOnly: no package imports apitest outside its tests.
func TestTestOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "github.com/threads-server/threads/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, " github.com/threads-server/threads/internal/apitest") {
			t.Errorf("imported by non-test code: %s", line)
		}
	}
}
