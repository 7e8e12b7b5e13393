package server

import (
	"strings"
	"testing"
	"time"

	"github.com/threads-server/threads"
)

// TestRenderCacheBounded: the cache of rendered events holds at most
// renderCacheSize events and renderCacheBytes of them, however large the
// events, and still serves the newest from the cache.
func TestRenderCacheBounded(t *testing.T) {
	event := func(text string) *threads.Event {
		return &threads.Event{Type: threads.EventMessageCreated, Cursor: threads.EventCursor{At: 1, Hi: 1},
			Message: &threads.Message{ID: "m", ConversationID: "c", AuthorID: "a", Text: text, SentAt: time.Unix(1, 0)}}
	}
	check := func(c *renderCache) {
		t.Helper()
		total := 0
		for _, b := range c.m {
			total += len(b)
		}
		if len(c.m) != c.count || total != c.bytes || c.count > renderCacheSize || c.bytes > renderCacheBytes {
			t.Fatalf("%d events of %d bytes (counted %d of %d); at most %d of %d bytes", len(c.m), total, c.count, c.bytes, renderCacheSize, renderCacheBytes)
		}
	}
	var c renderCache
	huge := strings.Repeat("\t", threads.MaxTextBytes)
	var last *threads.Event
	for range 300 { // 300 × 128 KiB: twice the bytes allowed
		last = event(huge)
		c.sse(last)
		check(&c)
	}
	if b := c.sse(last); &b[0] != &c.m[last][0] {
		t.Error("the newest event is not served from the cache")
	}
	for range 2 * renderCacheSize {
		c.sse(event("small"))
		check(&c)
	}
	if c.count != renderCacheSize {
		t.Errorf("%d small events cached, want %d", c.count, renderCacheSize)
	}
}
