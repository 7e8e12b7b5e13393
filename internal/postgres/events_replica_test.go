package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/postgres/pgtest"
	"github.com/threads-server/threads/internal/sse"
)

// TestEventStreamAcrossReplicas: a subscriber on replica A receives what
// writers post through replica B (and A) as it commits; it disconnects
// mid-stream and resumes on B with its last cursor; together the pieces
// are every message exactly once, each conversation in seq order.
func TestEventStreamAcrossReplicas(t *testing.T) {
	url := pgtest.SchemaURL(t)
	storeA, storeB := pgtest.OpenURL(t, url), pgtest.OpenURL(t, url)
	a, b := serveStore(t, storeA), serveStore(t, storeB)
	k, key, err := threads.NewKey("acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := storeA.CreateKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	sub := openStream(t, a, key, "")
	// Conversations made through B reach the stream on A; once both have,
	// the stream is surely live before the writers start.
	var convs []string
	for i := range 2 {
		c := mustDecode[apiConversation](t, b.mustPost(t, "CreateConversation", key,
			map[string]any{"group_id": "g", "topic": fmt.Sprint("c", i)}).ok(t), "conversation")
		convs = append(convs, c.ID)
	}
	for _, id := range convs {
		if e := sub.event(t); e.Type != threads.EventConversationCreated || !strings.Contains(e.Data, id) {
			t.Fatalf("stream on A got %s %s, want conversation %s created through B", e.Type, e.Data, id)
		}
	}

	const writers, each = 4, 30
	var wg sync.WaitGroup
	for w := range writers {
		via := []*apiClient{b, a}[w%2]
		wg.Go(func() {
			for i := range each {
				res, err := via.post("CreateMessage", key, map[string]any{
					"conversation_id": convs[(w+i)%2], "author_id": fmt.Sprint("w", w), "text": fmt.Sprint(i)})
				if err != nil || res.status != http.StatusOK {
					t.Errorf("CreateMessage: %v %+v", err, res)
					return
				}
			}
		})
	}
	var got []apiMessage
	for len(got) < writers*each/2 {
		got = append(got, sub.next(t))
	}
	cursor := sub.r.LastID()
	sub.close()
	resumed := openStream(t, b, key, cursor) // the other replica
	for len(got) < writers*each {
		got = append(got, resumed.next(t))
	}
	wg.Wait()

	ids := map[string]bool{}
	last := map[string]int64{}
	for _, m := range got {
		if ids[m.ID] {
			t.Errorf("message %s delivered twice", m.ID)
		}
		ids[m.ID] = true
		if m.Seq <= last[m.ConversationID] {
			t.Errorf("conversation %s: seq %d after %d", m.ConversationID, m.Seq, last[m.ConversationID])
		}
		last[m.ConversationID] = m.Seq
	}
	want := map[string]int64{convs[0]: writers * each / 2, convs[1]: writers * each / 2}
	if diff := cmp.Diff(want, last); diff != "" {
		t.Errorf("last seq delivered per conversation (-want +got):\n%s", diff)
	}
}

// stream is one SSE subscription to group g.
type stream struct {
	res    *http.Response
	r      *sse.Reader
	cancel context.CancelFunc
}

func openStream(t *testing.T, c *apiClient, key, lastID string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // liveness guard
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/v1/threads/events?group_id=g", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("subscribe: %v %v", err, res)
	}
	s := &stream{res: res, r: sse.NewReader(res.Body), cancel: cancel}
	t.Cleanup(s.close)
	return s
}

func (s *stream) event(t *testing.T) *sse.Event {
	t.Helper()
	e, err := s.r.Next()
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return e
}

func (s *stream) next(t *testing.T) apiMessage {
	t.Helper()
	e := s.event(t)
	var d struct{ Message apiMessage }
	if err := json.Unmarshal([]byte(e.Data), &d); err != nil || e.Type != threads.EventMessageCreated {
		t.Fatalf("event %s %s: %v", e.Type, e.Data, err)
	}
	return d.Message
}

func (s *stream) close() {
	s.cancel()
	s.res.Body.Close()
}
