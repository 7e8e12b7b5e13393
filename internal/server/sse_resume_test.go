package server_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/sqlite"
)

// TestEventsResume disconnects a subscriber again and again while writers
// keep posting, and reconnects each time with Last-Event-ID, as
// EventSource does: the pieces together must be every message, in order,
// exactly once.
func TestEventsResume(t *testing.T) {
	e := newTestEnv(t)
	conv := e.createConversation(e.Key, "g", "resume")["id"].(string)
	const writers, perWriter = 3, 60
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				res, err := e.tryPost("CreateMessage", e.Key, map[string]any{
					"conversation_id": conv, "author_id": fmt.Sprint("w", w), "text": fmt.Sprint(i)})
				if err != nil || res.Status != 200 {
					t.Errorf("CreateMessage: %v %v", err, res)
					return
				}
			}
		})
	}
	var got []string
	cursor := ""
	for round := 0; len(got) < writers*perWriter; round++ {
		s := e.mustSubscribe(t, e.Key, "conversation_id="+conv, cursor)
		for range 1 + round%7 {
			if len(got) == writers*perWriter {
				break
			}
			ev := s.next()
			if ev.Type != threads.EventMessageCreated {
				t.Fatalf("unexpected %s", ev.Raw)
			}
			got = append(got, ev.Data.Message.ID)
		}
		cursor = s.lastID()
		s.close()
	}
	wg.Wait()
	if diff := cmp.Diff(messageIDsOldestFirst(t, e, conv), got); diff != "" {
		t.Errorf("resumed stream differs from the conversation (-want +got):\n%s", diff)
	}
}

// messageIDsOldestFirst pages the whole conversation back through the API.
func messageIDsOldestFirst(t *testing.T, e *testEnv, conv string) []string {
	t.Helper()
	ms := decodeField[[]apiMessage](t, e.post("ListMessages", e.Key,
		map[string]any{"conversation_id": conv, "limit": 200}), "messages")
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[len(ms)-1-i] = m.ID
	}
	return ids
}

// TestEventsResumeAcrossRestart: events are durable, so a client that
// resumes on a restarted server still gets everything it missed,
// including what was posted before the restart.
func TestEventsResumeAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "threads.db")
	open := func() threads.Store {
		db, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "NORMAL", Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	st := open()
	first := newTestEnvOn(t, st)
	conv := first.createConversation(first.Key, "g", "restart")["id"].(string)
	s := first.mustSubscribe(t, first.Key, "group_id=g", "")
	var want []string
	post := func(e *testEnv, text string) {
		want = append(want, e.createMessage(e.Key, conv, "ann", text)["id"].(string))
	}
	post(first, "seen before the disconnect")
	if ev := s.next(); ev.Data.Message == nil || ev.Data.Message.ID != want[0] {
		t.Fatalf("got %s", ev.Raw)
	}
	cursor := s.lastID()
	s.close()
	post(first, "missed, before the restart")
	first.api.StopStreams()
	first.ts.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = open()
	t.Cleanup(func() { st.Close() })
	second := serveOn(t, st)
	second.Key = first.Key
	post(second, "missed, after the restart")
	resumed := second.mustSubscribe(t, second.Key, "group_id=g", cursor)
	var got []string
	for len(got) < 2 {
		got = append(got, resumed.next().Data.Message.ID)
	}
	if diff := cmp.Diff(want[1:], got); diff != "" {
		t.Errorf("after the restart (-want +got):\n%s", diff)
	}
}
