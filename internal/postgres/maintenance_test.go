package postgres_test

import (
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/postgres"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// insertOldEvent writes an event made in 1970, which any retention lets
// the maintenance purge.
func insertOldEvent(t *testing.T, db *postgres.DB) {
	t.Helper()
	if _, err := db.Pool().Exec(t.Context(), `INSERT INTO events (tenant_id, at, type, group_id, conversation_id, data)
		VALUES ($1, 1, $2, 'g', 'old', '{"version":1,"conversation":{"id":"old"}}')`, acme, threads.EventConversationUpdated); err != nil {
		t.Fatal(err)
	}
}

// TestMaintenancePurgesEvents: a store opened with an event retention
// purges, by itself, the events older than the retention plus an hour, and
// keeps the others.
func TestMaintenancePurgesEvents(t *testing.T) {
	url := pgtest.SchemaURL(t)
	keeper := pgtest.OpenURL(t, url)
	insertOldEvent(t, keeper)
	c := createConv(t, keeper, "kept")
	read := func() []string {
		evs, _, err := keeper.ReadEvents(t.Context(), acme, threads.EventCursor{}, threads.EventFilter{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.ConversationID)
		}
		return ids
	}
	if ids := read(); len(ids) != 2 {
		t.Fatalf("before: events of %v, want the old one and %s", ids, c.ID)
	}
	purger, err := postgres.Open(t.Context(), url, postgres.Options{EventRetention: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer purger.Close()
	apitest.Eventually(t, "the old event to be purged", func() bool { return len(read()) == 1 })
	if ids := read(); len(ids) != 1 || ids[0] != c.ID {
		t.Errorf("after: events of %v, want only %s", ids, c.ID)
	}
}

// TestCloseWaitsForMaintenance: a maintenance pass (the event purge)
// blocked in the database, waiting for a row that another session holds
// until the end of the test, is stopped by Close, and Close returns only
// once the pass has returned. The pass is made slow to finish (its after
// hook holds it) until Close is seen waiting for the maintenance; a Close
// that did not wait would return while the pass is still held.
func TestCloseWaitsForMaintenance(t *testing.T) {
	url := pgtest.SchemaURL(t)
	setup := pgtest.OpenURL(t, url)
	insertOldEvent(t, setup)
	row := hold(t, url, `SELECT FROM events WHERE tenant_id = $1 AND at = 1 FOR UPDATE`, acme)

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
	db, err := postgres.OpenHooked(t.Context(), url, postgres.Options{EventRetention: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		func(task string) {
			if task == "events" {
				<-start
			}
		},
		func(task string, err error) {
			if task != "events" {
				return
			}
			ending <- err
			<-release
			mu.Lock()
			ended = true
			mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	close(start)
	row.waitBlocking(t, url)

	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	if err := <-ending; err == nil {
		t.Errorf("the pass ended with no error, want it stopped by Close (the row is held)")
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	guard := time.After(apitest.Guard) // ends a hung test; no speed bound
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
	row.end(t, `ROLLBACK`)
}

// waitingInStop reports whether a goroutine is blocked in the
// maintenance's Stop, waiting for it. It reads every goroutine's stack
// (the buffer grows until they all fit: the package's other tests may
// have hundreds).
func waitingInStop() bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	for n == len(buf) {
		buf = make([]byte, 2*len(buf))
		n = runtime.Stack(buf, true)
	}
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "(*Maintenance).Stop") && strings.Contains(g, "(*WaitGroup).Wait") {
			return true
		}
	}
	return false
}
