package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/threads-server/threads"
)

// Group commit (docs/sqlite.md#group-commit).
//
// One transaction per CreateMessage is bound by the disk's flush rate: at
// synchronous=FULL every COMMIT waits for an fsync of the WAL. So
// CreateMessage does not write itself: it queues its message for the
// writer goroutine (writeLoop), which takes every message queued at that
// moment (up to maxBatch) and writes them all in one transaction, one
// SAVEPOINT per message, then answers each caller after the COMMIT has
// returned. Batching is adaptive, not timed: the writer takes what is
// queued the moment the previous transaction ends, so a lone request is
// written at once and pays only the hand-off between goroutines, while
// under load a batch holds whatever arrived during the previous commit.
//
// What each caller gets is exactly what a transaction of its own would
// have given it, because messages run one after another inside the batch,
// in queue order:
//
//   - idempotency and conflicts: a message's insert (and the id lookup
//     that follows a taken id) sees every message written before it,
//     including earlier ones in the same batch, so the same id twice in a
//     batch is a retry of the first (the stored message if the content is
//     the same, CONFLICT otherwise);
//   - order: each message advances its conversation's counter in turn, so
//     seq stays gap-free and sent_at strictly increasing, and its
//     message.created event is written in its savepoint, so events are in
//     seq order within a conversation;
//   - isolation: a message that fails (NOT_FOUND, CONFLICT, a constraint
//     or any other statement error) is rolled back to its savepoint and
//     answered with its own error; its neighbours go on. If the rollback
//     to the savepoint itself fails (SQLite may already have rolled back
//     the whole transaction, after an I/O error for instance), the batch
//     is abandoned: nothing of it is stored and every message in it gets
//     the error;
//   - durability: nobody gets an answer before COMMIT has returned, so a
//     success means committed at the configured synchronous level, as
//     before. If COMMIT fails, nothing of the batch is stored and every
//     message in it gets the error (UNAVAILABLE or INTERNAL);
//   - events: the listeners are told after the commit, once per tenant
//     that got a new message.
//
// A batch is the changes' entry point in its batched form (change.go:
// changeBatch): each message is a change (msgReq.apply, createMessage) in
// a savepoint of its own, whose event the entry point writes right after
// it; nothing here writes an event or tells a listener.
//
// Cancellation: a caller whose context ends before the writer takes its
// message into a batch gets the context's error and its message is not
// written. Once taken, the message's fate is the batch's: it is stored if
// the batch commits, whatever happens to the caller's context, because
// statements of the batch never run under a caller's context (an
// interrupted statement would roll back the whole transaction, neighbours
// included). A caller still waiting when the batch ends gets the batch's
// answer; a caller whose context ends while its batch is in flight stops
// waiting and gets the context's error, so the request timeout still
// bounds a call when the disk hangs. Its message may then be stored or
// not, as with any timeout; a retry with the same id tells which and
// never stores it twice.
//
// Serialization with the other writes: conversations (change), keys,
// event and conversation purges and migrations (write) each run as a
// transaction on the one writer connection of db.w (SetMaxOpenConns(1)). The batcher
// takes the connection from that same pool for each batch, with an
// ordinary BeginTx, and gives it back at COMMIT: database/sql's queue for
// the single connection orders batches and the other writes, one
// transaction at a time, and SQLite never sees two writers of this
// process. When a batch commits, a write waiting for the connection gets
// it at once (the writer goroutine asks again only after answering the
// batch), so a conversation write waits behind at most one batch, plus
// the other writes queued with it; a batch, in turn, waits for the writes
// that got the connection first. All other writes were left as they were:
// none is hot enough to need batching, and routing them through the
// writer goroutine would only add a hop.

// maxBatch is the most messages one transaction takes. It bounds how long
// a batch holds the write lock (256 messages: some tens of milliseconds on
// a busy 2-core machine), and so how long a conversation create or a purge
// step waits behind one. Batches only reach it under heavy load.
const maxBatch = 256

// errClosed answers a CreateMessage that the store could not take because
// it is closing. Its message was not written.
var errClosed = threads.Unavailable(errors.New("sqlite: store closed"))

// msgReq is one queued CreateMessage. The writer goroutine owns it from
// the moment it is received until done is closed; then out, err and
// created are the answer.
type msgReq struct {
	ctx    context.Context
	tenant string
	m      threads.Message // a copy: the caller may return (and reuse its own) before the batch runs

	out     *threads.Message
	err     error
	created bool
	done    chan struct{}

	// event is the message.created event, and events what apply returns:
	// kept here so that they take no allocation of their own.
	event  threads.Event
	events [1]*threads.Event
}

// msgReq is a change of a batch (change.go): createMessage's.
var _ batchedChange = (*msgReq)(nil)

func (r *msgReq) changeTenant() string { return r.tenant }

func (r *msgReq) apply(ctx context.Context, tx *changeTx) ([]*threads.Event, error) {
	if h := tx.db.batch.hooks; h != nil && h.message != nil {
		if err := h.message(tx.ts.tx, &r.m); err != nil {
			return nil, err
		}
	}
	out, created, err := tx.db.createMessage(ctx, tx, r.tenant, &r.m, &r.event)
	if err != nil {
		return nil, err
	}
	r.out = out
	if !created {
		return nil, nil // a retry: the stored message, no event
	}
	r.events[0] = &r.event
	return r.events[:], nil
}

