package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/threads-server/threads/internal/apitest"
)

// flushCounter is a ResponseWriter that keeps what is written and counts
// the flushes.
type flushCounter struct {
	header  http.Header
	mu      sync.Mutex
	body    bytes.Buffer
	flushes int
}

func (f *flushCounter) Header() http.Header { return f.header }
func (f *flushCounter) WriteHeader(int)     {}
func (f *flushCounter) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.body.Write(b)
}
func (f *flushCounter) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes++
}

func (f *flushCounter) state() (events, flushes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Count(f.body.String(), "\nevent: message.created\n"), f.flushes
}

// TestEventsBurstSharesFlushes: events already queued for a stream go out
// together, not one write and flush each: a resume that replays 40 events
// flushes a few times, not 41.
func TestEventsBurstSharesFlushes(t *testing.T) {
	e := newTestEnv(t)
	live := e.mustSubscribe(t, e.Key, "group_id=g", "")
	conv := e.createConversation(e.Key, "g", "t")["id"].(string)
	from := live.next().ID
	live.close()
	const n = 40
	for range n {
		e.createMessage(e.Key, conv, "ann", "hi")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/threads/events?group_id=g", nil)
	req.Header.Set("Authorization", "Bearer "+e.Key)
	req.Header.Set("Last-Event-ID", from)
	w := &flushCounter{header: http.Header{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.api.Handler().ServeHTTP(w, req)
	}()
	apitest.Eventually(t, fmt.Sprintf("%d events replayed", n), func() bool { got, _ := w.state(); return got == n })
	cancel()
	<-done
	if _, flushes := w.state(); flushes > n/4 {
		t.Errorf("%d events went out in %d flushes, want a few", n, flushes)
	}
}
