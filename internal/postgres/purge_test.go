package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/postgres"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// The purge of a deleted conversation (issue 10, items 5 and 6): it must
// finish whatever dies when, the tombstone must stay until no message is
// left, and DeleteConversation must answer when its context ends.

const (
	purgeTenant = "acme"
	// purgeSentAt is the first message's sent_at; message i (from 1) is
	// sent at purgeSentAt + i.
	purgeSentAt = 1_700_000_000_000_000
)

// purgeConv creates a conversation and writes n messages into it directly
// (CreateMessage would take a while for thousands).
func purgeConv(t testing.TB, db *postgres.DB, n int) string {
	t.Helper()
	ctx := context.Background()
	c := &threads.Conversation{ID: uuid.Must(uuid.NewV7()).String(), GroupID: "g", Topic: "doomed"}
	if err := db.CreateConversation(ctx, purgeTenant, c); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool().Exec(ctx, `INSERT INTO messages (tenant_id, conversation_id, sent_at, seq, id, author_id, text)
		SELECT $1, $2, $3::bigint + i, i, $2 || '-' || i, 'a', 'message text' FROM generate_series(1, $4::int) i`,
		purgeTenant, c.ID, purgeSentAt, n); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// purgeState is what is left of a conversation: its messages and whether
// its tombstone is there, read in one snapshot.
type purgeState struct {
	Messages  int
	Tombstone bool
}

func readPurgeState(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, conv string) purgeState {
	t.Helper()
	var s purgeState
	if err := q.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM messages WHERE tenant_id = $1 AND conversation_id = $2),
		EXISTS (SELECT FROM deleted_conversations WHERE tenant_id = $1 AND id = $2)`, purgeTenant, conv).Scan(&s.Messages, &s.Tombstone); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitPurged waits until the conversation has no message and no
// tombstone, and fails at once if it ever sees the tombstone gone while
// messages are left: that conversation would never be purged.
func waitPurged(t *testing.T, url, conv string) {
	t.Helper()
	conn := connect(t, url)
	apitest.Eventually(t, "the purge to finish", func() bool {
		s := readPurgeState(t, conn, conv)
		if !s.Tombstone && s.Messages > 0 {
			t.Fatalf("tombstone removed with %d messages left", s.Messages)
		}
		return s == purgeState{}
	})
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// holder is a transaction left open on a connection of its own, as a
// killed replica's backend would be in the middle of its statement.
type holder struct {
	conn *pgx.Conn
	pid  uint32
}

// hold begins a transaction and runs stmt in it.
func hold(t *testing.T, url, stmt string, args ...any) *holder {
	t.Helper()
	conn := connect(t, url)
	if _, err := conn.Exec(context.Background(), `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), stmt, args...); err != nil {
		t.Fatal(err)
	}
	return &holder{conn: conn, pid: conn.PgConn().PID()}
}

