package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/broker"
)

var group = threads.EventFilter{GroupID: "g"}

// next reads one event with a generous bound: a liveness guard, not a
// speed assertion.
func next(t *testing.T, s threads.Subscription) *threads.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return e
}

func texts(evs []*threads.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type + ":" + e.Message.Text
	}
	return out
}

func TestLiveInOrderAndFiltered(t *testing.T) {
	st := newMemStore()
	b := broker.New(broker.Config{Store: st})
	st.append("acme", "g", "c0", "before") // before subscribing: not delivered
	s, err := b.Subscribe(t.Context(), "acme", threads.EventFilter{ConversationIDs: []string{"c1"}, GroupID: "g2"}, threads.EventCursor{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st.append("acme", "g", "c1", "one")  // by conversation
	st.append("acme", "g", "c9", "skip") // neither
	st.append("other", "g2", "c1", "no") // another tenant
	st.append("acme", "g2", "c7", "two") // by group
	got := []*threads.Event{next(t, s), next(t, s)}
	if diff := cmp.Diff([]string{"message.created:one", "message.created:two"}, texts(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := b.Stats().Subscribers; got != 1 {
		t.Errorf("subscribers = %d, want 1", got)
	}
}

// TestResumeExactlyOnce disconnects a subscriber again and again while a
// writer keeps appending, and resumes each time from the last cursor
// received: together the pieces must be the whole log, in order, once.
// Pages are cut by count, or by bytes far short of their count.
func TestResumeExactlyOnce(t *testing.T) {
	t.Run("Count", func(t *testing.T) {
		resumeExactlyOnce(t, newMemStore(), broker.Config{Page: 7, Buffer: 64})
	})
	t.Run("Bytes", func(t *testing.T) {
		st := newMemStore()
		st.pageBytes = 12 // texts are 5 bytes: 3 events a page
		resumeExactlyOnce(t, st, broker.Config{Buffer: 64})
	})
}

func resumeExactlyOnce(t *testing.T, st *memStore, cfg broker.Config) {
	cfg.Store = st
	b := broker.New(cfg)
	const total = 600
	var mu sync.Mutex
	n := 0
	write := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if n == total {
			return false
		}
		st.append("acme", "g", fmt.Sprintf("c%d", n%3), fmt.Sprintf("m%04d", n))
		n++
		return true
	}
	// Writes land right after reads (of replays and of the tail) and
	// from a writer of their own.
	// After a subscriber's own read, the write is also given time to reach
	// the tail before the subscriber goes on to join it: the switch-over
	// must neither miss it nor deliver it twice.
	st.afterRead = func(f threads.EventFilter) {
		before := st.tailReads()
		if !write() || f.All() {
			return
		}
		// Up to 10 ms for the tail to read (not a failure if it does not:
		// the switch-over must hold either way) ...
		apitest.Poll(100*time.Microsecond, 10*time.Millisecond, func() bool { return st.tailReads() != before })
		// ... and a moment more for the write to reach it: the window is
		// the interleaving under test, there is nothing to wait for.
		time.Sleep(200 * time.Microsecond)
	}
	// The start is taken before the writer runs: taken after, it missed
	// whatever the writer had appended by then, and the test waited for
	// events it would never get (a flake under load, not a lost event).
	cursor, _ := st.EventHead(t.Context(), "acme")
	var wg sync.WaitGroup
	wg.Go(func() {
		pace := time.NewTicker(50 * time.Microsecond)
		defer pace.Stop()
		for write() {
			<-pace.C
		}
	})
	var got []*threads.Event
	for round := 0; len(got) < total; round++ {
		s, err := b.Subscribe(t.Context(), "acme", group, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for range 1 + round%13 {
			if len(got) == total {
				break
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			e, err := s.Next(ctx)
			cancel()
			if errors.Is(err, broker.ErrDropped) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		cursor = s.Cursor()
		s.Close()
	}
	wg.Wait()
	if diff := cmp.Diff(texts(st.all("acme")), texts(got)); diff != "" {
		t.Errorf("resumed pieces differ from the log (-want +got):\n%s", diff)
	}
}

// TestReplayAcrossByteCutPages: a subscriber resuming from far back
// replays a log of messages of threads.MaxTextBytes, read in pages cut by
// bytes long before Config.Page: every event it selects once, in order,
// across a resumption in the middle, then live events. A page shorter
// than Config.Page is not the end of the log.
func TestReplayAcrossByteCutPages(t *testing.T) {
	st := newMemStore()
	b := broker.New(broker.Config{Store: st})
	from, _ := st.EventHead(t.Context(), "acme")
	pad := strings.Repeat("x", threads.MaxTextBytes-5)
	var want []string
	for i := range 120 {
		g := []string{"g", "h"}[i%2]
		st.append("acme", g, "c", fmt.Sprintf("m%04d", i)+pad)
		if g == "g" {
			want = append(want, fmt.Sprintf("m%04d", i))
		}
	}
	if perPage := threads.MaxEventPageBytes/threads.MaxTextBytes + 1; len(want) < 3*perPage {
		t.Fatalf("%d events of the group are less than three pages of %d", len(want), perPage)
	}
	s, err := b.Subscribe(t.Context(), "acme", group, from)
	if err != nil {
		t.Fatal(err)
	}
	st.append("acme", "g", "c", "live!") // after the tail's start: it comes through the tail
	want = append(want, "live!")
	var got []*threads.Event
	for len(got) < 25 {
		got = append(got, next(t, s))
	}
	cursor := s.Cursor()
	s.Close()
	if s, err = b.Subscribe(t.Context(), "acme", group, cursor); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st.append("acme", "g", "c", "end!!")
	want = append(want, "end!!")
	for got[len(got)-1].Message.Text != "end!!" {
		got = append(got, next(t, s))
	}
	if diff := cmp.Diff(want, names(got)); diff != "" {
		t.Errorf("replayed events (-want +got):\n%s", diff)
	}
}

// names are the first five bytes of the events' texts.
func names(evs []*threads.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Message.Text[:min(5, len(e.Message.Text))]
	}
	return out
}

// TestSlowSubscriberDropped: a subscriber that does not read is dropped
// when its buffer is full, without holding up another one, and resumes
// with nothing lost.
func TestSlowSubscriberDropped(t *testing.T) {
	st := newMemStore()
	b := broker.New(broker.Config{Store: st, Buffer: 4})
	slow, err := b.Subscribe(t.Context(), "acme", group, threads.EventCursor{})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := b.Subscribe(t.Context(), "acme", group, threads.EventCursor{})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	// One event at a time, each read by the fast subscriber before the
	// next is written: the tail never holds more than one for it.
	for i := range 10 {
		st.append("acme", "g", "c", fmt.Sprintf("m%d", i))
		if e := next(t, fast); e.Message.Text != fmt.Sprintf("m%d", i) {
			t.Fatalf("fast subscriber got %q, want m%d", e.Message.Text, i)
		}
	}
	var got []*threads.Event
	for {
		e, err := slow.Next(t.Context())
		if errors.Is(err, broker.ErrDropped) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if len(got) > 4 {
		t.Errorf("slow subscriber got %d events before being dropped, buffer is 4", len(got))
	}
	if d := b.Stats().Dropped; d != 1 {
		t.Errorf("dropped = %d, want 1", d)
	}
	resumed, err := b.Subscribe(t.Context(), "acme", group, slow.Cursor())
	slow.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	for len(got) < 10 {
		got = append(got, next(t, resumed))
	}
	if diff := cmp.Diff(texts(st.all("acme")), texts(got)); diff != "" {
		t.Errorf("dropped then resumed (-want +got):\n%s", diff)
	}
}

// TestResyncRequired: a cursor older than the retention window gets one
// resync_required event carrying a fresh cursor, then live events.
func TestResyncRequired(t *testing.T) {
	st := newMemStore()
	b := broker.New(broker.Config{Store: st, Retention: time.Hour})
	old := st.append("acme", "g", "c", "old").Cursor
	old.At = time.Now().Add(-2 * time.Hour).UnixMicro()
	s, err := b.Subscribe(t.Context(), "acme", group, old)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := next(t, s)
	if e.Type != threads.EventResyncRequired || e.Cursor.IsZero() || e.Cursor.Time().Before(time.Now().Add(-time.Minute)) {
		t.Fatalf("first event = %+v, want resync_required with a fresh cursor", e)
	}
	st.append("acme", "g", "c", "new")
	if e := next(t, s); e.Message.Text != "new" {
		t.Errorf("after resync got %q, want the next live event", e.Message.Text)
	}
}

// TestLostWakeUp: an append whose notification is lost is still
// delivered, by the tail's poll.
func TestLostWakeUp(t *testing.T) {
	st := newMemStore()
	b := broker.New(broker.Config{Store: st, Poll: 10 * time.Millisecond})
	s, err := b.Subscribe(t.Context(), "acme", group, threads.EventCursor{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st.mu.Lock()
	st.quiet = true
	st.mu.Unlock()
	st.append("acme", "g", "c", "quiet")
	if e := next(t, s); e.Message.Text != "quiet" {
		t.Errorf("got %q", e.Message.Text)
	}
}

// TestReadErrorThenRecovery: while the log cannot be read, a resuming
// subscriber gets the error (the server answers UNAVAILABLE); once it can,
// the tail catches up with nothing skipped.
func TestReadErrorThenRecovery(t *testing.T) {
	st := newMemStore()
	b := broker.New(broker.Config{Store: st, Poll: 10 * time.Millisecond})
	live, err := b.Subscribe(t.Context(), "acme", group, threads.EventCursor{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	from := live.Cursor()
	down := threads.Unavailable(errors.New("database down"))
	st.mu.Lock()
	st.failRead = down
	st.mu.Unlock()
	st.append("acme", "g", "c", "during")
	resuming, err := b.Subscribe(t.Context(), "acme", group, from)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resuming.Next(t.Context()); !errors.Is(err, down) {
		t.Errorf("Next during outage: %v, want %v", err, down)
	}
	resuming.Close()
	st.mu.Lock()
	st.failRead = nil
	st.mu.Unlock()
	st.append("acme", "g", "c", "after")
	got := []*threads.Event{next(t, live), next(t, live)}
	if diff := cmp.Diff([]string{"message.created:during", "message.created:after"}, texts(got)); diff != "" {
		t.Errorf("after recovery (-want +got):\n%s", diff)
	}
}

// TestTailStopsWithLastSubscriber: a tenant with no subscribers costs
// nothing: its tail stops reading.
func TestTailStopsWithLastSubscriber(t *testing.T) {
	st := newMemStore()
	b := broker.New(broker.Config{Store: st, Poll: time.Millisecond})
	s, err := b.Subscribe(t.Context(), "acme", group, threads.EventCursor{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // twice is harmless
	reads := func() int {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.reads
	}
	// Wait until the tail has stopped: the log unread between two checks
	// 20 ms apart (it polls every 1 ms while it runs).
	last := -1
	if !apitest.Poll(20*time.Millisecond, apitest.Guard, func() bool {
		n := reads()
		stopped := n == last
		last = n
		return stopped
	}) {
		t.Fatal("the tail still reads the log after the last subscriber left")
	}
	before := reads()
	// The time passing is the test: a stopped tail reads nothing, however
	// long it is left.
	time.Sleep(50 * time.Millisecond)
	if after := reads(); after != before {
		t.Errorf("the log was read %d times after the last subscriber left", after-before)
	}
	if got := b.Stats().Subscribers; got != 0 {
		t.Errorf("subscribers = %d, want 0", got)
	}
}

// TestCursorAheadOfLog: a cursor past the end of the log (a restored
// database, another deployment's cursor) is not followed silently: the
// subscriber is told to resync, then gets live events.
func TestCursorAheadOfLog(t *testing.T) {
	st := newMemStore()
	b := broker.New(broker.Config{Store: st})
	st.append("acme", "g", "c", "one")
	s, err := b.Subscribe(t.Context(), "acme", group, threads.EventCursor{At: time.Now().UnixMicro(), Hi: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if e := next(t, s); e.Type != threads.EventResyncRequired {
		t.Fatalf("first event %+v, want resync_required", e)
	}
	st.append("acme", "g", "c", "two")
	if e := next(t, s); e.Message.Text != "two" {
		t.Fatalf("after resync got %q", e.Message.Text)
	}
}

// TestCursorsNameTheirTenant: every cursor a subscription hands out (its
// events', replayed or live, its Cursor, a resync notice's) is tagged
// with its tenant: it resumes the tenant's streams and is refused for
// another tenant's.
func TestCursorsNameTheirTenant(t *testing.T) {
	st := newMemStore()
	b := broker.New(broker.Config{Store: st, Retention: time.Hour})
	from, _ := st.EventHead(t.Context(), "acme")
	st.append("acme", "g", "c", "replayed")
	st.append("globex", "g", "c", "globex's")
	replaying, err := b.Subscribe(t.Context(), "acme", group, from)
	if err != nil {
		t.Fatal(err)
	}
	defer replaying.Close()
	live, err := b.Subscribe(t.Context(), "acme", group, threads.EventCursor{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	tooOld := from
	tooOld.At = time.Now().Add(-2 * time.Hour).UnixMicro()
	resync, err := b.Subscribe(t.Context(), "acme", group, tooOld)
	if err != nil {
		t.Fatal(err)
	}
	defer resync.Close()
	st.append("acme", "g", "c", "live")

	cursors := map[string]threads.EventCursor{"first cursor of a live subscription": live.Cursor()}
	for _, e := range []*threads.Event{next(t, replaying), next(t, replaying)} {
		cursors["replaying: "+e.Message.Text] = e.Cursor
	}
	cursors["replaying: Cursor"] = replaying.Cursor()
	e := next(t, live)
	cursors["live: "+e.Message.Text] = e.Cursor
	cursors["live: Cursor"] = live.Cursor()
	e = next(t, resync)
	cursors["resync: "+e.Type] = e.Cursor
	for what, c := range cursors {
		tok := c.Token()
		if got, err := threads.ParseEventCursorFor(tok, "acme"); err != nil || got != c {
			t.Errorf("%s: %q for acme: %+v, %v; want %+v", what, tok, got, err, c)
		}
		if _, err := threads.ParseEventCursorFor(tok, "globex"); threads.ErrorCode(err) != threads.EBADREQUEST {
			t.Errorf("%s: acme's %q for globex: %v, want BAD_REQUEST", what, tok, err)
		}
	}
	if len(cursors) != 7 {
		t.Errorf("%d cursors checked, want 7: %v", len(cursors), cursors)
	}
}
