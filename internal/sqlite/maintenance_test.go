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
		BeforePass: func(task string) {
			if task == "events" {
				<-start
			}
		},
		AfterPass: func(task string, err error) {
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
