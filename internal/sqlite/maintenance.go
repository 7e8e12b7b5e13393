package sqlite

import (
	"context"
	"log/slog"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/maintain"
)

// Background maintenance (docs/sqlite.md, "Background maintenance") has
// one owner, the store's maintenance (internal/maintain): Open starts it, and Close stops it
// and waits for all of it before the database closes. It runs
//
//   - the purges of deleted conversations (DeleteConversation starts one
//     here and waits for it only while its context lasts);
//   - the sweep: at Open and every sweepEvery, the purges that tombstones
//     still record (a process stopped half way, a purge that failed);
//   - the event log's retention: at Open and every eventPurgeEvery, the
//     events older than Options.EventRetention plus an hour
//     (threads.EventsExpireBefore) go, when the retention is set.

const (
	// sweepEvery is how often purges that failed (or that an earlier
	// process left unfinished) are retried.
	sweepEvery = time.Minute
	// eventPurgeEvery is how often old events are purged.
	eventPurgeEvery = 10 * time.Minute
)

// maintenanceHooks let tests see the periodic passes.
type maintenanceHooks = maintain.Hooks

// startMaintenance starts the periodic passes (Open).
func (db *DB) startMaintenance(retention time.Duration, log *slog.Logger) {
	db.maint.Every("sweep", sweepEvery, func(ctx context.Context) error {
		db.purgeDeleted(ctx)
		return nil
	})
	if retention > 0 {
		db.maint.Every("events", eventPurgeEvery, func(ctx context.Context) error {
			err := db.PurgeEvents(ctx, threads.EventsExpireBefore(db.clock(), retention))
			if err != nil && ctx.Err() == nil {
				log.Warn("purging old events", "err", err)
			}
			return err
		})
	}
}
