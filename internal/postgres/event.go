package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/threads-server/threads"
)

// Positions are (txid, id), see migrations/0002_events.sql and final.go.
// EventCursor carries them as Hi = txid and Lo = id; xid8 travels through
// SQL as text because it has no cast to or from bigint.
const txidOut = `txid::text::bigint`

// The creates write their event in the same statement as their row (one
// round trip, and for messages no extra time under the conversation's
// lock). Go marshals the object with the fields the database assigns left
// empty, and the statement fills them in at these paths of
// Event.MarshalData's output (threads.EventData's names);
// TestEventDataPaths guards that they still match.
const (
	pathCreatedAt = `{conversation,created_at}`
	pathSentAt    = `{message,sent_at}`
	pathSeq       = `{message,seq}`
)

// jsonTime renders unix microseconds (an SQL expression) as time.Time's
// JSON form: RFC 3339, UTC. It uses integer arithmetic only, so the
// microseconds survive exactly; six fractional digits parse back to the
// same instant as Go's own trimmed form.
func jsonTime(us string) string {
	return `to_jsonb(to_char(to_timestamp(` + us + ` / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '.' || lpad((` + us + ` % 1000000)::text, 6, '0') || 'Z')`
}

// ReadEvents reads only final positions (final.go): what it returns never
// has a later-committing event slipped in before it. The lock check must
// end before the read's snapshot is taken, so it is a round trip of its
// own; then the page is read in chunks (readEventChunks).
func (db *DB) ReadEvents(ctx context.Context, tenant string, after threads.EventCursor, f threads.EventFilter, limit int) ([]*threads.Event, bool, error) {
	if limit <= 0 {
		return []*threads.Event{}, false, nil
	}
	final, _, err := db.final(ctx, tenant)
	if err != nil {
		return nil, false, err
	}
	p := eventPage{out: []*threads.Event{}}
	more, err := readEventChunks(limit, &p, func(chunk int) (int, bool, error) {
		from := after
		if len(p.out) > 0 {
			from = p.out[len(p.out)-1].Cursor
		}
		return db.readEventChunk(ctx, tenant, from, f, chunk, final, &p)
	})
	if err != nil {
		return nil, false, err
	}
	return p.out, more, nil
}

// eventPage is a page being read: its events, their payload bytes and the
// largest payload among them.
type eventPage struct {
	out           []*threads.Event
	size, largest int
}

// full reports whether the page has reached its byte bound: it takes no
// further event.
func (p *eventPage) full() bool { return p.size >= threads.MaxEventPageBytes }

func (p *eventPage) add(e *threads.Event, payload int) {
	p.out = append(p.out, e)
	p.size += payload
	p.largest = max(p.largest, payload)
}

// firstEventChunk is how many rows the first statement of a page asks
// for: the whole page in the common case of a few new events, and at the
// largest payloads (a message of 64 KiB of tabs is 128 KiB of JSON) about
// twice the page's byte bound.
const firstEventChunk = 16

// readEventChunks reads a page with as many statements (read) as it
// takes. One statement for the whole limit would bound what the page
// keeps but not what it costs: the server sends every row a statement
// selected, and a reader that stops at the byte bound still receives the
// rest (pgx drains them to reach the end of the result), so a page of 500
// rows of 128 KiB would move 64 MiB to keep 1. Instead the first
// statement asks for firstEventChunk rows and each next one for as many as
// the remaining bytes would hold at the largest payload seen so far, and
// at most four times the rows read so far: a page of small events takes a
// few statements, a run of large events a statement or two, and large
// events after small ones cost a few times what the page keeps. read
// appends to p after the last event read (every statement reads below the
// same F), so together the statements return the very page one statement
// would have. read returns how many rows it read and whether it stopped at
// the byte bound with a row left.
func readEventChunks(limit int, p *eventPage, read func(chunk int) (n int, cut bool, err error)) (more bool, err error) {
	chunk := min(limit, firstEventChunk)
	for {
		n, cut, err := read(chunk)
		switch {
		case err != nil:
			return false, err
		case cut:
			return true, nil
		case n < chunk:
			return false, nil // the log is read to its end
		case len(p.out) == limit || p.full():
			return true, nil
		}
		fit := (threads.MaxEventPageBytes-p.size)/max(p.largest, 1) + 1
		chunk = min(limit-len(p.out), 4*len(p.out), fit)
	}
}

