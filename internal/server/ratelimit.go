package server

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/threads-server/threads"
	"golang.org/x/time/rate"
)

// limiter is a token bucket per API key: a key may make Rate calls a
// second on average, in bursts of up to Burst. Buckets live in this
// process: with N replicas behind a balancer a key gets up to N times the
// rate, which is the usual trade for not putting a shared counter on the
// hot path.
type limiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// newLimiter returns nil (no limit) when perSecond is 0 or less.
func newLimiter(perSecond float64, burst int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &limiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

// allow takes a token for keyID and sets the rate-limit headers (the IETF
// RateLimit fields). A refusal is RATE_LIMITED naming its wait, which the
// error's rendering sends as Retry-After (error.go), on every protocol.
func (l *limiter) allow(keyID string, h http.Header) error {
	if l == nil {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	b := l.buckets[keyID]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[keyID] = b
	}
	b.used = now
	ok := b.lim.AllowN(now, 1)
	left := b.lim.TokensAt(now)
	l.sweep(now)
	l.mu.Unlock()

	h.Set("RateLimit-Limit", strconv.Itoa(l.burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(0, int(left))))
	// Seconds until the bucket is full again.
	full := time.Duration((float64(l.burst) - left) / float64(l.rate) * float64(time.Second))
	h.Set("RateLimit-Reset", strconv.Itoa(int(math.Ceil(full.Seconds()))))
	if ok {
		return nil
	}
	// Seconds until one token is back, rounded up: at least 1.
	wait := time.Duration((1 - left) / float64(l.rate) * float64(time.Second))
	ra := retryAfter(max(1, int(math.Ceil(wait.Seconds()))))
	return &threads.Error{Code: threads.ERATELIMITED, Err: ra,
		Detail: fmt.Sprintf("rate limit of %g calls per second for this key exceeded; retry after %ds", float64(l.rate), int(ra))}
}

// sweep forgets buckets unused long enough to be full again (a new one
// is the same), at most once a minute, so the map does not grow with every key
// ever seen.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	idle := max(time.Minute, time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)))
	for id, b := range l.buckets {
		if now.Sub(b.used) > idle {
			delete(l.buckets, id)
		}
	}
}
