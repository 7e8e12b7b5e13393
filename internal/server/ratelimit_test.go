package server_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
	"github.com/threads-server/threads/internal/server"
)

// TestRateLimit: a key past its burst is RATE_LIMITED with Retry-After
// and the RateLimit headers, on every protocol and on streams; other keys
// are not affected. The rate is one call per 1000 s, so no token comes
// back during the test however slow the machine.
func TestRateLimit(t *testing.T) {
	e := newTestEnv(t, func(c *server.Config, _ *broker.Config) { c.RateLimit, c.RateBurst = 0.001, 3 })
	body := map[string]any{"group_id": "g"}
	for i := range 3 {
		r := e.post("ListConversations", e.Key, body)
		r.ok(t)
		if got := r.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Errorf("call %d: RateLimit-Remaining %q, want %d", i, got, 2-i)
		}
		if got := r.Header.Get("RateLimit-Limit"); got != "3" {
			t.Errorf("RateLimit-Limit %q, want 3", got)
		}
	}
	r := e.post("ListConversations", e.Key, body)
	r.wantError(t, threads.ERATELIMITED, http.StatusTooManyRequests)
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", r.Header.Get("Retry-After"))
	}
	if _, res := e.subscribe(t, e.Key, "group_id=g", ""); res == nil {
		t.Error("an event stream opened past the limit")
	} else {
		res.wantError(t, threads.ERATELIMITED, http.StatusTooManyRequests)
	}

	c := threadspbconnect.NewThreadsClient(http.DefaultClient, e.URL)
	req := &pb.ListConversationsRequest{GroupId: "g"}
	_, err := c.ListConversations(callContext(context.Background(), "Authorization", "Bearer "+e.Key), req)
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted || ce.Meta().Get("Threads-Error-Id") != threads.ERATELIMITED || ce.Meta().Get("Retry-After") == "" {
		t.Errorf("Connect past the limit: %v, want ResourceExhausted RATE_LIMITED with Retry-After", err)
	}

	e.post("ListConversations", e.OtherKey, body).ok(t) // another key has its own bucket
}
