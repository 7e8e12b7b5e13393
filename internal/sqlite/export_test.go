package sqlite

import (
	"context"
	"sync/atomic"
)

// OpenUnbatched opens a store whose CreateMessage writes one transaction
// per message, as before group commit; the benchmarks compare the two.
func OpenUnbatched(ctx context.Context, path string, opt Options) (*DB, error) {
	return open(ctx, path, opt, nil, true)
}

// OpenCounting opens a store that counts its batches and the messages
// taken into them, for the benchmarks' msg/batch figure.
func OpenCounting(ctx context.Context, path string, opt Options, batches, messages *atomic.Int64) (*DB, error) {
	return open(ctx, path, opt, &testHooks{batchDone: func(n int) {
		batches.Add(1)
		messages.Add(int64(n))
	}}, false)
}
