package sqlite

import (
	"context"
	"database/sql"
	"errors"
)

// sqlConversationExists is the retry path's check that the conversation
// is still there.
const sqlConversationExists = `SELECT 1 FROM conversations WHERE tenant_id = ? AND id = ?`

// sqlInsertMessage stores one message.
const sqlInsertMessage = `INSERT INTO messages (tenant_id, conversation_id, sent_at, seq, id, author_id, text)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

// The write statements of CreateMessage and of the event log.
const (
	stMessageByID = iota
	stConversationExists
	stAdvanceCounter
	stInsertMessage
	stNextEventPos
	stInsertEvent
	stReadHead
	stWriteHead
	stSavepoint
	stRelease
	stRollbackTo
	numStmts
)

var stmtText = [numStmts]string{
	stMessageByID:        sqlMessageByID,
	stConversationExists: sqlConversationExists,
	stAdvanceCounter:     sqlAdvanceCounter,
	stInsertMessage:      sqlInsertMessage,
	stNextEventPos:       sqlNextEventPos,
	stInsertEvent:        sqlInsertEvent,
	stReadHead:           sqlReadHead,
	stWriteHead:          sqlWriteHead,
	stSavepoint:          sqlSavepoint,
	stRelease:            sqlRelease,
	stRollbackTo:         sqlRollbackTo,
}

// writeStmts are the write statements prepared once on the writer pool.
// The profile of group commit showed SQLite's parser at a quarter of the
// writer goroutine's CPU when each statement was prepared anew; prepared,
// each is parsed once per connection.
type writeStmts [numStmts]*sql.Stmt

// prepare prepares every statement on w (after the migrations, which
// create the tables they name).
func (s *writeStmts) prepare(ctx context.Context, w *sql.DB) error {
	for i, text := range stmtText {
		st, err := w.PrepareContext(ctx, text)
		if err != nil {
			return err
		}
		s[i] = st
	}
	return nil
}

func (s *writeStmts) close() error {
	var errs []error
	for _, st := range s {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// txStmts runs the write statements inside one transaction: the prepared
// ones, each bound to the transaction on first use (a batch binds each
// once for all its messages), or, with prepared nil, as text, which is
// how the unbatched path (benchmarks only) ran before group commit.
type txStmts struct {
	tx       *sql.Tx
	prepared *writeStmts
	bound    [numStmts]*sql.Stmt
	heads    map[string]*eventHead // a batch's event counters, by tenant; see appendEvent
}

// inTx returns the prepared statements for tx.
func (db *DB) inTx(tx *sql.Tx) *txStmts { return &txStmts{tx: tx, prepared: &db.stmts} }

func (ts *txStmts) stmt(ctx context.Context, i int) *sql.Stmt {
	if ts.bound[i] == nil {
		ts.bound[i] = ts.tx.StmtContext(ctx, ts.prepared[i])
	}
	return ts.bound[i]
}

func (ts *txStmts) queryRow(ctx context.Context, i int, args ...any) *sql.Row {
	if ts.prepared == nil {
		return ts.tx.QueryRowContext(ctx, stmtText[i], args...)
	}
	return ts.stmt(ctx, i).QueryRowContext(ctx, args...)
}

func (ts *txStmts) exec(ctx context.Context, i int, args ...any) (sql.Result, error) {
	if ts.prepared == nil {
		return ts.tx.ExecContext(ctx, stmtText[i], args...)
	}
	return ts.stmt(ctx, i).ExecContext(ctx, args...)
}
