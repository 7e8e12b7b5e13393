package server_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/server"
)

// findCounter is a store that counts its FindKey calls.
type findCounter struct {
	threads.Store
	finds atomic.Int64
}

func (s *findCounter) FindKey(ctx context.Context, hash []byte) (*threads.Key, error) {
	s.finds.Add(1)
	return s.Store.FindKey(ctx, hash)
}

// readsFor makes n ListConversations calls with key, each answered as
// check says, and returns how many times they read a key from the store.
func (s *findCounter) readsFor(t *testing.T, e *testEnv, key string, n int, check func(*response)) int64 {
	t.Helper()
	before := s.finds.Load()
	for range n {
		check(e.post("ListConversations", key, map[string]any{"group_id": "g"}))
	}
	return s.finds.Load() - before
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withKeyCache(ttl time.Duration, now func() time.Time) envOption {
	return func(c *server.Config, _ *broker.Config) { c.KeyCacheTTL, c.Now = ttl, now }
}

// keyID returns the id of the key with this secret.
func keyID(t *testing.T, st threads.Store, secret string) string {
	t.Helper()
	k, err := st.FindKey(t.Context(), threads.HashKey(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

// TestKeyCache: with a TTL, a key is read from the store once per TTL,
// not once per request; a revocation made elsewhere is refused once the
// TTL has passed; unknown keys are never cached.
func TestKeyCache(t *testing.T) {
	st := &findCounter{Store: openStore(t)}
	clock := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	e := newTestEnvOn(t, st, withKeyCache(time.Second, clock.Now))
	body := map[string]any{"group_id": "g"}

	ok := func(r *response) { r.ok(t) }
	refused := func(r *response) { r.wantError(t, "UNAUTHORIZED", 401) }
	if n := st.readsFor(t, e, e.Key, 10, ok); n != 1 {
		t.Errorf("10 calls within the TTL read the key %d times, want 1", n)
	}

	// Revoked through the store (as threads keys revoke or another
	// replica would): still served until the TTL has passed, then refused.
	if err := st.RevokeKey(t.Context(), keyID(t, st, e.Key)); err != nil {
		t.Fatal(err)
	}
	e.post("ListConversations", e.Key, body).ok(t)
	clock.Add(time.Second)
	e.post("ListConversations", e.Key, body).wantError(t, "UNAUTHORIZED", 401)
	e.post("ListConversations", e.Key, body).wantError(t, "UNAUTHORIZED", 401)

	// An unknown secret costs a read every time: nothing about it is kept.
	if n := st.readsFor(t, e, unknownSecret(t), 3, refused); n != 3 {
		t.Errorf("3 calls with an unknown key read the store %d times, want 3", n)
	}
}

// TestKeyCacheOff: a TTL of 0 reads the key on every request, so a
// revocation is refused at once.
func TestKeyCacheOff(t *testing.T) {
	st := &findCounter{Store: openStore(t)}
	e := newTestEnvOn(t, st)
	body := map[string]any{"group_id": "g"}
	if n := st.readsFor(t, e, e.Key, 5, func(r *response) { r.ok(t) }); n != 5 {
		t.Errorf("5 calls read the key %d times, want 5", n)
	}
	if err := st.RevokeKey(t.Context(), keyID(t, st, e.Key)); err != nil {
		t.Fatal(err)
	}
	e.post("ListConversations", e.Key, body).wantError(t, "UNAUTHORIZED", 401)
}

// unknownSecret makes a well-formed secret that is in no store.
func unknownSecret(t *testing.T) string {
	t.Helper()
	_, secret, err := threads.NewKey("acme", false)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}
