package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/server"
)

// faultyStore is a real store with chosen calls broken, for the errors a
// healthy database never gives: a hang, an internal failure, a panic, a
// failed ping.
type faultyStore struct {
	threads.Store
	fault string // "hang", "internal", "panic", "down"
}

func (f *faultyStore) CreateConversation(ctx context.Context, tenant string, c *threads.Conversation) error {
	switch f.fault {
	case "hang": // a database cut off without a word: nothing comes back
		<-ctx.Done()
		return ctx.Err()
	case "internal":
		return threads.Internal(errors.New(`pq: relation "conversations" SECRET SQL TEXT`))
	case "panic":
		panic("a bug")
	}
	return f.Store.CreateConversation(ctx, tenant, c)
}

func (f *faultyStore) Ping(ctx context.Context) error {
	if f.fault == "down" {
		return threads.Unavailable(errors.New("connection refused"))
	}
	return f.Store.Ping(ctx)
}

// TestFaults: each failure answers the documented envelope, and none
// shows internal text.
func TestFaults(t *testing.T) {
	st := &faultyStore{Store: openStore(t)}
	e := newTestEnvOn(t, st, func(c *server.Config, _ *broker.Config) { c.RequestTimeout = 50 * time.Millisecond })
	create := map[string]any{"group_id": "g", "topic": "t"}
	cases := []struct {
		fault  string
		id     string
		status int
	}{
		{"hang", threads.EUNAVAILABLE, http.StatusServiceUnavailable},
		{"internal", threads.EINTERNAL, http.StatusInternalServerError},
		{"panic", threads.EINTERNAL, http.StatusInternalServerError},
	}
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			st.fault = c.fault
			defer func() { st.fault = "" }()
			r := e.withT(t).post("CreateConversation", e.Key, create)
			r.wantError(t, c.id, c.status)
			if strings.Contains(string(r.Raw), "SECRET") || strings.Contains(string(r.Raw), "bug") {
				t.Errorf("internal text reached the client: %s", r.Raw)
			}
			if c.status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") == "" {
				t.Error("UNAVAILABLE without Retry-After")
			}
		})
	}
	t.Run("readyz", func(t *testing.T) {
		e.withT(t).do("GET", "/readyz", "", nil).ok(t)
		st.fault = "down"
		defer func() { st.fault = "" }()
		e.withT(t).do("GET", "/readyz", "", nil).wantError(t, threads.EUNAVAILABLE, http.StatusServiceUnavailable)
	})
}

// TestFailureLogsCarryRequestID: the access line and the line that
// explains a failure name the same request id, the caller's when it sent
// one, so an operator can go from one to the other.
func TestFailureLogsCarryRequestID(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	st := &faultyStore{Store: openStore(t), fault: "internal"}
	e := newTestEnvOn(t, st, func(c *server.Config, b *broker.Config) { c.Logger, b.Logger = log, log })
	e.post("CreateConversation", e.Key, map[string]any{"group_id": "g", "topic": "t"}, "X-Request-Id", "trace-123").
		wantError(t, threads.EINTERNAL, http.StatusInternalServerError)
	lines := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var rec struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil {
			lines[rec.Msg] = rec.RequestID
		}
	}
	for _, msg := range []string{"request", "request failed"} {
		if lines[msg] != "trace-123" {
			t.Errorf("log line %q: request_id %q, want trace-123 (all lines: %v)", msg, lines[msg], lines)
		}
	}
}
