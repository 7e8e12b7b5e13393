package server_test

import (
	"testing"

	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/sse"
)

// apiEvent is one SSE event as a client sees it, its data decoded.
type apiEvent = apitest.Event

// sseClient is one open event stream (apitest.Stream), with its reader
// at hand for tests that watch id-only blocks.
type sseClient struct {
	*apitest.Stream
	r *sse.Reader
}

// subscribe opens GET /v1/threads/events?query. It returns the stream, or
// the error response when the server refused it.
func (e *testEnv) subscribe(t *testing.T, key, query, lastEventID string, headers ...string) (*sseClient, *response) {
	t.Helper()
	s, res := e.client().Subscribe(t, key, query, lastEventID, headers...)
	if s == nil {
		return nil, &response{res}
	}
	return &sseClient{Stream: s, r: s.Reader()}, nil
}

// mustSubscribe is subscribe for a stream that must open.
func (e *testEnv) mustSubscribe(t *testing.T, key, query, lastEventID string) *sseClient {
	t.Helper()
	c, res := e.subscribe(t, key, query, lastEventID)
	if c == nil {
		t.Fatalf("subscribe %s: status %d: %s", query, res.Status, res.Raw)
	}
	return c
}

func (c *sseClient) next() apiEvent { return c.Next() }
func (c *sseClient) lastID() string { return c.LastID() }
func (c *sseClient) close()         { c.Close() }
