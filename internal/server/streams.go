package server

import (
	"context"
	"sync"
	"time"

	"github.com/threads-server/threads"
)

// DefaultStreamKeyCheck is how often the key of open streams is checked
// (Config.StreamKeyCheck). Through the key cache, so a revoked key's
// streams end within the cache's TTL plus this, busy or idle; a check
// that finds the key cached is a map lookup, so it can be frequent.
const DefaultStreamKeyCheck = 500 * time.Millisecond

// streams counts open streams per key, ends a key's streams when the key
// stops being valid, and ends them all at shutdown.
//
// Each key with open streams has one watcher goroutine, not one per
// stream: ten thousand streams of one key cost one key lookup a check,
// and that lookup goes through the key cache, so the database sees at
// most one read per key per cache TTL.
type streams struct {
	max   int
	every time.Duration
	// valid reports whether a key still authenticates; a nil error with
	// false means revoked or deleted. An error (the database away) keeps
	// the streams: they deliver nothing new until it is back anyway.
	valid func(ctx context.Context, key *threads.Key) (bool, error)

	mu     sync.Mutex
	perKey map[string]*keyStreams
	// shutdown ends with StopStreams; each stream's context follows it
	// through context.AfterFunc, with no goroutine per stream.
	shutdown context.Context
	stop     context.CancelFunc
}

// keyStreams is one key's open streams and the watcher that checks it.
type keyStreams struct {
	key     *threads.Key
	cancels map[*context.CancelCauseFunc]struct{}
	done    chan struct{} // closed when the last stream goes
}

func newStreams(max int, every time.Duration, valid func(context.Context, *threads.Key) (bool, error)) *streams {
	if max <= 0 {
		max = DefaultMaxStreamsPerKey
	}
	if every <= 0 {
		every = DefaultStreamKeyCheck
	}
	ctx, stop := context.WithCancel(context.Background())
	return &streams{max: max, every: every, valid: valid, perKey: map[string]*keyStreams{}, shutdown: ctx, stop: stop}
}

// acquire counts a stream against its key and registers cancel, which
// ends the stream with its cause when the key stops being valid. The
// returned release undoes both.
func (st *streams) acquire(key *threads.Key, cancel context.CancelCauseFunc) (release func(), err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ks := st.perKey[key.ID]
	if ks == nil {
		ks = &keyStreams{key: key, cancels: map[*context.CancelCauseFunc]struct{}{}, done: make(chan struct{})}
		st.perKey[key.ID] = ks
		go st.watch(ks)
	}
	if len(ks.cancels) >= st.max {
		return nil, threads.Errorf(threads.ERATELIMITED, "this key already has %d open event streams", st.max)
	}
	ks.cancels[&cancel] = struct{}{}
	return func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		delete(ks.cancels, &cancel)
		if len(ks.cancels) == 0 && st.perKey[key.ID] == ks {
			delete(st.perKey, key.ID)
			close(ks.done)
		}
	}, nil
}

// watch checks one key every st.every while it has streams, and ends
// them all when it is revoked.
func (st *streams) watch(ks *keyStreams) {
	t := time.NewTicker(st.every)
	defer t.Stop()
	for {
		select {
		case <-ks.done:
			return
		case <-st.shutdown.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(st.shutdown, st.every)
		ok, err := st.valid(ctx, ks.key)
		cancel()
		if err != nil || ok {
			continue
		}
		st.mu.Lock()
		for c := range ks.cancels {
			(*c)(errKeyRevoked)
		}
		st.mu.Unlock()
	}
}

// errKeyRevoked ends the streams of a key that no longer authenticates.
var errKeyRevoked = threads.Errorf(threads.EUNAUTHORIZED, "API key has been revoked")
