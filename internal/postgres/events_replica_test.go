package postgres_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// TestEventStreamAcrossReplicas: a subscriber on replica A receives what
// writers post through replica B (and A) as it commits; it disconnects
// mid-stream and resumes on B with its last cursor; together the pieces
// are every message exactly once, each conversation in seq order.
func TestEventStreamAcrossReplicas(t *testing.T) {
	url := pgtest.SchemaURL(t)
	storeA, storeB := pgtest.OpenURL(t, url), pgtest.OpenURL(t, url)
	a, b := apitest.Serve(t, storeA), apitest.Serve(t, storeB)
	_, key := apitest.CreateKey(t, storeA, "acme", false)
	sub := a.MustSubscribe(t, key, "group_id=g", "")
	// Conversations made through B reach the stream on A; once both have,
	// the stream is surely live before the writers start.
	var convs []string
	for i := range 2 {
		c := apitest.MustField[apitest.Conversation](t, b.MustPost(t, "CreateConversation", key,
			map[string]any{"group_id": "g", "topic": fmt.Sprint("c", i)}).OK(t), "conversation")
		convs = append(convs, c.ID)
	}
	for _, id := range convs {
		if e := sub.Next(); e.Type != threads.EventConversationCreated || !strings.Contains(e.Raw, id) {
			t.Fatalf("stream on A got %s %s, want conversation %s created through B", e.Type, e.Raw, id)
		}
	}

	const writers, each = 4, 30
	var wg sync.WaitGroup
	for w := range writers {
		// The clients' timeout only guards against hangs.
		via := []*apitest.Client{b.WithTimeout(30 * time.Second), a.WithTimeout(30 * time.Second)}[w%2]
		wg.Go(func() {
			for i := range each {
				res, err := via.Post("CreateMessage", key, map[string]any{
					"conversation_id": convs[(w+i)%2], "author_id": fmt.Sprint("w", w), "text": fmt.Sprint(i)})
				if err != nil || res.Status != http.StatusOK {
					t.Errorf("CreateMessage: %v %+v", err, res)
					return
				}
			}
		})
	}
	var got []apitest.Message
	for len(got) < writers*each/2 {
		got = append(got, nextMessage(t, sub))
	}
	cursor := sub.LastID()
	sub.Close()
	resumed := b.MustSubscribe(t, key, "group_id=g", cursor) // the other replica
	for len(got) < writers*each {
		got = append(got, nextMessage(t, resumed))
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

// nextMessage reads the next event, which must be message.created.
func nextMessage(t *testing.T, s *apitest.Stream) apitest.Message {
	t.Helper()
	e := s.Next()
	if e.Type != threads.EventMessageCreated || e.Data.Message == nil {
		t.Fatalf("event %s %s, want message.created", e.Type, e.Raw)
	}
	return *e.Data.Message
}
