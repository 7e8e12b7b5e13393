package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/sqlite"
	"github.com/threads-server/threads/internal/storetest"
)

// openTemp opens a store on a new file in t.TempDir and closes it when the
// test ends.
func openTemp(t *testing.T, opt sqlite.Options) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "threads.db"), opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// TestStore runs the behaviour suite on the engine as it ships.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) threads.Store { return openTemp(t, sqlite.Options{}) })
}

// TestStoreCoarseClock runs the suite again with a clock that only moves
// every millisecond, as a coarse system clock would. Many conversations
// then share a created_at, so list paging must break ties by id, and many
// messages are stamped in the same tick, so the store must move sent_at
// past the clock to keep it strictly increasing.
func TestStoreCoarseClock(t *testing.T) {
	coarse := func() time.Time { return time.Now().Truncate(time.Millisecond) }
	storetest.Run(t, func(t *testing.T) threads.Store {
		return openTemp(t, sqlite.Options{Now: coarse, Synchronous: "NORMAL"})
	})
}
