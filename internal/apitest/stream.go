package apitest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/threads-server/threads/internal/sse"
)

// Event is one event of the stream as a client sees it, its data decoded.
type Event struct {
	ID, Type string
	Raw      string // the data as sent
	Data     EventData
}

// Stream is one open GET /v1/threads/events. It is read from the test's
// goroutine.
type Stream struct {
	t      testing.TB
	res    *http.Response
	r      *sse.Reader
	cancel context.CancelFunc
	// heartbeats counts id-only blocks (the first cursor and heartbeats).
	heartbeats int
}

// Subscribe opens GET /v1/threads/events?query, with Last-Event-ID when
// lastEventID is not empty; headers are name, value pairs. It returns the
// stream, or the answer when the server refused it. The stream closes when
// the test ends.
func (c *Client) Subscribe(t testing.TB, key, query, lastEventID string, headers ...string) (*Stream, *Response) {
	t.Helper()
	// A liveness guard for a stream the test forgets to close, not a
	// speed assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/v1/threads/events?"+query, nil)
	if err != nil {
		cancel()
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
	res, err := c.HTTP.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		defer cancel()
		defer res.Body.Close()
		out := &Response{Status: res.StatusCode, Header: res.Header}
		raw := make([]byte, 4096)
		n, _ := res.Body.Read(raw)
		out.Raw = raw[:n]
		_ = json.Unmarshal(out.Raw, &out.Body) // not every answer is JSON
		return nil, out
	}
	s := &Stream{t: t, res: res, r: sse.NewReader(res.Body), cancel: cancel}
	s.r.IDOnly = func(string) { s.heartbeats++ }
	t.Cleanup(s.Close)
	return s, nil
}

// MustSubscribe is Subscribe for a stream that must open.
func (c *Client) MustSubscribe(t testing.TB, key, query, lastEventID string, headers ...string) *Stream {
	t.Helper()
	s, res := c.Subscribe(t, key, query, lastEventID, headers...)
	if s == nil {
		t.Fatalf("subscribe %s: status %d: %s", query, res.Status, res.Raw)
	}
	return s
}

// Next reads the next event; the stream's guard bounds the wait.
func (s *Stream) Next() Event {
	s.t.Helper()
	e, err := s.r.Next()
	if err != nil {
		s.t.Fatalf("reading the event stream: %v", err)
	}
	out := Event{ID: e.ID, Type: e.Type, Raw: e.Data}
	if err := json.Unmarshal([]byte(e.Data), &out.Data); err != nil {
		s.t.Fatalf("event data is not JSON: %v: %s", err, e.Data)
	}
	return out
}

// NextRaw reads the next event as sent, or the error that ended the
// stream (io.EOF when the server closed it); a goroutine other than the
// test's may call it.
func (s *Stream) NextRaw() (*sse.Event, error) { return s.r.Next() }

// Header is the stream's response header.
func (s *Stream) Header() http.Header { return s.res.Header }

// Reader is the stream's SSE reader, for tests that watch its id-only
// blocks (Reader().IDOnly) or read it their own way.
func (s *Stream) Reader() *sse.Reader { return s.r }

// LastID is what EventSource would send as Last-Event-ID now.
func (s *Stream) LastID() string { return s.r.LastID() }

// Heartbeats is how many id-only blocks (the first cursor, heartbeats)
// the stream has carried so far.
func (s *Stream) Heartbeats() int { return s.heartbeats }

// Close ends the stream; twice is harmless.
func (s *Stream) Close() {
	s.cancel()
	s.res.Body.Close()
}
