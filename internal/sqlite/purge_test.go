package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/sqlite"
)

// TestPurgeResumesAfterCrash leaves the database as a process killed in
// the middle of DeleteConversation would (conversation row gone,
// tombstone written, messages still there) and checks that the next Open
// finishes the purge by itself.
func TestPurgeResumesAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "threads.db")
	db := open(t, path)
	ctx := t.Context()
	c := &threads.Conversation{ID: uuid.Must(uuid.NewV7()).String(), GroupID: "g", Topic: "doomed"}
	if err := db.CreateConversation(ctx, "acme", c); err != nil {
		t.Fatal(err)
	}
	for i := range 2100 { // more than two purge batches
		m := &threads.Message{ID: uuid.Must(uuid.NewV7()).String(), ConversationID: c.ID, AuthorID: "a", Text: string(rune('a' + i%26))}
		if _, err := db.CreateMessage(ctx, "acme", m); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	raw := rawDB(t, path)
	if _, err := raw.Exec(`DELETE FROM conversations WHERE tenant_id = 'acme' AND id = ?`, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO deleted_conversations (tenant_id, id, deleted_at) VALUES ('acme', ?, 1)`, c.ID); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		var n int
		if err := raw.QueryRow(q, c.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM messages WHERE conversation_id = ?`); n != 2100 {
		t.Fatalf("setup: %d messages, want 2100", n)
	}

	db2, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	// The orphans are invisible at once, purged or not.
	if _, err := db2.ListMessages(ctx, "acme", threads.MessageFilter{ConversationID: c.ID, Limit: 25}); threads.ErrorCode(err) != threads.ENOTFOUND {
		t.Fatalf("ListMessages of a deleted conversation: %v, want NOT_FOUND", err)
	}
	// The sweep started by Open removes them.
	apitest.EventuallyNil(t, "the purge after reopen", func() error {
		if n := count(`SELECT count(*) FROM messages WHERE conversation_id = ?`); n != 0 {
			return fmt.Errorf("%d messages left", n)
		}
		if count(`SELECT count(*) FROM deleted_conversations WHERE id = ?`) != 0 {
			return errors.New("the tombstone is left")
		}
		return nil
	})
}

// held is a conversation of n messages in a store whose file another
// connection locks for writing right after DeleteConversation commits (in
// the conversation.deleted callback, which runs before the purge starts),
// so the purge cannot delete a message until release.
type held struct {
	db      *sqlite.DB
	path    string
	raw     *sql.DB
	conv    string
	n       int
	deleted chan error
	lock    *sql.Conn
}

// deleteHeld creates the conversation, starts DeleteConversation(ctx) and
// returns once the purge is locked out.
func deleteHeld(t *testing.T, ctx context.Context, n int, opt sqlite.Options) *held {
	t.Helper()
	h := &held{path: filepath.Join(t.TempDir(), "threads.db"), n: n, deleted: make(chan error, 1)}
	var err error
	if h.db, err = sqlite.Open(t.Context(), h.path, opt); err != nil {
		t.Fatal(err)
	}
	c := &threads.Conversation{ID: uuid.Must(uuid.NewV7()).String(), GroupID: "g", Topic: "doomed"}
	if err := h.db.CreateConversation(t.Context(), "acme", c); err != nil {
		t.Fatal(err)
	}
	h.conv = c.ID
	h.raw = rawDB(t, h.path)
	if _, err := h.raw.Exec(`INSERT INTO messages (tenant_id, conversation_id, sent_at, seq, id, author_id, text)
		WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < ?)
		SELECT 'acme', ?, 1700000000000000 + n, n, ? || '-' || n, 'a', 'message text' FROM i`, n, c.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	if h.lock, err = h.raw.Conn(t.Context()); err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	locked := make(chan error, 1)
	h.db.OnEvents(func(string) {
		if armed.CompareAndSwap(true, false) {
			_, err := h.lock.ExecContext(context.Background(), `BEGIN IMMEDIATE`)
			locked <- err
		}
	})
	armed.Store(true)
	go func() { h.deleted <- h.db.DeleteConversation(ctx, "acme", c.ID) }()
	if err := <-locked; err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *held) release(t *testing.T) {
	t.Helper()
	if _, err := h.lock.ExecContext(context.Background(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	h.lock.Close()
}

// purgeState is what is left of the conversation.
type purgeState struct {
	Messages  int
	Tombstone bool
}

func (h *held) state(t *testing.T) purgeState {
	t.Helper()
	var s purgeState
	if err := h.raw.QueryRow(`SELECT (SELECT count(*) FROM messages WHERE conversation_id = ?1),
		EXISTS (SELECT 1 FROM deleted_conversations WHERE id = ?1)`, h.conv).Scan(&s.Messages, &s.Tombstone); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitPurged polls until no message and no tombstone is left, failing if
// the tombstone goes first. The limit only ends a test that would hang.
func (h *held) waitPurged(t *testing.T) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(3 * time.Minute)
	for {
		s := h.state(t)
		if s == (purgeState{}) {
			return
		}
		if !s.Tombstone {
			t.Fatalf("tombstone removed with %d messages left", s.Messages)
		}
		select {
		case <-tick.C:
		case <-limit:
			t.Fatalf("purge not finished: %+v", s)
		}
	}
}

// TestDeleteConversationContextEnds: DeleteConversation answers once its
// context ends (the request's deadline, or the client leaving) with the
// conversation deleted, while its purge cannot run; the purge then goes on
// in the background and removes every message. The context is cancelled
// once the purge is locked out (a deadline ends it the same way, at a time
// the test would have to guess).
func TestDeleteConversationContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h := deleteHeld(t, ctx, 5000, sqlite.Options{})
	defer h.db.Close()
	cancel()
	if err := <-h.deleted; err != nil {
		t.Fatalf("DeleteConversation: %v, want nil (the conversation is deleted)", err)
	}
	if diff := cmp.Diff(purgeState{Messages: h.n, Tombstone: true}, h.state(t)); diff != "" {
		t.Errorf("when DeleteConversation returned (-want +got):\n%s", diff)
	}
	if _, err := h.db.FindConversation(t.Context(), "acme", h.conv, ""); threads.ErrorCode(err) != threads.ENOTFOUND {
		t.Errorf("FindConversation after delete: %v, want NOT_FOUND", err)
	}
	h.release(t)
	h.waitPurged(t)
}

// TestPurgeStopsAtClose: Close stops the background purge (locked out
// here) and waits for it before it closes the file, rather than leaving it
// to fail when its wait for the lock times out; the tombstone and the
// messages stay, and the next Open's sweep finishes the purge.
func TestPurgeStopsAtClose(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logged errorLog
	h := deleteHeld(t, ctx, 5000, sqlite.Options{Logger: slog.New(&logged)})
	cancel()
	if err := <-h.deleted; err != nil {
		t.Fatalf("DeleteConversation: %v", err)
	}
	if err := h.db.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(purgeState{Messages: h.n, Tombstone: true}, h.state(t)); diff != "" {
		t.Errorf("after Close (-want +got):\n%s", diff)
	}
	h.release(t)
	db := open(t, h.path)
	defer db.Close()
	h.waitPurged(t)
	if errs := logged.all(); len(errs) > 0 {
		t.Errorf("the stopped purge logged errors: %q", errs)
	}
}

// errorLog is a slog.Handler that keeps the messages of errors.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelError }
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler               { return l }
func (l *errorLog) WithGroup(string) slog.Handler                    { return l }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, msg)
	return nil
}

func (l *errorLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}
