package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/postgres"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// TestLocksBeforeTxid checks the writers' half of final.go on every
// writer declared with the changes' entry point (postgres.Writers: a
// writer added to the store joins that list by being declared): each takes
// the tenant's event lock, and a writer of an existing conversation the
// conversation's lock, before its transaction has a txid. A checker holds
// one lock exclusively; the write must then be found waiting for it with
// no txid yet, and complete once the lock is released. A declared writer
// that run below cannot make write fails the test, so that each new
// writer gets its case.
func TestLocksBeforeTxid(t *testing.T) {
	db := pgtest.Open(t)
	ctx := t.Context()
	checker, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer checker.Release()

	// run makes each writer write once, given a conversation of its own.
	run := map[string]func(ctx context.Context, c *threads.Conversation) error{
		"CreateConversation": func(ctx context.Context, c *threads.Conversation) error {
			return db.CreateConversation(ctx, acme, &threads.Conversation{ID: c.ID + "-new", GroupID: "g", Topic: "t"})
		},
		"UpdateConversation": func(ctx context.Context, c *threads.Conversation) error {
			_, err := db.UpdateConversation(ctx, acme, c.ID, "new topic")
			return err
		},
		"DeleteConversation": func(ctx context.Context, c *threads.Conversation) error {
			return db.DeleteConversation(ctx, acme, c.ID)
		},
		"CreateMessage": func(ctx context.Context, c *threads.Conversation) error {
			_, err := db.CreateMessage(ctx, acme, &threads.Message{ID: c.ID + "-m", ConversationID: c.ID, AuthorID: "a", Text: "x"})
			return err
		},
	}
	writers := postgres.Writers()
	declared := map[string]bool{}
	for i, w := range writers {
		declared[w.Name] = true
		write, ok := run[w.Name]
		if !ok {
			t.Errorf("writer %s is declared, but this test cannot make it write: add it to run", w.Name)
			continue
		}
		locks := []string{"tenant"}
		if w.Conversation {
			locks = append(locks, "conversation")
		}
		for _, lock := range locks {
			c := createConv(t, db, fmt.Sprintf("c%d-%s", i, lock))
			key := db.EventLockKey(acme)
			if lock == "conversation" {
				key = db.ConversationLockKey(acme, c.ID)
			}
			if err := holdAndWrite(ctx, checker, key, func(ctx context.Context) error { return write(ctx, c) }); err != nil {
				t.Errorf("%s under the %s's lock: %v", w.Name, lock, err)
			}
		}
	}
	for name := range run {
		if !declared[name] {
			t.Errorf("run has a case for %s, which is no declared writer", name)
		}
	}
	if len(writers) < len(run) {
		t.Errorf("%d writers declared, want at least the %d this test knows", len(writers), len(run))
	}

	// The entry point's event write alone in a transaction (InsertEvent,
	// which tests use for raw transactions) takes the tenant's lock first
	// too.
	c := createConv(t, db, "raw")
	if err := holdAndWrite(ctx, checker, db.EventLockKey(acme), func(ctx context.Context) error {
		tx, err := db.Pool().Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.Background())
		if _, err := db.InsertEvent(ctx, tx, acme, threads.NewConversationEvent(threads.EventConversationUpdated, c)); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}); err != nil {
		t.Errorf("InsertEvent under the tenant's lock: %v", err)
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