func (r *msgReq) settle(err error, wrote bool) {
	if err != nil {
		r.out = nil
	}
	r.err, r.created = err, wrote
}

// batcher is the DB's part that queues messages for the writer goroutine.
type batcher struct {
	reqs   chan *msgReq
	stop   chan struct{} // closed by Close: take no new batch
	exited chan struct{} // closed when writeLoop has returned

	hooks *testHooks // nil outside tests
}

// testHooks let tests in this package steer the writer goroutine.
type testHooks struct {
	// beforeTake runs on the writer goroutine before it waits for the
	// next batch's first message.
	beforeTake func()
	// batchDone runs on the writer goroutine after each batch with the
	// number of messages taken into it.
	batchDone func(n int)
	// message runs in the batch's transaction before each message; an
	// error it returns is that message's statement error.
	message func(tx *sql.Tx, m *threads.Message) error
	// maintenance sees the background maintenance's passes.
	maintenance *maintenanceHooks
}

func (b *batcher) init(h *testHooks) {
	b.reqs = make(chan *msgReq, maxBatch)
	b.stop = make(chan struct{})
	b.exited = make(chan struct{})
	b.hooks = h
}

// CreateMessage stores the message and its message.created event. It is
// written by the writer goroutine in a batch with other concurrent
// messages (see above), and answers once that batch has committed. A retry
// that returns the stored message writes no event: subscribers saw the
// message when it was first created.
func (db *DB) CreateMessage(ctx context.Context, tenant string, m *threads.Message) (*threads.Message, error) {
	if db.unbatched {
		return db.createMessageAlone(ctx, tenant, m)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-db.batch.stop:
		return nil, errClosed
	default:
	}
	r := &msgReq{ctx: ctx, tenant: tenant, m: *m, done: make(chan struct{})}
	select {
	case db.batch.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-db.batch.stop:
		return nil, errClosed
	}
	select {
	case <-r.done:
		return r.out, r.err
	case <-ctx.Done():
		// Taken or not, stop waiting (see "Cancellation" above).
		return nil, ctx.Err()
	case <-db.batch.exited:
		// The writer answers every message it took before it returns, so
		// an unanswered one was never taken, and never written.
		select {
		case <-r.done:
			return r.out, r.err
		default:
			return nil, errClosed
		}
	}
}

// createMessageAlone is CreateMessage without group commit: a batch of
// its own, under the caller's context, with its statements as text, as
// before group commit. Only the benchmarks use it (OpenUnbatched in
// export_test.go), to compare.
func (db *DB) createMessageAlone(ctx context.Context, tenant string, m *threads.Message) (*threads.Message, error) {
	r := &msgReq{ctx: ctx, tenant: tenant, m: *m}
	if err := changeBatch(db, ctx, []*msgReq{r}, false); err != nil {
		return nil, err
	}
	return r.out, r.err
}

// writeLoop is the writer goroutine: it takes whatever is queued, up to
// maxBatch messages, writes it as one batch, and starts again, until Close.
// Messages still queued when it returns are answered by their callers,
// who see exited closed (errClosed).
func (db *DB) writeLoop() {
	b := &db.batch
	defer close(b.exited)
	batch := make([]*msgReq, 0, maxBatch)
	for {
		if b.hooks != nil && b.hooks.beforeTake != nil {
			b.hooks.beforeTake()
		}
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
		case <-b.stop:
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		db.runBatch(batch)
		if b.hooks != nil && b.hooks.batchDone != nil {
			b.hooks.batchDone(len(batch))
		}
		clear(batch) // let answered requests be collected
		batch = batch[:0]
	}
}

// runBatch writes the messages of one batch and answers every caller.
func (db *DB) runBatch(batch []*msgReq) {
	// Taking a message is checking its caller's context: one that ended
	// while queued is answered with its error and not written.
	live := make([]*msgReq, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	// The batch's statements never run under a caller's context (see
	// "Cancellation" above).
	if err := changeBatch(db, context.Background(), live, true); err != nil {
		for _, r := range live {
			r.out, r.err, r.created = nil, err, false
		}
	}
	for _, r := range live {
		close(r.done)
	}
}

// recovered turns a panic on the writer goroutine into an error. Before
// group commit a panic in CreateMessage hit one request, whose handler's
// recovery answered INTERNAL; on the writer goroutine it would end the
// process, so it is stopped here and logged.
func (db *DB) recovered(p any, what string) error {
	err := fmt.Errorf("sqlite: panic in %s: %v", what, p)
	db.log.Error("panic on the writer goroutine", "in", what, "panic", p, "stack", string(debug.Stack()))
	return threads.Internal(err)
}

// savepoint statements: one savepoint at a time, so one name will do.
const (
	sqlSavepoint  = `SAVEPOINT m`
	sqlRelease    = `RELEASE m`
	sqlRollbackTo = `ROLLBACK TO m`
)
