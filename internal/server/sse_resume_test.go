package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/server"
	"github.com/threads-server/threads/internal/sqlite"
)

// TestEventsResume disconnects a subscriber again and again while writers
// keep posting, and reconnects each time with Last-Event-ID, as
// EventSource does: the pieces together must be every message, in order,
// exactly once.
func TestEventsResume(t *testing.T) {
	e := newTestEnv(t)
	// Subscribe before anything is written: the conversation's creation
	// is the first event, and its cursor the start of what must arrive.
	first := e.mustSubscribe(t, e.Key, "group_id=g", "")
	conv := e.createConversation(e.Key, "g", "resume")["id"].(string)
	if ev := first.next(); ev.Type != threads.EventConversationCreated {
		t.Fatalf("first event %s", ev.Raw)
	}
	cursor := first.lastID()
	first.close()
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
	var ids []string
	body := map[string]any{"conversation_id": conv, "limit": 200}
	for {
		ms := decodeField[[]apiMessage](t, e.post("ListMessages", e.Key, body), "messages")
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		body["sent_before"] = ms[len(ms)-1].SentAt
	}
	slices.Reverse(ids)
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

// TestEventsSlowSubscriber: a subscriber that stops reading is dropped
// when its buffer fills instead of holding up writers; the drop is
// counted; it resumes from its last cursor and misses nothing.
func TestEventsSlowSubscriber(t *testing.T) {
	e := newTestEnv(t, func(c *server.Config, b *broker.Config) {
		b.Buffer = 4
		// Long enough for the posts below on a slow machine: this test is
		// about the broker's drop, not the write deadline.
		c.StreamWriteTimeout = 10 * time.Minute
	})
	conv := e.createConversation(e.Key, "g", "slow")["id"].(string)
	// The slow client's socket takes 4 KiB before the server's writes
	// block, and the server's send buffer at most 4 MiB (Linux's tcp_wmem
	// maximum): 150 messages of 64 KiB fill the way between them twice
	// over, then the broker's buffer of 4.
	slowClient := *e
	slowClient.Client = smallReceiveBufferClient()
	slow := slowClient.mustSubscribe(t, e.Key, "group_id=g", "")
	text := strings.Repeat("x", threads.MaxTextBytes-16)
	const n = 150
	for i := range n {
		e.createMessage(e.Key, conv, "ann", fmt.Sprintf("%04d%s", i, text))
	}
	var got []string
	for len(got) < n {
		ev, err := slow.r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("the slow stream did not end by the server's hand: %v", err)
			}
			break
		}
		var d struct{ Message apiMessage }
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Message.ID)
	}
	if len(got) == n {
		t.Fatal("the slow subscriber received everything: it was never dropped")
	}
	metrics := e.do("GET", "/metrics", "", nil)
	if !strings.Contains(string(metrics.Raw), "threads_event_subscribers_dropped_total 1\n") {
		t.Errorf("the drop is not counted in /metrics")
	}
	resumed := e.mustSubscribe(t, e.Key, "group_id=g", slow.lastID())
	for len(got) < n {
		got = append(got, resumed.next().Data.Message.ID)
	}
	if diff := cmp.Diff(messageIDsOldestFirst(t, e, conv), got); diff != "" {
		t.Errorf("dropped then resumed (-want +got):\n%s", diff)
	}
}

// TestEventsStuckClient: a client that stops reading is cut off by the
// per-write deadline even when the broker's buffer could hold on, so it
// cannot hold a goroutine and a connection for ever.
func TestEventsStuckClient(t *testing.T) {
	e := newTestEnv(t, func(c *server.Config, b *broker.Config) {
		b.Buffer = 100000
		c.StreamWriteTimeout = 100 * time.Millisecond
	})
	conv := e.createConversation(e.Key, "g", "stuck")["id"].(string)
	e.mustSubscribe(t, e.Key, "group_id=g", "") // never read
	text := strings.Repeat("x", threads.MaxTextBytes-16)
	open := func() bool {
		m := e.do("GET", "/metrics", "", nil)
		return !strings.Contains(string(m.Raw), "threads_event_subscribers 0\n")
	}
	// Post until the server gives up on the stream (bounded: a liveness
	// guard, not a speed assertion).
	for i := 0; open(); i++ {
		if i == 5000 {
			t.Fatal("the stream of a client that reads nothing is still open")
		}
		e.createMessage(e.Key, conv, "ann", text)
	}
}

// smallReceiveBufferClient is an HTTP client whose connections have a
// 4 KiB receive buffer, so that a client that stops reading pushes back
// on the server after kilobytes rather than megabytes.
func smallReceiveBufferClient() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}
