package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/sse"
)

// apiEvent is one SSE event as a client sees it, its data decoded.
type apiEvent struct {
	ID, Type string
	Raw      string
	Data     struct {
		Type         string           `json:"type"`
		Cursor       string           `json:"cursor"`
		Conversation *apiConversation `json:"conversation"`
		Message      *apiMessage      `json:"message"`
	}
}

// sseClient is one open event stream.
type sseClient struct {
	t      *testing.T
	res    *http.Response
	r      *sse.Reader
	cancel context.CancelFunc
	// heartbeats counts id-only blocks (the first cursor and heartbeats).
	heartbeats int
}

// subscribe opens GET /v1/threads/events?query. It returns the stream, or
// the error response when the server refused it.
func (e *testEnv) subscribe(t *testing.T, key, query, lastEventID string, headers ...string) (*sseClient, *response) {
	t.Helper()
	// A liveness guard for a stream the test forgets to close, not a
	// speed assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/v1/threads/events?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.Client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		defer cancel()
		defer res.Body.Close()
		out := &response{&apitest.Response{Status: res.StatusCode, Header: res.Header}}
		raw := make([]byte, 4096)
		n, _ := res.Body.Read(raw)
		out.Raw = raw[:n]
		_ = json.Unmarshal(out.Raw, &out.Body)
		return nil, out
	}
	c := &sseClient{t: t, res: res, r: sse.NewReader(res.Body), cancel: cancel}
	c.r.IDOnly = func(string) { c.heartbeats++ }
	t.Cleanup(c.close)
	return c, nil
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

// next reads the next event; the stream's context bounds the wait.
func (c *sseClient) next() apiEvent {
	c.t.Helper()
	e, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("reading the event stream: %v", err)
	}
	out := apiEvent{ID: e.ID, Type: e.Type, Raw: e.Data}
	if err := json.Unmarshal([]byte(e.Data), &out.Data); err != nil {
		c.t.Fatalf("event data is not JSON: %v: %s", err, e.Data)
	}
	return out
}

// lastID is what EventSource would send as Last-Event-ID now.
func (c *sseClient) lastID() string { return c.r.LastID() }

func (c *sseClient) close() {
	c.cancel()
	c.res.Body.Close()
}
