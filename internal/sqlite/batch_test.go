package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	msqlite "modernc.org/sqlite"

	"github.com/threads-server/threads"
)

// Tests of group commit (batch.go). Most use a held store, whose writer
// goroutine takes a batch only when the test says so: the test queues
// messages one by one, in a known order, then lets the writer take them
// all into one batch.

type held struct {
	t       *testing.T
	db      *DB
	path    string
	next    chan struct{} // one token per batch, until free
	freeing sync.Once
	batches chan int // the size of each batch, while held

	mu    sync.Mutex
	sizes []int // every batch's size

	notified sync.Map // tenant → *atomic.Int64, OnEvents calls
}

func openHeld(t *testing.T, opt Options, message func(tx *sql.Tx, m *threads.Message) error) *held {
	t.Helper()
	h := &held{t: t, path: filepath.Join(t.TempDir(), "batch.db"), next: make(chan struct{}), batches: make(chan int, 1)}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	db, err := open(t.Context(), h.path, opt, &testHooks{
		beforeTake: func() { <-h.next },
		batchDone: func(n int) {
			h.mu.Lock()
			h.sizes = append(h.sizes, n)
			h.mu.Unlock()
			select {
			case h.batches <- n:
			default: // free running: nobody reads
			}
		},
		message: message,
	}, false)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	h.db = db
	db.OnEvents(func(tenant string) {
		n, _ := h.notified.LoadOrStore(tenant, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	})
	t.Cleanup(func() { db.Close() })
	t.Cleanup(h.free) // runs first: the writer must not wait for a token to stop
	return h
}

// free lets the writer run on its own from now on.
func (h *held) free() { h.freeing.Do(func() { close(h.next) }) }

// batch lets the writer take one batch (whatever is queued) and returns
// its size once it has been written and answered.
func (h *held) batch() int {
	h.t.Helper()
	h.next <- struct{}{}
	select {
	case n := <-h.batches:
		return n
	case <-time.After(30 * time.Second):
		h.t.Fatal("the batch did not finish")
		return 0
	}
}

func (h *held) notifications(tenant string) int64 {
	if n, ok := h.notified.Load(tenant); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

type answer struct {
	m   *threads.Message
	err error
}

// send calls CreateMessage in a goroutine and returns once the message is
// queued, behind every message sent before it.
func (h *held) send(ctx context.Context, tenant string, m threads.Message) <-chan answer {
	h.t.Helper()
	ch := make(chan answer, 1)
	n := len(h.db.batch.reqs)
	go func() {
		out, err := h.db.CreateMessage(ctx, tenant, &m)
		ch <- answer{out, err}
	}()
	h.waitQueued(n + 1)
	return ch
}

// waitQueued polls until n messages are queued. (This package's own
// tests cannot use apitest.Eventually, which imports it.) The 30 s are a
// liveness guard, not a speed bound.
func (h *held) waitQueued(n int) {
	h.t.Helper()
	tick := time.NewTicker(100 * time.Microsecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for len(h.db.batch.reqs) < n {
		select {
		case <-tick.C:
		case <-deadline:
			h.t.Fatalf("%d messages queued, want %d", len(h.db.batch.reqs), n)
		}
	}
}

func wait(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no answer")
		return answer{}
	}
}

func newConversation(t *testing.T, db *DB, tenant, group string) *threads.Conversation {
	t.Helper()
	c := &threads.Conversation{ID: uuid.Must(uuid.NewV7()).String(), GroupID: group, Topic: "topic"}
	if err := db.CreateConversation(t.Context(), tenant, c); err != nil {
		t.Fatalf("CreateConversation: %v", err)
	}
	return c
}

// history is a conversation's messages, oldest first.
func history(t *testing.T, db *DB, tenant, conv string) []*threads.Message {
	t.Helper()
	var all []*threads.Message
	var before int64
	for {
		page, err := db.ListMessages(t.Context(), tenant, threads.MessageFilter{ConversationID: conv, SentBefore: before, Limit: 200})
		if err != nil {
			t.Fatalf("ListMessages: %v", err)
		}
		all = append(all, page...)
		if len(page) < 200 {
			slices.Reverse(all)
			return all
		}
		before = threads.Micros(page[len(page)-1].SentAt)
	}
}

// events is the tenant's log after the cursor, in order.
func events(t *testing.T, db *DB, tenant string, after threads.EventCursor, f threads.EventFilter) []*threads.Event {
	t.Helper()
	var all []*threads.Event
	for {
		page, more, err := db.ReadEvents(t.Context(), tenant, after, f, 500)
		if err != nil {
			t.Fatalf("ReadEvents: %v", err)
		}
		all = append(all, page...)
		if !more {
			return all
		}
		after = page[len(page)-1].Cursor
	}
}

func head(t *testing.T, db *DB, tenant string) threads.EventCursor {
	t.Helper()
	c, err := db.EventHead(t.Context(), tenant)
	if err != nil {
		t.Fatalf("EventHead: %v", err)
	}
	return c
}

// checkHistory fails unless the conversation holds exactly want (what
// CreateMessage returned, in any order) with seq 1…n, sent_at strictly
// increasing, and its message.created events in seq order, carrying the
// stored messages and the group.
func checkHistory(t *testing.T, db *DB, tenant string, c *threads.Conversation, want map[string]*threads.Message) {
	t.Helper()
	got := history(t, db, tenant, c.ID)
	if len(got) != len(want) {
		t.Fatalf("conversation %s holds %d messages, want %d", c.ID, len(got), len(want))
	}
	for i, m := range got {
		if m.Seq != int64(i+1) {
			t.Fatalf("conversation %s: message %d has seq %d (gap or repeat)", c.ID, i, m.Seq)
		}
		if i > 0 && !m.SentAt.After(got[i-1].SentAt) {
			t.Fatalf("conversation %s: message %d sent_at %v is not after %v", c.ID, i, m.SentAt, got[i-1].SentAt)
		}
		if d := cmp.Diff(want[m.ID], m); d != "" {
			t.Fatalf("message %s as stored differs from its answer (-answer +stored):\n%s", m.ID, d)
		}
	}
	evs := events(t, db, tenant, threads.EventCursor{}, threads.EventFilter{ConversationIDs: []string{c.ID}})
	var created []*threads.Event
	for _, e := range evs {
		if e.Type == threads.EventMessageCreated {
			created = append(created, e)
		}
	}
	if len(created) != len(got) {
		t.Fatalf("conversation %s: %d message.created events, want %d", c.ID, len(created), len(got))
	}
	for i, e := range created {
		if e.GroupID != c.GroupID {
			t.Fatalf("event %d: group %q, want %q", i, e.GroupID, c.GroupID)
		}
		if d := cmp.Diff(got[i], e.Message); d != "" {
			t.Fatalf("conversation %s: event %d is not message seq %d (-stored +event):\n%s", c.ID, i, i+1, d)
		}
	}
}

// TestGroupCommitConcurrentWriters: hundreds of goroutines post into a few
// conversations of two tenants. The first batch is made full on purpose
// (the writer is held until maxBatch messages are queued), the rest as
// they come. Every message is stored once, with gap-free seq, strictly
// increasing sent_at and its event in seq order.
func TestGroupCommitConcurrentWriters(t *testing.T) {
	t.Parallel()
	const writers, each = 320, 8
	h := openHeld(t, Options{Synchronous: "NORMAL"}, nil)
	tenants := []string{"t1", "t2"}
	var convs []*threads.Conversation
	var convTenant []string
	for i := range 4 {
		tenant := tenants[i%2]
		convs = append(convs, newConversation(t, h.db, tenant, fmt.Sprintf("g%d", i)))
		convTenant = append(convTenant, tenant)
	}

	answers := make([][]*threads.Message, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := (w + i) % len(convs)
				m := &threads.Message{ID: uuid.Must(uuid.NewV7()).String(), ConversationID: convs[k].ID,
					AuthorID: fmt.Sprintf("w%d", w), Text: fmt.Sprintf("message %d of %d", i, w)}
				out, err := h.db.CreateMessage(t.Context(), convTenant[k], m)
				if err != nil {
					t.Errorf("writer %d message %d: %v", w, i, err)
					return
				}
				answers[w] = append(answers[w], out)
			}
		})
	}
	h.waitQueued(maxBatch)
	h.free()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	h.mu.Lock()
	sizes := slices.Clone(h.sizes)
	h.mu.Unlock()
	total := 0
	for _, n := range sizes {
		total += n
		if n > maxBatch {
			t.Errorf("a batch of %d messages, more than %d", n, maxBatch)
		}
	}
	if total != writers*each {
		t.Errorf("batches took %d messages, want %d", total, writers*each)
	}
	if sizes[0] != maxBatch {
		t.Errorf("first batch took %d messages, want %d (all that were queued)", sizes[0], maxBatch)
	}
	t.Logf("%d messages in %d batches", total, len(sizes))

	want := make([]map[string]*threads.Message, len(convs))
	for k := range convs {
		want[k] = map[string]*threads.Message{}
	}
	for w, ms := range answers {
		last := map[string]int64{} // a writer's messages in one conversation follow each other
		for i, m := range ms {
			k := (w + i) % len(convs)
			want[k][m.ID] = m
			if m.Seq <= last[m.ConversationID] {
				t.Errorf("writer %d: message %d has seq %d, not after its previous %d", w, i, m.Seq, last[m.ConversationID])
			}
			last[m.ConversationID] = m.Seq
		}
	}
	for k, c := range convs {
		checkHistory(t, h.db, convTenant[k], c, want[k])
	}
	// The tenants' logs: positions in order, one event per change.
	for _, tenant := range tenants {
		evs := events(t, h.db, tenant, threads.EventCursor{}, threads.EventFilter{})
		if len(evs) != 2+writers*each/2 {
			t.Errorf("tenant %s: %d events, want %d", tenant, len(evs), 2+writers*each/2)
		}
		for i := 1; i < len(evs); i++ {
			if !evs[i-1].Cursor.Before(evs[i].Cursor) {
				t.Fatalf("tenant %s: event %d is not after event %d", tenant, i, i-1)
			}
		}
	}
}

