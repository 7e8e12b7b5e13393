package postgres

import (
	"log/slog"
	"time"

	"github.com/threads-server/threads/internal/maintain"
)

// Background maintenance (docs/postgres.md, "Background maintenance") has one
// owner, the store's internal/maintain.Maintenance: Open starts it, and
// Close stops it and waits for all of it before the database closes. It
// runs the purges of deleted conversations (DeleteConversation starts one
// and waits for it only while its context lasts), the sweep of the purges
// tombstones still record, and the event log's retention purge.

// maintenanceHooks let tests see the periodic passes.
type maintenanceHooks = maintain.Hooks

// startMaintenance starts the periodic passes (Open).
func (db *DB) startMaintenance(retention time.Duration, log *slog.Logger) {
	db.maint.Start(maintain.Tasks{Sweep: db.purgeDeleted, PurgeEvents: db.PurgeEvents,
		Retention: retention, Now: time.Now, Log: log})
}
