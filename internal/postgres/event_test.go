package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/postgres"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// These tests reach under the store (raw transactions that write events
// the way it does) to make commits land out of txid order, which the
// behaviour suite cannot do through the Store interface.

const acme = "acme"

var everything threads.EventFilter

func read(t *testing.T, db *postgres.DB, after threads.EventCursor, limit int) []*threads.Event {
	t.Helper()
	evs, _, err := db.ReadEvents(t.Context(), acme, after, everything, limit)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	return evs
}

func head(t *testing.T, db *postgres.DB) threads.EventCursor {
	t.Helper()
	h, err := db.EventHead(t.Context(), acme)
	if err != nil {
		t.Fatalf("EventHead: %v", err)
	}
	return h
}

// openEvent begins a raw transaction and writes one event in it, left
// open: the shape of a writer that has taken its txid and not committed.
func openEvent(t *testing.T, db *postgres.DB, e *threads.Event) (pgx.Tx, int64) {
	t.Helper()
	tx, err := db.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	txid, err := db.InsertEvent(t.Context(), tx, acme, e)
	if err != nil {
		t.Fatalf("InsertEvent: %v", err)
	}
	return tx, txid
}

func createConv(t *testing.T, db *postgres.DB, id string) *threads.Conversation {
	t.Helper()
	c := &threads.Conversation{ID: id, GroupID: "g", Topic: "topic"}
	if err := db.CreateConversation(t.Context(), acme, c); err != nil {
		t.Fatalf("CreateConversation: %v", err)
	}
	return c
}

func createMsg(t *testing.T, db *postgres.DB, conv, text string) *threads.Message {
	t.Helper()
	m, err := db.CreateMessage(t.Context(), acme, &threads.Message{ID: text, ConversationID: conv, AuthorID: "a", Text: text})
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	return m
}

// TestEventOutOfOrderCommits: T1 takes its txid first and commits last. A
// reader must not pass T2's event while T1 is open, else T1's event, at
// an earlier position, would be skipped; once T1 commits, both come, in
// txid order, once each.
func TestEventOutOfOrderCommits(t *testing.T) {
	db := pgtest.Open(t)
	c := createConv(t, db, "c1")
	start := head(t, db)

	tx1, txid1 := openEvent(t, db, threads.NewConversationEvent(threads.EventConversationUpdated, c))
	m := createMsg(t, db, c.ID, "committed second") // T2, committed
	if evs := read(t, db, start, 10); len(evs) != 0 {
		t.Fatalf("with T1 open, ReadEvents after the head returns %d events (first %s at %+v), want none", len(evs), evs[0].Type, evs[0].Cursor)
	}
	if h := head(t, db); h.Hi > txid1 {
		t.Fatalf("with T1 (txid %d) open, the head %+v is past it", txid1, h)
	}
	if evs := read(t, db, threads.EventCursor{}, 10); len(evs) != 1 || evs[0].Type != threads.EventConversationCreated {
		t.Fatalf("with T1 open, the whole log is %d events, want the conversation's creation only", len(evs))
	}

	if err := tx1.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := read(t, db, start, 10)
	if len(evs) != 2 || evs[0].Type != threads.EventConversationUpdated || evs[1].Type != threads.EventMessageCreated {
		t.Fatalf("after T1 committed: %d events, want T1's conversation.updated then T2's message.created", len(evs))
	}
	if evs[0].Cursor.Hi != txid1 || !evs[0].Cursor.Before(evs[1].Cursor) || evs[1].Message.ID != m.ID {
		t.Fatalf("after T1 committed: cursors %+v, %+v; T1's txid %d", evs[0].Cursor, evs[1].Cursor, txid1)
	}
	if more := read(t, db, evs[1].Cursor, 10); len(more) != 0 {
		t.Fatalf("%d events after the last one", len(more))
	}
}