// TestGroupCommitMixedBatch puts retries, conflicts, a missing
// conversation, a constraint error and valid messages of two tenants into
// one batch: each gets exactly the answer it would get alone, and the
// failures leave no trace.
func TestGroupCommitMixedBatch(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h := openHeld(t, Options{Synchronous: "NORMAL", Now: func() time.Time { return clock }}, nil)
	ctx := t.Context()
	c1 := newConversation(t, h.db, "t1", "g1")
	c2 := newConversation(t, h.db, "t1", "g2")
	c3 := newConversation(t, h.db, "t1", "g3")
	cb := newConversation(t, h.db, "t2", "gb")

	oldc := h.send(ctx, "t1", threads.Message{ID: "old", ConversationID: c1.ID, AuthorID: "alice", Text: "before"})
	if n := h.batch(); n != 1 {
		t.Fatalf("setup batch of %d", n)
	}
	old := wait(t, oldc)
	// A row in c3's primary key where its next message will go (the clock
	// is pinned, so c3's first sent_at is the clock's): inserting that
	// message fails with SQLITE_CONSTRAINT.
	if _, err := h.db.w.ExecContext(ctx, `INSERT INTO messages (tenant_id, conversation_id, sent_at, seq, id, author_id, text)
		VALUES ('t1', ?, ?, 99, 'squatter', 'x', 'x')`, c3.ID, threads.Micros(clock)); err != nil {
		t.Fatal(err)
	}
	head1, head2 := head(t, h.db, "t1"), head(t, h.db, "t2")
	n1, n2 := h.notifications("t1"), h.notifications("t2")

	type step struct {
		tenant string
		m      threads.Message
		code   string // "" for success
	}
	steps := []step{
		{"t1", threads.Message{ID: "a", ConversationID: c1.ID, AuthorID: "alice", Text: "hello"}, ""},
		{"t1", threads.Message{ID: "a", ConversationID: c1.ID, AuthorID: "alice", Text: "hello"}, ""},              // retry of the previous
		{"t1", threads.Message{ID: "a", ConversationID: c1.ID, AuthorID: "alice", Text: "bye"}, threads.ECONFLICT}, // same id, other text
		{"t1", threads.Message{ID: "n", ConversationID: "missing", AuthorID: "bob", Text: "lost"}, threads.ENOTFOUND},
		{"t1", threads.Message{ID: "n", ConversationID: c2.ID, AuthorID: "bob", Text: "found"}, ""},      // the id is still free
		{"t1", threads.Message{ID: "old", ConversationID: c1.ID, AuthorID: "alice", Text: "before"}, ""}, // retry of a stored one
		{"t1", threads.Message{ID: "old", ConversationID: c2.ID, AuthorID: "alice", Text: "before"}, threads.ECONFLICT},
		{"t1", threads.Message{ID: "c", ConversationID: c3.ID, AuthorID: "carol", Text: "collides"}, threads.ECONFLICT}, // constraint
		{"t2", threads.Message{ID: "a", ConversationID: cb.ID, AuthorID: "alice", Text: "hello"}, ""},                   // ids are per tenant
		{"t1", threads.Message{ID: "b", ConversationID: c1.ID, AuthorID: "alice", Text: "second"}, ""},
	}
	chans := make([]<-chan answer, len(steps))
	for i, s := range steps {
		chans[i] = h.send(ctx, s.tenant, s.m)
	}
	if n := h.batch(); n != len(steps) {
		t.Fatalf("batch of %d messages, want %d", n, len(steps))
	}
	got := make([]answer, len(steps))
	for i, s := range steps {
		got[i] = wait(t, chans[i])
		if code := threads.ErrorCode(got[i].err); code != s.code {
			t.Errorf("step %d (%s %s): error %v, want code %q", i, s.m.ID, s.m.Text, got[i].err, s.code)
		}
		if (got[i].m == nil) != (s.code != "") {
			t.Errorf("step %d: message %+v with error %v", i, got[i].m, got[i].err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	seq := func(i int) int64 { return got[i].m.Seq }
	if seq(0) != 2 || seq(9) != 3 || seq(4) != 1 || seq(8) != 1 {
		t.Errorf("seqs a=%d b=%d n=%d t2/a=%d, want 2 3 1 1", seq(0), seq(9), seq(4), seq(8))
	}
	if d := cmp.Diff(got[0].m, got[1].m); d != "" {
		t.Errorf("the retry in the batch differs from the first (-first +retry):\n%s", d)
	}
	if d := cmp.Diff(old.m, got[5].m); d != "" {
		t.Errorf("the retry of a stored message differs from it (-stored +retry):\n%s", d)
	}

	checkHistory(t, h.db, "t1", c1, map[string]*threads.Message{"old": old.m, "a": got[0].m, "b": got[9].m})
	checkHistory(t, h.db, "t1", c2, map[string]*threads.Message{"n": got[4].m})
	checkHistory(t, h.db, "t2", cb, map[string]*threads.Message{"a": got[8].m})
	// c3: the squatter only (it is not in the counter), and the counter
	// was rolled back with the failed message.
	var lastSeq, count int
	if err := h.db.r.QueryRowContext(ctx, `SELECT last_seq, (SELECT count(*) FROM messages WHERE tenant_id = 't1' AND conversation_id = ?1)
		FROM conversations WHERE tenant_id = 't1' AND id = ?1`, c3.ID).Scan(&lastSeq, &count); err != nil {
		t.Fatal(err)
	}
	if lastSeq != 0 || count != 1 {
		t.Errorf("c3: last_seq %d and %d rows, want 0 and 1", lastSeq, count)
	}

	// The batch's events: one per new message, in batch order, nothing for
	// retries and failures; one notification per tenant.
	var ids []string
	for _, e := range events(t, h.db, "t1", head1, threads.EventFilter{}) {
		ids = append(ids, e.Type+" "+e.Message.ID)
	}
	if d := cmp.Diff([]string{"message.created a", "message.created n", "message.created b"}, ids); d != "" {
		t.Errorf("t1 events of the batch (-want +got):\n%s", d)
	}
	if evs := events(t, h.db, "t2", head2, threads.EventFilter{}); len(evs) != 1 || evs[0].Message.ID != "a" {
		t.Errorf("t2 events of the batch: %d, want message a", len(evs))
	}
	if d1, d2 := h.notifications("t1")-n1, h.notifications("t2")-n2; d1 != 1 || d2 != 1 {
		t.Errorf("notifications for the batch: t1 %d, t2 %d, want 1 each", d1, d2)
	}
}

// TestGroupCommitCommitFails makes SQLite refuse the batch's COMMIT (a
// commit hook on the writer connection): every message gets the error,
// nothing is stored or announced, and the next batch works.
func TestGroupCommitCommitFails(t *testing.T) {
	t.Parallel()
	h := openHeld(t, Options{Synchronous: "NORMAL"}, nil)
	ctx := t.Context()
	c1 := newConversation(t, h.db, "t1", "g1")
	cb := newConversation(t, h.db, "t2", "gb")

	var refuse atomic.Bool
	conn, err := h.db.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Raw(func(dc any) error {
		dc.(msqlite.HookRegisterer).RegisterCommitHook(func() int32 {
			if refuse.Load() {
				return 1 // turns the COMMIT into a ROLLBACK
			}
			return 0
		})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	head1, head2 := head(t, h.db, "t1"), head(t, h.db, "t2")
	n1, n2 := h.notifications("t1"), h.notifications("t2")

	refuse.Store(true)
	var chans []<-chan answer
	for i := range 3 {
		chans = append(chans, h.send(ctx, "t1", threads.Message{ID: fmt.Sprint("m", i), ConversationID: c1.ID, AuthorID: "a", Text: "x"}))
	}
	chans = append(chans, h.send(ctx, "t2", threads.Message{ID: "mb", ConversationID: cb.ID, AuthorID: "a", Text: "x"}))
	chans = append(chans, h.send(ctx, "t1", threads.Message{ID: "nf", ConversationID: "missing", AuthorID: "a", Text: "x"}))
	if n := h.batch(); n != len(chans) {
		t.Fatalf("batch of %d, want %d", n, len(chans))
	}
	refuse.Store(false)
	for i, ch := range chans {
		a := wait(t, ch)
		if a.m != nil || threads.ErrorCode(a.err) != threads.EINTERNAL {
			t.Errorf("message %d: %+v, %v; want INTERNAL and no message", i, a.m, a.err)
		}
	}
	if ms := history(t, h.db, "t1", c1.ID); len(ms) != 0 {
		t.Errorf("c1 holds %d messages after the failed commit", len(ms))
	}
	if ms := history(t, h.db, "t2", cb.ID); len(ms) != 0 {
		t.Errorf("cb holds %d messages after the failed commit", len(ms))
	}
	if evs := events(t, h.db, "t1", head1, threads.EventFilter{}); len(evs) != 0 {
		t.Errorf("t1: %d events after the failed commit", len(evs))
	}
	if evs := events(t, h.db, "t2", head2, threads.EventFilter{}); len(evs) != 0 {
		t.Errorf("t2: %d events after the failed commit", len(evs))
	}
	if h.notifications("t1") != n1 || h.notifications("t2") != n2 {
		t.Errorf("a failed batch was announced")
	}

	// The connection is clean and the counters untouched.
	ch := h.send(ctx, "t1", threads.Message{ID: "m0", ConversationID: c1.ID, AuthorID: "a", Text: "x"})
	h.batch()
	a := wait(t, ch)
	if a.err != nil || a.m.Seq != 1 {
		t.Fatalf("after the failed commit: %+v, %v; want seq 1", a.m, a.err)
	}
	checkHistory(t, h.db, "t1", c1, map[string]*threads.Message{"m0": a.m})
}

// TestGroupCommitStatementErrors: a statement error (not a domain error)
// fails its message only; one after which SQLite has rolled back the
// whole transaction (simulated by a ROLLBACK) fails the whole batch, and
// nothing of it is stored; so does a panic; a panicking listener costs
// nothing but its own notification.
func TestGroupCommitStatementErrors(t *testing.T) {
	t.Parallel()
	injected := errors.New("injected")
	h := openHeld(t, Options{Synchronous: "NORMAL"}, func(tx *sql.Tx, m *threads.Message) error {
		switch m.ID {
		case "flaky":
			return injected
		case "fatal":
			if _, err := tx.Exec(`ROLLBACK`); err != nil {
				return err
			}
			return injected
		case "boom":
			panic("injected")
		}
		return nil
	})
	ctx := t.Context()
	c := newConversation(t, h.db, "t1", "g1")

	// One message fails, its neighbours are stored.
	a1 := h.send(ctx, "t1", threads.Message{ID: "ok1", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	af := h.send(ctx, "t1", threads.Message{ID: "flaky", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	a2 := h.send(ctx, "t1", threads.Message{ID: "ok2", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	h.batch()
	ok1, flaky, ok2 := wait(t, a1), wait(t, af), wait(t, a2)
	if threads.ErrorCode(flaky.err) != threads.EINTERNAL || flaky.m != nil {
		t.Errorf("flaky: %+v, %v; want INTERNAL", flaky.m, flaky.err)
	}
	if ok1.err != nil || ok2.err != nil || ok1.m.Seq != 1 || ok2.m.Seq != 2 {
		t.Fatalf("neighbours: %+v %v, %+v %v; want seq 1 and 2", ok1.m, ok1.err, ok2.m, ok2.err)
	}

	// The transaction is lost under the batch: every message fails.
	b1 := h.send(ctx, "t1", threads.Message{ID: "ok3", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	bf := h.send(ctx, "t1", threads.Message{ID: "fatal", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	b2 := h.send(ctx, "t1", threads.Message{ID: "ok4", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	h.batch()
	for _, ch := range []<-chan answer{b1, bf, b2} {
		if a := wait(t, ch); a.m != nil || threads.ErrorCode(a.err) != threads.EINTERNAL {
			t.Errorf("in the lost batch: %+v, %v; want INTERNAL", a.m, a.err)
		}
	}
	checkHistory(t, h.db, "t1", c, map[string]*threads.Message{"ok1": ok1.m, "ok2": ok2.m})

	// A panic in a batch is stopped on the writer goroutine: the batch is
	// rolled back and fails, the process and the writer go on.
	p1 := h.send(ctx, "t1", threads.Message{ID: "ok5", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	pb := h.send(ctx, "t1", threads.Message{ID: "boom", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	h.batch()
	for _, ch := range []<-chan answer{p1, pb} {
		if a := wait(t, ch); a.m != nil || threads.ErrorCode(a.err) != threads.EINTERNAL {
			t.Errorf("in the batch that panicked: %+v, %v; want INTERNAL", a.m, a.err)
		}
	}
	checkHistory(t, h.db, "t1", c, map[string]*threads.Message{"ok1": ok1.m, "ok2": ok2.m})

	// A listener that panics does not cost the callers their answers.
	h.db.OnEvents(func(string) { panic("listener") })
	a6 := h.send(ctx, "t1", threads.Message{ID: "ok6", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	h.batch()
	ok6 := wait(t, a6)
	if ok6.err != nil || ok6.m.Seq != 3 {
		t.Fatalf("after the panics: %+v, %v; want seq 3", ok6.m, ok6.err)
	}
	checkHistory(t, h.db, "t1", c, map[string]*threads.Message{"ok1": ok1.m, "ok2": ok2.m, "ok6": ok6.m})
}

// TestGroupCommitCanceled: a context canceled before the call, or while
// the message is queued, means the message is not written; one canceled
// after the writer took the message does not stop it.
func TestGroupCommitCanceled(t *testing.T) {
	t.Parallel()
	var cancelLate context.CancelFunc
	h := openHeld(t, Options{Synchronous: "NORMAL"}, func(tx *sql.Tx, m *threads.Message) error {
		if m.ID == "late" {
			cancelLate() // taken already: too late to stop it
		}
		return nil
	})
	ctx := t.Context()
	c := newConversation(t, h.db, "t1", "g1")

	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.db.CreateMessage(done, "t1", &threads.Message{ID: "dead", ConversationID: c.ID, AuthorID: "a", Text: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled before the call: %v, want context.Canceled", err)
	}
	if n := len(h.db.batch.reqs); n != 0 {
		t.Fatalf("a canceled call queued its message (%d queued)", n)
	}

	queued, cancelQueued := context.WithCancel(ctx)
	q := h.send(queued, "t1", threads.Message{ID: "queued", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	cancelQueued()
	if a := wait(t, q); !errors.Is(a.err, context.Canceled) {
		t.Fatalf("canceled while queued: %+v, %v; want context.Canceled", a.m, a.err)
	}
	var late context.Context
	late, cancelLate = context.WithCancel(ctx)
	defer cancelLate()
	l := h.send(late, "t1", threads.Message{ID: "late", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	v := h.send(ctx, "t1", threads.Message{ID: "valid", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	if n := h.batch(); n != 3 {
		t.Fatalf("batch of %d, want 3 (the canceled one is taken and dropped)", n)
	}
	valid := wait(t, v)
	if valid.err != nil {
		t.Fatal(valid.err)
	}
	// The late caller may have stopped waiting (context.Canceled) or had
	// the answer; either way its message is stored, first in the batch.
	if a := wait(t, l); a.err != nil && !errors.Is(a.err, context.Canceled) {
		t.Fatalf("late: %v", a.err)
	}
	stored := history(t, h.db, "t1", c.ID)
	if len(stored) != 2 || stored[0].ID != "late" || stored[1].ID != "valid" {
		t.Fatalf("stored %v, want late then valid", stored)
	}
	if d := cmp.Diff(stored[1], valid.m); d != "" {
		t.Errorf("valid (-stored +answer):\n%s", d)
	}
	// A retry of the late message tells its caller what happened.
	r := h.send(ctx, "t1", threads.Message{ID: "late", ConversationID: c.ID, AuthorID: "a", Text: "x"})
	h.batch()
	if a := wait(t, r); a.err != nil || !cmp.Equal(a.m, stored[0]) {
		t.Errorf("retry of late: %+v, %v; want the stored message", a.m, a.err)
	}
}

// TestGroupCommitClose: Close with messages queued. Each caller gets the
// truth: success for what was written, UNAVAILABLE for what was not; no
// caller hangs, and calls after Close are UNAVAILABLE.
func TestGroupCommitClose(t *testing.T) {
	t.Parallel()
	h := openHeld(t, Options{Synchronous: "NORMAL"}, nil)
	ctx := t.Context()
	c := newConversation(t, h.db, "t1", "g1")
	var chans []<-chan answer
	for i := range 5 {
		chans = append(chans, h.send(ctx, "t1", threads.Message{ID: fmt.Sprint("m", i), ConversationID: c.ID, AuthorID: "a", Text: "x"}))
	}
	closed := make(chan error, 1)
	go func() { closed <- h.db.Close() }()
	// Wait for Close to signal the writer, then let the writer go: it
	// either takes the queued messages first or stops.
	<-h.db.batch.stop
	h.free()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	written := map[string]bool{}
	for i, ch := range chans {
		a := wait(t, ch)
		switch {
		case a.err == nil:
			written[a.m.ID] = true
		case threads.ErrorCode(a.err) != threads.EUNAVAILABLE:
			t.Errorf("message %d: %v, want success or UNAVAILABLE", i, a.err)
		}
	}
	if _, err := h.db.CreateMessage(ctx, "t1", &threads.Message{ID: "after", ConversationID: c.ID, AuthorID: "a", Text: "x"}); threads.ErrorCode(err) != threads.EUNAVAILABLE {
		t.Errorf("CreateMessage after Close: %v, want UNAVAILABLE", err)
	}

	db, err := Open(ctx, h.path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored := history(t, db, "t1", c.ID)
	if len(stored) != len(written) {
		t.Fatalf("%d stored, %d answered as written", len(stored), len(written))
	}
	for _, m := range stored {
		if !written[m.ID] {
			t.Errorf("%s is stored but its caller got an error", m.ID)
		}
	}
	t.Logf("%d of 5 queued messages written before Close", len(written))
}

// TestGroupCommitWithOtherWrites: batches interleave with the other
// writes on the one writer connection. Writers post into a conversation
// that is deleted part way, while others create conversations and keys.
// The conversation's log is its messages in seq order, then its deletion;
// nothing is written to it after, and every other write is there.
func TestGroupCommitWithOtherWrites(t *testing.T) {
	t.Parallel()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "mixed.db"), Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	c := newConversation(t, db, "t1", "doomed")

	var mu sync.Mutex
	written := map[int64]*threads.Message{}
	var wg sync.WaitGroup
	for w := range 48 {
		wg.Go(func() {
			for i := 0; ; i++ {
				m, err := db.CreateMessage(ctx, "t1", &threads.Message{ID: fmt.Sprintf("w%d-%d", w, i), ConversationID: c.ID, AuthorID: "a", Text: "x"})
				if threads.ErrorCode(err) == threads.ENOTFOUND {
					return
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				written[m.Seq] = m
				mu.Unlock()
			}
		})
	}
	var others []*threads.Conversation
	var omu sync.Mutex
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				o := &threads.Conversation{ID: fmt.Sprintf("o%d-%d", w, i), GroupID: "other", Topic: "t"}
				if err := db.CreateConversation(ctx, "t1", o); err != nil {
					t.Errorf("CreateConversation: %v", err)
					return
				}
				if err := db.CreateKey(ctx, &threads.Key{ID: fmt.Sprintf("key_%d_%d", w, i), Tenant: "t1", Hash: []byte(o.ID)}); err != nil {
					t.Errorf("CreateKey: %v", err)
					return
				}
				omu.Lock()
				others = append(others, o)
				omu.Unlock()
			}
		})
	}
	// Delete once a few hundred messages are in (the writers go on until
	// the delete stops them, so no guard but a writer's failure).
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		mu.Lock()
		n := len(written)
		mu.Unlock()
		if n >= 300 || t.Failed() {
			break
		}
		<-tick.C
	}
	if err := db.DeleteConversation(ctx, "t1", c.ID); err != nil {
		t.Fatalf("DeleteConversation: %v", err)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	evs := events(t, db, "t1", threads.EventCursor{}, threads.EventFilter{ConversationIDs: []string{c.ID}})
	if len(evs) != len(written)+2 {
		t.Fatalf("%d events of the conversation, want %d (created, %d messages, deleted)", len(evs), len(written)+2, len(written))
	}
	if evs[0].Type != threads.EventConversationCreated || evs[len(evs)-1].Type != threads.EventConversationDeleted {
		t.Fatalf("log starts with %s and ends with %s", evs[0].Type, evs[len(evs)-1].Type)
	}
	for i, e := range evs[1 : len(evs)-1] {
		if e.Type != threads.EventMessageCreated || e.Message.Seq != int64(i+1) {
			t.Fatalf("event %d: %s seq %d, want message.created seq %d", i+1, e.Type, e.Message.Seq, i+1)
		}
		if d := cmp.Diff(written[e.Message.Seq], e.Message); d != "" {
			t.Fatalf("event %d differs from the answer (-answer +event):\n%s", i+1, d)
		}
	}
	for _, o := range others {
		if _, err := db.FindConversation(ctx, "t1", o.ID, ""); err != nil {
			t.Errorf("conversation %s: %v", o.ID, err)
		}
	}
	if n, err := db.CountKeys(ctx); err != nil || n != 160 {
		t.Errorf("CountKeys = %d, %v; want 160", n, err)
	}
	t.Logf("%d messages before the delete", len(written))
}
