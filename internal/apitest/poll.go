package apitest

import (
	"testing"
	"time"
)

// The waits of Eventually: how often it checks, and how long before it
// gives up. The guard only ends a test that would otherwise hang; it is
// not a speed assertion, so it is generous (a PostgreSQL purge that fails
// once is finished by the next sweep, a minute later).
const (
	PollEvery = 10 * time.Millisecond
	Guard     = 3 * time.Minute
)

// Poll calls cond at once and then on every tick of every until it is
// true, and reports whether it was before guard passed. It fails nothing,
// so any goroutine may call it, and a caller that must clean up first
// (release a lock, say) decides what giving up means.
func Poll(every, guard time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	give := time.NewTimer(guard)
	defer give.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return true
			}
		case <-give.C:
			return cond()
		}
	}
}

// Eventually waits until cond is true, checking every PollEvery, and
// fails the test if it is still false after Guard. what says what the
// test waits for ("the purge to finish"). Call it from the test's
// goroutine.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Poll(PollEvery, Guard, cond) {
		t.Fatalf("gave up waiting for %s after %v", what, Guard)
	}
}

// EventuallyNil is Eventually for a check that says why it is not yet
// satisfied: it waits until check returns nil, and on giving up reports
// the last error.
func EventuallyNil(t testing.TB, what string, check func() error) {
	t.Helper()
	var last error
	if !Poll(PollEvery, Guard, func() bool { last = check(); return last == nil }) {
		t.Fatalf("gave up waiting for %s after %v: %v", what, Guard, last)
	}
}