// TestEventNotHeldBack: an open transaction that writes no event of the
// tenant (another tenant's writer, or any transaction holding a txid)
// does not keep the tenant's own writes from being read at once.
func TestEventNotHeldBack(t *testing.T) {
	db := pgtest.Open(t)
	c := createConv(t, db, "c1")
	start := head(t, db)

	other, err := db.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(context.Background())
	if _, err := db.InsertEvent(t.Context(), other, "another-tenant", threads.NewConversationEvent(threads.EventConversationUpdated, c)); err != nil {
		t.Fatal(err)
	}
	idle, err := db.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Rollback(context.Background())
	if _, err := idle.Exec(t.Context(), `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}

	m := createMsg(t, db, c.ID, "not held back")
	evs := read(t, db, start, 10)
	if len(evs) != 1 || evs[0].Message == nil || evs[0].Message.ID != m.ID {
		t.Fatalf("read after the write: %d events, want the message's", len(evs))
	}
	if h := head(t, db); !evs[0].Cursor.Before(h) {
		t.Fatalf("head %+v is not past the event just read at %+v", h, evs[0].Cursor)
	}
}

// TestEventTailStress: writers commit events with random pauses inside
// their transactions (some roll back), others through CreateMessage, while
// a reader tails the log from its last cursor. The reader must see every
// committed event exactly once, in the order of a final read.
func TestEventTailStress(t *testing.T) {
	db := pgtest.Open(t)
	ctx := t.Context()
	c := createConv(t, db, "c1")
	start := head(t, db)
	const rawWriters, msgWriters, each = 6, 2, 30

	var mu sync.Mutex
	committed := map[string]bool{}
	var writers sync.WaitGroup
	for w := range rawWriters {
		writers.Go(func() {
			for j := range each {
				key := fmt.Sprintf("raw-%d-%d", w, j)
				if err := rawEvent(ctx, db, key); err != nil {
					t.Errorf("%s: %v", key, err)
					return
				}
				mu.Lock()
				committed[key] = !rolledBack(key)
				mu.Unlock()
			}
		})
	}
	for w := range msgWriters {
		writers.Go(func() {
			for j := range each {
				key := fmt.Sprintf("msg-%d-%d", w, j)
				if _, err := db.CreateMessage(ctx, acme, &threads.Message{ID: key, ConversationID: c.ID, AuthorID: "a", Text: key}); err != nil {
					t.Errorf("%s: %v", key, err)
					return
				}
				mu.Lock()
				committed[key] = true
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { writers.Wait(); close(done) }()

	var seen []*threads.Event
	after := start
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(time.Millisecond) // the tail's pace while it has caught up
	defer tick.Stop()
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		evs := read(t, db, after, 7)
		seen = append(seen, evs...)
		if len(evs) > 0 {
			after = evs[len(evs)-1].Cursor
		} else if finished {
			break
		} else {
			select {
			case <-tick.C:
			case <-done:
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the tail did not finish within a minute")
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	var final []*threads.Event
	for after := start; ; {
		evs := read(t, db, after, 100)
		if len(evs) == 0 {
			break
		}
		final, after = append(final, evs...), evs[len(evs)-1].Cursor
	}
	if len(seen) != len(final) {
		t.Errorf("the tail saw %d events, a final read finds %d", len(seen), len(final))
	}
	got := map[string]int{}
	for i, e := range seen {
		k := eventKey(e)
		got[k]++
		if got[k] > 1 {
			t.Errorf("the tail saw %s twice", k)
		}
		if i < len(final) && (final[i].Cursor != e.Cursor || eventKey(final[i]) != k) {
			t.Errorf("tail event %d is %s at %+v, the final read has %s at %+v", i, k, e.Cursor, eventKey(final[i]), final[i].Cursor)
		}
	}
	for k, ok := range committed {
		if ok && got[k] != 1 {
			t.Errorf("committed event %s seen %d times", k, got[k])
		}
		if !ok && got[k] != 0 {
			t.Errorf("rolled back event %s seen", k)
		}
	}
}

func rolledBack(key string) bool { return len(key)%7 == 0 }

// rawEvent writes one event in a transaction that pauses before and after
// the write, and rolls back some.
func rawEvent(ctx context.Context, db *postgres.DB, key string) error {
	tx, err := db.Pool().Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	// The pauses are what the test is about: transactions that stay open
	// for a random while, so commits land out of txid order.
	time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	e := threads.NewConversationEvent(threads.EventConversationUpdated, &threads.Conversation{ID: key, GroupID: "g", Topic: key})
	if _, err := db.InsertEvent(ctx, tx, acme, e); err != nil {
		return err
	}
	time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
	if rolledBack(key) {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}

func eventKey(e *threads.Event) string {
	if e.Message != nil {
		return e.Message.ID
	}
	return e.Conversation.ID
}

// TestJSONTime: the SQL rendering of sent_at and created_at parses back to
// the exact microsecond, whatever its trailing zeros.
func TestJSONTime(t *testing.T) {
	db := pgtest.Open(t)
	for _, us := range []int64{1, 999999, 1_000_000, 1764065045_000000, 1764065045_123400, 1764065045_000001, 253402300799_999999} {
		var raw []byte
		if err := db.Pool().QueryRow(t.Context(), `SELECT `+postgres.JSONTime("$1::bigint"), us).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var got time.Time
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("%d renders as %s: %v", us, raw, err)
		}
		if want := threads.FromMicros(us); !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%d renders as %s, which parses as %v, want %v", us, raw, got, want)
		}
	}
}
