package postgres_test

import (
	"testing"

	"github.com/threads-server/threads/internal/postgres/pgtest"
	"github.com/threads-server/threads/internal/storetest"
)

// TestLegacyEventData: event rows written before the stored payload had a
// version (Go's JSON of the domain structs, kept as jsonb) still read, one
// of each event type.
func TestLegacyEventData(t *testing.T) {
	db := pgtest.Open(t)
	storetest.CheckLegacyEvents(t, db, acme, func(rows []storetest.LegacyEvent) {
		for _, r := range rows {
			if _, err := db.Pool().Exec(t.Context(), `INSERT INTO events (tenant_id, at, type, group_id, conversation_id, data)
				VALUES ($1, $2, $3, $4, $5, $6::jsonb)`, acme, r.At, r.Type, r.GroupID, r.ConversationID, r.PostgreSQL); err != nil {
				t.Fatal(err)
			}
		}
	})
}
