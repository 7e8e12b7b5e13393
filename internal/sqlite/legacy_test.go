package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/threads-server/threads/internal/storetest"
)

// TestLegacyEventData: event rows written before the stored payload had a
// version (Go's JSON of the domain structs, as this engine kept it) still
// read, one of each event type.
func TestLegacyEventData(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "threads.db")
	db := open(t, path)
	defer db.Close()
	storetest.CheckLegacyEvents(t, db, "acme", func(rows []storetest.LegacyEvent) {
		raw := rawDB(t, path)
		for i, r := range rows {
			if _, err := raw.Exec(`INSERT INTO events (tenant_id, pos, at, type, group_id, conversation_id, data) VALUES ('acme', ?, ?, ?, ?, ?, ?)`,
				i+1, r.At, r.Type, r.GroupID, r.ConversationID, r.SQLite); err != nil {
				t.Fatal(err)
			}
		}
	})
}