// readEventChunk runs one statement for up to chunk events after the
// cursor and adds them to p until it is full.
func (db *DB) readEventChunk(ctx context.Context, tenant string, after threads.EventCursor, f threads.EventFilter, chunk int, final int64, p *eventPage) (n int, cut bool, err error) {
	q, args := readEventsSQL(f), []any{tenant, after.Hi, after.Lo, chunk, final}
	if f.GroupID != "" {
		args = append(args, f.GroupID)
	}
	if len(f.ConversationIDs) > 0 {
		args = append(args, f.ConversationIDs)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return 0, false, mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		if p.full() {
			cut = true
			break
		}
		var e threads.Event
		var data []byte
		if err := rows.Scan(&e.Cursor.Hi, &e.Cursor.Lo, &e.Cursor.At, &e.Type, &e.GroupID, &e.ConversationID, &data); err != nil {
			return 0, false, mapErr(err)
		}
		n++
		if err := e.UnmarshalData(data); err != nil {
			return 0, false, threads.Internal(err)
		}
		p.add(&e, len(data))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, false, mapErr(err)
	}
	return n, cut, nil
}

// The parts of ReadEvents' statement: $1 tenant, $2 and $3 the cursor,
// $4 the limit, $5 the F that final returned (the statement's own xmin may
// be better), then the group and the conversation ids when filtered.
const (
	readEventsCols   = `e.txid::text::bigint AS hi, e.id, e.at, e.type, e.group_id, e.conversation_id, e.data`
	readEventsWindow = `(txid, id) > ($2::bigint::text::xid8, $3)
		AND txid < GREATEST($5::bigint::text::xid8, (SELECT pg_snapshot_xmin(pg_current_snapshot())))`
)

// readEventsSQL reads the whole log with one range scan of the primary
// key. Filtered, it takes the first $4 positions of each part (the group,
// each conversation: one bounded range scan of its index each), keeps the
// first $4 of their union, then fetches those rows: work bounded by the
// page size, however far back the cursor is. (A plain "group_id = $6 OR
// conversation_id = ANY($7)" would sort everything after the cursor.)
func readEventsSQL(f threads.EventFilter) string {
	if f.All() {
		return `SELECT ` + readEventsCols + ` FROM events e WHERE tenant_id = $1 AND ` + readEventsWindow + `
			ORDER BY txid, id LIMIT $4`
	}
	var parts []string
	next := 6
	if f.GroupID != "" {
		parts = append(parts, `(SELECT txid, id FROM events WHERE tenant_id = $1 AND group_id = $6 AND `+readEventsWindow+`
			ORDER BY txid, id LIMIT $4)`)
		next++
	}
	if len(f.ConversationIDs) > 0 {
		parts = append(parts, `(SELECT p.txid, p.id FROM (SELECT DISTINCT cid FROM unnest($`+strconv.Itoa(next)+`::text[]) AS u(cid)) c CROSS JOIN LATERAL (
			SELECT txid, id FROM events WHERE tenant_id = $1 AND conversation_id = c.cid AND `+readEventsWindow+`
			ORDER BY txid, id LIMIT $4) p)`)
	}
	return `WITH k AS (` + strings.Join(parts, " UNION ") + `)
		SELECT ` + readEventsCols + ` FROM (SELECT txid, id FROM k ORDER BY txid, id LIMIT $4) k
		JOIN events e ON e.tenant_id = $1 AND e.txid = k.txid AND e.id = k.id
		ORDER BY e.txid, e.id`
}

// EventHead is (F, 0) for the best F known (final.go): every position
// before it is final and readable; every event at or after it is in flight
// or future. One round trip.
func (db *DB) EventHead(ctx context.Context, tenant string) (threads.EventCursor, error) {
	final, now, err := db.final(ctx, tenant)
	return threads.EventCursor{At: now, Hi: final}, err
}

// PurgeEvents deletes purgeBatch events per statement, oldest first, each
// batch its own short transaction: a range of events_by_at, then one
// primary-key probe per row (written as a join: "(…) IN (subquery)" gets a
// hash join over the whole table). Each batch resumes from the previous
// one's newest at, so that none rescans what the others deleted.
func (db *DB) PurgeEvents(ctx context.Context, before time.Time) error {
	cutoff := threads.Micros(before)
	var from int64
	for {
		var n, last int64
		err := db.pool.QueryRow(ctx, `WITH d AS (
			DELETE FROM events e USING (
				SELECT tenant_id, txid, id FROM events WHERE at >= $1 AND at < $2 ORDER BY at LIMIT $3) old
			WHERE e.tenant_id = old.tenant_id AND e.txid = old.txid AND e.id = old.id
			RETURNING e.at)
		SELECT count(*), COALESCE(max(at), 0) FROM d`, from, cutoff, purgeBatch).Scan(&n, &last)
		if err != nil {
			return mapErr(err)
		}
		if n < purgeBatch {
			return nil
		}
		from = last
	}
}
