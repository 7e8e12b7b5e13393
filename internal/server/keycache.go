package server

import (
	"context"
	"sync"
	"time"

	"github.com/threads-server/threads"
)

// keyCache remembers, for a short time, the keys found by their hash.
// Every request authenticates; reading the key from the database each
// time was 15 % of the server's CPU under load on SQLite (a query per
// request) and is a network round trip on PostgreSQL. The price is that
// a key revoked elsewhere (threads keys revoke, another replica) keeps
// working on this replica for up to ttl, and its open streams end within
// ttl plus Config.StreamKeyCheck (streams.watch reads keys through here).
//
// Only keys that exist are cached, so the cache holds at most as many
// entries as the database has keys: unknown secrets, which anyone can
// send, always go to the database and never fill it. It is cleared
// when it reaches maxCachedKeys all the same.
type keyCache struct {
	ttl time.Duration
	now func() time.Time

	mu sync.RWMutex
	m  map[string]cachedKey // by hash
}

type cachedKey struct {
	key   *threads.Key
	until time.Time
}

const maxCachedKeys = 10000

func newKeyCache(ttl time.Duration, now func() time.Time) *keyCache {
	if now == nil {
		now = time.Now
	}
	return &keyCache{ttl: ttl, now: now, m: make(map[string]cachedKey)}
}

// find returns the key with this hash from the cache while it is fresh,
// and from store otherwise. A ttl of zero or less turns caching off.
func (c *keyCache) find(ctx context.Context, store threads.KeyStore, hash []byte) (*threads.Key, error) {
	if c.ttl <= 0 {
		return store.FindKey(ctx, hash)
	}
	now := c.now()
	c.mu.RLock()
	e, ok := c.m[string(hash)]
	c.mu.RUnlock()
	if ok && now.Before(e.until) {
		return e.key, nil
	}
	k, err := store.FindKey(ctx, hash)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedKeys {
		clear(c.m)
	}
	c.m[string(hash)] = cachedKey{key: k, until: now.Add(c.ttl)}
	c.mu.Unlock()
	return k, nil
}
