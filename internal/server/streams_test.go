package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/sqlite"
)

// TestRevokedStreamEndsWithEventsQueued: a stream ended for its key's
// revocation ends at once, even with events queued. Before, it returned
// queued events ahead of its ended context, so a client that read slowly
// in a busy group kept a revoked key's stream alive for good.
func TestRevokedStreamEndsWithEventsQueued(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), sqlite.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := broker.New(broker.Config{Store: db, Logger: log})
	s := New(Config{Store: db, Events: b, Logger: log, KeyCacheTTL: 10 * time.Millisecond,
		StreamKeyCheck: 10 * time.Millisecond, Heartbeat: time.Hour})
	defer s.StopStreams()
	ctx := context.Background()
	k, secret, err := threads.NewKey("acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateConversation(ctx, "acme", &threads.Conversation{ID: "c", GroupID: "g", Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	st, err := s.openStream(ctx, http.Header{"Authorization": {"Bearer " + secret}}, http.Header{}, nil, "g", "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	for i := range 50 {
		if _, err := db.CreateMessage(ctx, "acme", &threads.Message{ID: fmt.Sprint(i), ConversationID: "c", AuthorID: "a", Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "events queued", st.Ready)
	if err := db.RevokeKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	poll(t, "the watcher ends the stream", func() bool { return st.ctx.Err() != nil })
	if !st.Ready() {
		t.Fatal("no event queued any more; the test proves nothing")
	}
	if e, err := st.next(time.Hour); threads.ErrorCode(err) != threads.EUNAUTHORIZED {
		t.Errorf("next on a revoked stream with events queued: %v, %v; want UNAUTHORIZED", e, err)
	}
}

// poll waits until cond holds, checking every few milliseconds; the
// minute is a liveness guard, not a speed bound.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for give := time.After(time.Minute); !cond(); {
		select {
		case <-tick.C:
		case <-give:
			t.Fatalf("%s: still not so after a minute", what)
		}
	}
}
