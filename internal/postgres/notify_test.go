package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/postgres"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// Two stores on one schema are two replicas: their only link is the
// database, LISTEN/NOTIFY included. Waits are bounded (10s) but nothing
// here asserts how fast a notification travels.

const notifyWait = 10 * time.Second

// callbacks registers an OnEvents callback that never blocks and returns
// the names it is called with.
func callbacks(db *postgres.DB) <-chan string {
	got := make(chan string, 1000)
	db.OnEvents(func(tenant string) {
		select {
		case got <- tenant:
		default:
		}
	})
	return got
}

// waitFor waits for the callback to name tenant, skipping other names.
func waitFor(t *testing.T, got <-chan string, tenant, what string) {
	t.Helper()
	deadline := time.After(notifyWait)
	for {
		select {
		case name := <-got:
			if name == tenant {
				return
			}
		case <-deadline:
			t.Fatalf("%s: OnEvents was not called with %q within %s", what, tenant, notifyWait)
		}
	}
}

func replicas(t *testing.T) (a, b *postgres.DB) {
	url := pgtest.SchemaURL(t)
	a, b = pgtest.OpenURL(t, url), pgtest.OpenURL(t, url)
	if a.Channel() != b.Channel() || !strings.HasPrefix(a.Channel(), "threads_events.t_") {
		t.Fatalf("channels %q and %q: want one, named after the test's schema", a.Channel(), b.Channel())
	}
	return a, b
}

// TestEventsAcrossReplicas: a write through A calls A's callbacks before
// it returns, and B's through the database; B can then read the event.
func TestEventsAcrossReplicas(t *testing.T) {
	a, b := replicas(t)
	gotA, gotB := callbacks(a), callbacks(b)
	c := createConv(t, a, "c1")
	select {
	case name := <-gotA:
		if name != acme {
			t.Fatalf("A's callback named %q first, want %q", name, acme)
		}
	default:
		t.Fatal("CreateConversation returned before calling the callbacks of its own process")
	}
	waitFor(t, gotB, acme, "a write through A, seen by B")
	evs := read(t, b, threads.EventCursor{}, 10)
	if len(evs) != 1 || evs[0].Conversation == nil || evs[0].Conversation.ID != c.ID {
		t.Fatalf("B reads %d events when called, want A's conversation.created", len(evs))
	}
}

// TestListenerRecovers: when the listener's connection is killed, it
// reconnects, tells its callbacks that anything may have been missed
// (tenant ""), and hears the other replica's writes again.
func TestListenerRecovers(t *testing.T) {
	a, b := replicas(t)
	gotB := callbacks(b)
	c := createConv(t, a, "c1")
	waitFor(t, gotB, acme, "before the listener is killed")

	pid := b.ListenerPID()
	if pid == 0 {
		t.Fatal("B has no listener")
	}
	var app string
	if err := a.Pool().QueryRow(t.Context(), `SELECT application_name FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&app); err != nil || app != "threads-listener" {
		t.Fatalf("listener backend %d: application_name %q, %v", pid, app, err)
	}
	var killed bool
	if err := a.Pool().QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, killed, err)
	}
	waitFor(t, gotB, "", "the listener reconnected")
	if now := b.ListenerPID(); now == 0 || now == pid {
		t.Fatalf("after reconnecting the listener's backend is %d (was %d)", now, pid)
	}
	createMsg(t, a, c.ID, "after the reconnect")
	waitFor(t, gotB, acme, "a write through A after B's listener reconnected")
}

// TestLateCommitAcrossReplicas: T2 commits through A while T1 (an earlier
// txid) is open, so T2's event is not yet final. B reads only when its
// callback is called, and must still get both events, in order, once T1
// commits, though T1 itself announces nothing: A's notifier keeps T2
// pending until it is final.
func TestLateCommitAcrossReplicas(t *testing.T) {
	a, b := replicas(t)
	gotB := callbacks(b)
	c := createConv(t, a, "c1")
	waitFor(t, gotB, acme, "the conversation")
	start := read(t, b, threads.EventCursor{}, 10)[0].Cursor

	tx1, _ := openEvent(t, a, threads.NewConversationEvent(threads.EventConversationUpdated, c))
	createMsg(t, a, c.ID, "T2")
	committed := make(chan error, 1)
	go func() {
		// Let A's notifier find T2 not yet final (it checks within a few
		// ms of the commit). That check leaves nothing to poll for (T2
		// stays pending, unannounced): the pause is the scenario, and B
		// must get both events in order whether or not it was hit.
		time.Sleep(100 * time.Millisecond)
		committed <- tx1.Commit(t.Context())
	}()
	defer func() {
		if err := <-committed; err != nil {
			t.Errorf("committing T1: %v", err)
		}
	}()

	var seen []*threads.Event
	after := start
	deadline := time.After(notifyWait)
	for len(seen) < 2 {
		select {
		case <-gotB:
		case <-deadline:
			t.Fatalf("B, reading when called, saw %d of the 2 events within %s", len(seen), notifyWait)
		}
		evs := read(t, b, after, 10)
		if len(evs) > 0 {
			seen, after = append(seen, evs...), evs[len(evs)-1].Cursor
		}
	}
	if len(seen) != 2 || seen[0].Type != threads.EventConversationUpdated || seen[1].Type != threads.EventMessageCreated {
		t.Fatalf("B saw %d events, want T1's conversation.updated then T2's message.created", len(seen))
	}
}