// waitBlocking waits until some other session waits for the holder's
// locks.
func (h *holder) waitBlocking(t *testing.T, url string) {
	t.Helper()
	conn := connect(t, url)
	apitest.Eventually(t, "a purge waiting for the held rows", func() bool {
		var n int
		if err := conn.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE $1::int = ANY (pg_blocking_pids(pid))`, h.pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
}

func (h *holder) end(t *testing.T, stmt string) {
	t.Helper()
	if _, err := h.conn.Exec(context.Background(), stmt); err != nil {
		t.Fatal(err)
	}
}

// sqlDeleteFirstBatch is a purge batch of another session: the
// conversation's first 1,000 messages.
const sqlDeleteFirstBatch = `DELETE FROM messages WHERE tenant_id = $1 AND conversation_id = $2 AND sent_at IN (
	SELECT sent_at FROM messages WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY sent_at LIMIT 1000)`

// TestPurgeCollision reproduces item 5: another session (the batch a
// killed replica's backend was still running, or another replica's purge)
// is deleting the conversation's first batch and has not committed. The
// purge waits for those rows; once the other session commits they are
// gone, so the purge's batch deletes none of them. It must go on to the
// rest, not take the empty batch for the end and drop the tombstone with
// 1,500 messages left (whose ids would then answer CONFLICT for good).
func TestPurgeCollision(t *testing.T) {
	for _, how := range []string{"DeleteConversation", "sweep after a crash"} {
		t.Run(how, func(t *testing.T) {
			const n = 2500
			url := pgtest.SchemaURL(t)
			db := pgtest.OpenURL(t, url)
			conv := purgeConv(t, db, n)
			other := hold(t, url, sqlDeleteFirstBatch, purgeTenant, conv)

			deleted := make(chan error, 1)
			if how == "DeleteConversation" {
				go func() { deleted <- db.DeleteConversation(context.Background(), purgeTenant, conv) }()
			} else {
				// The state a replica killed during DeleteConversation
				// leaves, then a replica starting: its sweep purges.
				if _, err := db.Pool().Exec(t.Context(), `WITH d AS (DELETE FROM conversations WHERE tenant_id = $1 AND id = $2)
					INSERT INTO deleted_conversations (tenant_id, id, deleted_at) VALUES ($1, $2, 1)`, purgeTenant, conv); err != nil {
					t.Fatal(err)
				}
				pgtest.OpenURL(t, url)
				deleted <- nil
			}
			other.waitBlocking(t, url)
			if got, want := readPurgeState(t, db.Pool(), conv), (purgeState{Messages: n, Tombstone: true}); got != want {
				t.Fatalf("while the purge waits: %+v, want %+v", got, want)
			}
			other.end(t, `COMMIT`)
			if err := <-deleted; err != nil {
				t.Fatalf("DeleteConversation: %v", err)
			}
			if how == "DeleteConversation" {
				// Without a deadline the call waits for the purge.
				if diff := cmp.Diff(purgeState{}, readPurgeState(t, db.Pool(), conv)); diff != "" {
					t.Errorf("after DeleteConversation returned (-want +got):\n%s", diff)
				}
			}
			waitPurged(t, url, conv)
		})
	}
}

// TestPurgeChecksBeforeTombstone: the tombstone goes only when a
// statement finds no message left, not when the purge believes it has
// passed them all. A message appears behind the purge while it waits at
// its second batch (no path of the store writes one; this stands for any
// row the purge has passed and missed); the purge must remove it too
// before the tombstone.
func TestPurgeChecksBeforeTombstone(t *testing.T) {
	url := pgtest.SchemaURL(t)
	db := pgtest.OpenURL(t, url)
	conv := purgeConv(t, db, 2500)
	row := hold(t, url, `SELECT FROM messages WHERE tenant_id = $1 AND conversation_id = $2 AND sent_at = $3 FOR UPDATE`,
		purgeTenant, conv, purgeSentAt+1001)
	deleted := make(chan error, 1)
	go func() { deleted <- db.DeleteConversation(context.Background(), purgeTenant, conv) }()
	row.waitBlocking(t, url)
	if _, err := db.Pool().Exec(t.Context(), `INSERT INTO messages (tenant_id, conversation_id, sent_at, seq, id, author_id, text)
		VALUES ($1, $2, $3, 0, 'behind', 'a', 'late')`, purgeTenant, conv, purgeSentAt); err != nil {
		t.Fatal(err)
	}
	row.end(t, `COMMIT`)
	if err := <-deleted; err != nil {
		t.Fatalf("DeleteConversation: %v", err)
	}
	if diff := cmp.Diff(purgeState{}, readPurgeState(t, db.Pool(), conv)); diff != "" {
		t.Errorf("after DeleteConversation returned (-want +got):\n%s", diff)
	}
}

// TestPurgeReplicas starts three replicas at once on a conversation left
// half deleted: their sweeps purge it together, each waiting for the
// others' batches, and none may drop the tombstone early.
func TestPurgeReplicas(t *testing.T) {
	url := pgtest.SchemaURL(t)
	db := pgtest.OpenURL(t, url)
	conv := purgeConv(t, db, 20_000)
	if _, err := db.Pool().Exec(t.Context(), `WITH d AS (DELETE FROM conversations WHERE tenant_id = $1 AND id = $2)
		INSERT INTO deleted_conversations (tenant_id, id, deleted_at) VALUES ($1, $2, 1)`, purgeTenant, conv); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		pgtest.OpenURL(t, url)
	}
	waitPurged(t, url, conv)
}

// TestPurgeInterrupted stops the purge at each of its batches (another
// session holds a row of that batch, the purge waits for it, and the
// store closes: Close cancels the purge and waits for it before the pool
// closes). The tombstone and the rest of the messages stay, and the next
// replica's sweep finishes the purge.
func TestPurgeInterrupted(t *testing.T) {
	const n = 3500 // batches of 1000, 1000, 1000 and 500
	for batch := range 4 {
		t.Run(fmt.Sprintf("batch %d", batch+1), func(t *testing.T) {
			url := pgtest.SchemaURL(t)
			db := pgtest.OpenURL(t, url)
			conv := purgeConv(t, db, n)
			row := hold(t, url, `SELECT FROM messages WHERE tenant_id = $1 AND conversation_id = $2 AND sent_at = $3 FOR UPDATE`,
				purgeTenant, conv, purgeSentAt+batch*1000+1)

			deleted := make(chan error, 1)
			go func() { deleted <- db.DeleteConversation(context.Background(), purgeTenant, conv) }()
			row.waitBlocking(t, url)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-deleted; err != nil {
				t.Fatalf("DeleteConversation: %v", err)
			}
			check := connect(t, url)
			if diff := cmp.Diff(purgeState{Messages: n - batch*1000, Tombstone: true}, readPurgeState(t, check, conv)); diff != "" {
				t.Errorf("after Close (-want +got):\n%s", diff)
			}
			row.end(t, `ROLLBACK`)
			pgtest.OpenURL(t, url)
			waitPurged(t, url, conv)
		})
	}
}

// TestDeleteConversationContextEnds: DeleteConversation answers once its
// context ends (the request's deadline, or the client leaving), with the
// conversation deleted and its purge going on in the background, which
// then removes every message. Another session holds a message of the
// second batch, so the purge cannot finish before the call returns; the
// context is cancelled once the purge is seen waiting for it (a deadline
// ends the context the same way, at a time this test would have to
// guess).
func TestDeleteConversationContextEnds(t *testing.T) {
	const n = 5000
	url := pgtest.SchemaURL(t)
	db := pgtest.OpenURL(t, url)
	conv := purgeConv(t, db, n)
	row := hold(t, url, `SELECT FROM messages WHERE tenant_id = $1 AND conversation_id = $2 AND sent_at = $3 FOR UPDATE`,
		purgeTenant, conv, purgeSentAt+1001)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	deleted := make(chan error, 1)
	go func() { deleted <- db.DeleteConversation(ctx, purgeTenant, conv) }()
	row.waitBlocking(t, url)
	cancel()
	if err := <-deleted; err != nil {
		t.Fatalf("DeleteConversation: %v, want nil (the conversation is deleted)", err)
	}
	if diff := cmp.Diff(purgeState{Messages: n - 1000, Tombstone: true}, readPurgeState(t, db.Pool(), conv)); diff != "" {
		t.Errorf("when DeleteConversation returned (-want +got):\n%s", diff)
	}
	if _, err := db.FindConversation(t.Context(), purgeTenant, conv, ""); threads.ErrorCode(err) != threads.ENOTFOUND {
		t.Errorf("FindConversation after delete: %v, want NOT_FOUND", err)
	}
	row.end(t, `COMMIT`)
	waitPurged(t, url, conv)
}

// BenchmarkDeleteConversationFresh times DeleteConversation of one
// conversation of 10,000 and 100,000 messages on a fresh table, never
// analyzed (autovacuum off for it), until the purge is over (the context
// has no deadline). Run with -benchtime=1x -count=3.
func BenchmarkDeleteConversationFresh(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				db := pgtest.OpenURL(b, pgtest.SchemaURL(b))
				ctx := context.Background()
				if _, err := db.Pool().Exec(ctx, `ALTER TABLE messages SET (autovacuum_enabled = false)`); err != nil {
					b.Fatal(err)
				}
				conv := purgeConv(b, db, n)
				b.StartTimer()
				if err := db.DeleteConversation(ctx, purgeTenant, conv); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				var left int
				if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&left); err != nil || left != 0 {
					b.Fatalf("%d messages left (%v)", left, err)
				}
				db.Close()
			}
		})
	}
}
