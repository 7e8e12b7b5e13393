package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
	"github.com/threads-server/threads/internal/server"
)

// retryClients are the RPC protocols, through the generated client.
func retryClients(url string) []struct {
	name string
	c    threadspbconnect.ThreadsClient
} {
	return []struct {
		name string
		c    threadspbconnect.ThreadsClient
	}{
		{"connect", threadspbconnect.NewThreadsClient(http.DefaultClient, url)},
		{"grpc", threadspbconnect.NewThreadsClient(h2cClient(), url, connect.WithGRPC())},
		{"grpc-web", threadspbconnect.NewThreadsClient(http.DefaultClient, url, connect.WithGRPCWeb())},
	}
}

// subscribeErr opens Subscribe and returns the error that ends it before
// any event.
func subscribeErr(t *testing.T, c threadspbconnect.ThreadsClient, key string) *connect.Error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // liveness guard
	defer cancel()
	req := &pb.SubscribeRequest{GroupId: "g"}
	s, err := c.Subscribe(callContext(ctx, "Authorization", "Bearer "+key), req)
	if err == nil {
		defer s.Close()
		if s.Receive() {
			t.Fatalf("the stream opened: %v", s.Msg())
		}
		err = s.Err()
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Subscribe: %v, want a refusal", err)
	}
	return ce
}

// createErr calls CreateConversation and returns its error.
func createErr(t *testing.T, c threadspbconnect.ThreadsClient, key string) *connect.Error {
	t.Helper()
	req := &pb.CreateConversationRequest{GroupId: "g", Topic: "t"}
	_, err := c.CreateConversation(callContext(t.Context(), "Authorization", "Bearer "+key), req)
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("CreateConversation: %v, want a refusal", err)
	}
	return ce
}

// wantRetry fails unless a refusal has the error id (when id is not "":
// RPC metadata; the m3o id is in the envelope) and one Retry-After that
// want accepts.
func wantRetry(t *testing.T, what string, id string, h http.Header, want func(int) bool) {
	t.Helper()
	if got := h.Get("Threads-Error-Id"); id != "" && got != id {
		t.Errorf("%s: Threads-Error-Id %q, want %s", what, got, id)
	}
	v := h.Values("Retry-After")
	if len(v) != 1 {
		t.Errorf("%s: Retry-After %q, want one value", what, v)
		return
	}
	if n, err := strconv.Atoi(v[0]); err != nil || !want(n) {
		t.Errorf("%s: Retry-After %q", what, v[0])
	}
}

func is(n int) func(int) bool { return func(m int) bool { return m == n } }

// TestRetryAfterStreamLimit: the per-key stream limit's 429 carries the
// documented Retry-After on SSE and on Subscribe over every protocol.
func TestRetryAfterStreamLimit(t *testing.T) {
	e := newTestEnv(t, func(c *server.Config, _ *broker.Config) { c.MaxStreamsPerKey = 1 })
	e.mustSubscribe(t, e.Key, "group_id=g", "")
	s, res := e.subscribe(t, e.Key, "group_id=g", "")
	if s != nil {
		t.Fatal("a second stream opened past the limit of 1")
	}
	res.wantError(t, threads.ERATELIMITED, http.StatusTooManyRequests)
	wantRetry(t, "SSE", "", res.Header, is(server.RetryAfterRateLimited))
	for _, p := range retryClients(e.URL) {
		ce := subscribeErr(t, p.c, e.Key)
		if ce.Code() != connect.CodeResourceExhausted {
			t.Errorf("%s: %v, want ResourceExhausted", p.name, ce)
		}
		wantRetry(t, "Subscribe over "+p.name, threads.ERATELIMITED, ce.Meta(), is(server.RetryAfterRateLimited))
	}
}

// TestRetryAfterRateLimit: the rate limiter's own wait (about 1000 s at
// one call per 1000 s) is the one Retry-After, on every protocol, unary
// and streams alike, not the stream limit's default beside it.
func TestRetryAfterRateLimit(t *testing.T) {
	e := newTestEnv(t, func(c *server.Config, _ *broker.Config) { c.RateLimit, c.RateBurst = 0.001, 1 })
	e.post("ListConversations", e.Key, map[string]any{"group_id": "g"}).ok(t)
	long := func(n int) bool { return n > server.RetryAfterRateLimited && n <= 1000 }
	r := e.post("ListConversations", e.Key, map[string]any{"group_id": "g"})
	r.wantError(t, threads.ERATELIMITED, http.StatusTooManyRequests)
	wantRetry(t, "m3o", "", r.Header, long)
	_, res := e.subscribe(t, e.Key, "group_id=g", "")
	if res == nil {
		t.Fatal("a stream opened past the rate limit")
	}
	wantRetry(t, "SSE", "", res.Header, long)
	for _, p := range retryClients(e.URL) {
		wantRetry(t, "unary over "+p.name, threads.ERATELIMITED, createErr(t, p.c, e.Key).Meta(), long)
		wantRetry(t, "Subscribe over "+p.name, threads.ERATELIMITED, subscribeErr(t, p.c, e.Key).Meta(), long)
	}
}

// TestRetryAfterUnavailable: every UNAVAILABLE (503) carries the
// documented Retry-After, on every protocol: a database that does not
// answer within the request timeout, and live events turned off.
func TestRetryAfterUnavailable(t *testing.T) {
	st := &faultyStore{Store: openStore(t), fault: "hang"}
	e := newTestEnvOn(t, st, func(c *server.Config, _ *broker.Config) { c.RequestTimeout = 50 * time.Millisecond })
	r := e.post("CreateConversation", e.Key, map[string]any{"group_id": "g", "topic": "t"})
	r.wantError(t, threads.EUNAVAILABLE, http.StatusServiceUnavailable)
	wantRetry(t, "m3o", "", r.Header, is(server.RetryAfterUnavailable))
	for _, p := range retryClients(e.URL) {
		ce := createErr(t, p.c, e.Key)
		if ce.Code() != connect.CodeUnavailable {
			t.Errorf("%s: %v, want Unavailable", p.name, ce)
		}
		wantRetry(t, "unary over "+p.name, threads.EUNAVAILABLE, ce.Meta(), is(server.RetryAfterUnavailable))
	}

	// No broker: live events are UNAVAILABLE.
	st2 := openStore(t)
	api := server.New(server.Config{Store: st2, Logger: quietLogger()})
	h := api.Handler()
	ts := httptest.NewUnstartedServer(h)
	ts.Config = server.HTTPServer("", h, quietLogger()) // h2c, for gRPC
	ts.Start()
	t.Cleanup(ts.Close)
	ne := &testEnv{t: t, URL: ts.URL, Store: st2, Client: ts.Client(), api: api, ts: ts}
	ne.Key = ne.newKey("acme", false)
	s, res := ne.subscribe(t, ne.Key, "group_id=g", "")
	if s != nil {
		t.Fatal("a stream opened without a broker")
	}
	res.wantError(t, threads.EUNAVAILABLE, http.StatusServiceUnavailable)
	wantRetry(t, "SSE", "", res.Header, is(server.RetryAfterUnavailable))
	for _, p := range retryClients(ne.URL) {
		wantRetry(t, "Subscribe over "+p.name, threads.EUNAVAILABLE, subscribeErr(t, p.c, ne.Key).Meta(), is(server.RetryAfterUnavailable))
	}
}
