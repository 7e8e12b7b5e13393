package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// TestLocksBeforeTxid checks the writers' half of final.go on every path
// that writes events: each takes the tenant's event lock, and a change to
// an existing conversation the conversation's lock, before its
// transaction has a txid. A checker holds one lock exclusively; the write
// must then be found waiting for it with no txid yet, and complete once
// the lock is released.
func TestLocksBeforeTxid(t *testing.T) {
	db := pgtest.Open(t)
	ctx := t.Context()
	c := createConv(t, db, "c")
	tenant, conv := db.EventLockKey(acme), db.ConversationLockKey(acme, c.ID)
	other := &threads.Conversation{ID: "other", GroupID: "g", Topic: "t"}
	checker, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer checker.Release()

	update := func(ctx context.Context) error {
		_, err := db.UpdateConversation(ctx, acme, c.ID, "new topic")
		return err
	}
	message := func(id string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := db.CreateMessage(ctx, acme, &threads.Message{ID: id, ConversationID: c.ID, AuthorID: "a", Text: "x"})
			return err
		}
	}
	for _, w := range []struct {
		name, lock string
		key        int64
		write      func(context.Context) error
	}{
		{"CreateConversation", "tenant", tenant, func(ctx context.Context) error { return db.CreateConversation(ctx, acme, other) }},
		{"UpdateConversation", "tenant", tenant, update},
		{"UpdateConversation", "conversation", conv, update},
		{"CreateMessage", "tenant", tenant, message("m1")},
		{"CreateMessage", "conversation", conv, message("m2")},
		{"InsertEvent", "tenant", tenant, func(ctx context.Context) error {
			tx, err := db.Pool().Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(context.Background())
			if _, err := db.InsertEvent(ctx, tx, acme, threads.NewConversationEvent(threads.EventConversationUpdated, c)); err != nil {
				return err
			}
			return tx.Commit(ctx)
		}},
		{"DeleteConversation", "tenant", tenant, func(ctx context.Context) error { return db.DeleteConversation(ctx, acme, other.ID) }},
		{"DeleteConversation", "conversation", conv, func(ctx context.Context) error { return db.DeleteConversation(ctx, acme, c.ID) }},
	} {
		what := w.name + " under the " + w.lock + "'s lock"
		if err := holdAndWrite(ctx, checker, w.key, w.write); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
}

// holdAndWrite holds key exclusively while write starts, waits until it
// finds write waiting for it, checks that it has no txid, then lets it
// finish.
func holdAndWrite(ctx context.Context, checker *pgxpool.Conn, key int64, write func(context.Context) error) error {
	if _, err := checker.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- write(ctx) }()
	var noTxid bool
	var waitErr error
	// Not apitest.Eventually: the lock must be released whatever happens.
	apitest.Poll(time.Millisecond, 10*time.Second, func() bool {
		waitErr = checker.QueryRow(ctx, `SELECT a.backend_xid IS NULL FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.locktype = 'advisory' AND NOT l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid::bigint = ($1::bigint >> 32) & 4294967295 AND l.objid::bigint = $1::bigint & 4294967295`, key).Scan(&noTxid)
		return waitErr == nil
	})
	if _, err := checker.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
		return err
	}
	err := <-done
	switch {
	case waitErr != nil:
		return fmt.Errorf("never found waiting for the lock (%v); the write returned %v", waitErr, err)
	case !noTxid:
		return fmt.Errorf("waits for the lock with a txid already taken")
	}
	return err
}
