package sqlite

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threads-server/threads"
)

// TestCloseWaitsForMaintenance: a maintenance pass (the event purge)
// blocked in the database, waiting for a write lock that another
// connection holds until the end of the test, is stopped by Close, and
// Close returns only once the pass has returned. The pass is made slow to
// finish (afterPass holds it) until Close is seen waiting for the
// maintenance; a Close that did not wait would return while the pass is
// still held.
func TestCloseWaitsForMaintenance(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "threads.db")
	start, ending, release := make(chan struct{}), make(chan error, 1), make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	var mu sync.Mutex
	var ended bool
	hooks := &testHooks{maintenance: &maintenanceHooks{
		beforePass: func(task string) {
			if task == "events" {
				<-start
			}
		},
		afterPass: func(task string, err error) {
			if task != "events" {
				return
			}
			ending <- err
			<-release
			mu.Lock()
			ended = true
			mu.Unlock()
		},
	}}
	db, err := open(t.Context(), path, Options{EventRetention: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, hooks, false)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	lock, err := raw.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = lock.ExecContext(context.Background(), `ROLLBACK`) }()
	close(start)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	guard := time.After(time.Minute) // ends a hung test; no speed bound
	// The pass has the writer connection once it is in BEGIN, which waits
	// in SQLite's busy handler for the lock.
	for db.w.Stats().InUse == 0 {
		select {
		case <-tick.C:
		case <-guard:
			t.Fatal("the event purge never took the writer connection")
		}
	}

	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	if err := <-ending; err == nil || threads.ErrorCode(err) == threads.EUNAVAILABLE {
		t.Errorf("the pass ended with %v, want it stopped by Close (the lock is held)", err)
	}
	for !waitingInStop() {
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while the event purge was still running", err)
		case <-tick.C:
		case <-guard:
			t.Fatal("Close is not seen waiting for the maintenance")
		}
	}
	close(release)
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !ended {
		t.Error("Close returned before the event purge did")
	}
}

// waitingInStop reports whether a goroutine is blocked in the
// maintenance's stop, waiting for it.
func waitingInStop() bool {
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "(*maintenance).stop") && strings.Contains(g, "(*WaitGroup).Wait") {
			return true
		}
	}
	return false
}

// TestMaintenancePurgesEvents: a store opened with an event retention
// purges, by itself, the events older than the retention plus an hour, and
// keeps the others.
func TestMaintenancePurgesEvents(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "threads.db")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	keeper, err := Open(t.Context(), path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c := &threads.Conversation{ID: "kept", GroupID: "g", Topic: "t"}
	if err := keeper.CreateConversation(t.Context(), "acme", c); err != nil {
		t.Fatal(err)
	}
	if _, err := keeper.w.ExecContext(t.Context(), `INSERT INTO events (tenant_id, pos, at, type, group_id, conversation_id, data)
		VALUES ('acme', 1000, 1, ?, 'g', 'old', '{"version":1,"conversation":{"id":"old"}}')`, threads.EventConversationUpdated); err != nil {
		t.Fatal(err)
	}
	read := func(db *DB) []string {
		evs, _, err := db.ReadEvents(t.Context(), "acme", threads.EventCursor{}, threads.EventFilter{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.ConversationID)
		}
		return ids
	}
	if ids := read(keeper); len(ids) != 2 {
		t.Fatalf("before: events of %v, want kept and old", ids)
	}
	if err := keeper.Close(); err != nil {
		t.Fatal(err)
	}

	purger, err := Open(t.Context(), path, Options{Logger: quiet, EventRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer purger.Close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	guard := time.After(time.Minute) // ends a hung test; no speed bound
	for len(read(purger)) != 1 {
		select {
		case <-tick.C:
		case <-guard:
			t.Fatalf("the old event is still there: %v", read(purger))
		}
	}
	if ids := read(purger); len(ids) != 1 || ids[0] != "kept" {
		t.Errorf("after: events of %v, want only kept", ids)
	}
}
