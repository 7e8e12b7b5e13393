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

// writeStmts are the statements of CreateMessage and of the event log,
// prepared once on the writer pool. The profile of group commit showed
// SQLite's parser at a quarter of the writer's CPU when each statement
// was prepared anew; prepared, each is parsed once per connection.
type writeStmts struct {
	byID, convExists, advance, insertMsg *sql.Stmt
	nextPos, insertEvent                 *sql.Stmt
	savepoint, release, rollbackTo       *sql.Stmt
}

func (s *writeStmts) all() []**sql.Stmt {
	return []**sql.Stmt{&s.byID, &s.convExists, &s.advance, &s.insertMsg, &s.nextPos, &s.insertEvent,
		&s.savepoint, &s.release, &s.rollbackTo}
}

// prepare prepares every statement on w (after the migrations, which
// create the tables they name).
func (s *writeStmts) prepare(ctx context.Context, w *sql.DB) error {
	texts := []string{sqlMessageByID, sqlConversationExists, sqlAdvanceCounter, sqlInsertMessage, sqlNextEventPos, sqlInsertEvent,
		sqlSavepoint, sqlRelease, sqlRollbackTo}
	for i, p := range s.all() {
		st, err := w.PrepareContext(ctx, texts[i])
		if err != nil {
			return err
		}
		*p = st
	}
	return nil
}

func (s *writeStmts) close() error {
	var errs []error
	for _, p := range s.all() {
		if *p != nil {
			errs = append(errs, (*p).Close())
		}
	}
	return errors.Join(errs...)
}

// txStmts are writeStmts bound to one transaction (a batch binds them
// once for all its messages).
type txStmts struct {
	tx                                   *sql.Tx
	byID, convExists, advance, insertMsg *sql.Stmt
	nextPos, insertEvent                 *sql.Stmt
	savepoint, release, rollbackTo       *sql.Stmt
}

func (db *DB) bind(ctx context.Context, tx *sql.Tx) *txStmts {
	s := &db.stmts
	return &txStmts{
		tx:          tx,
		byID:        tx.StmtContext(ctx, s.byID),
		convExists:  tx.StmtContext(ctx, s.convExists),
		advance:     tx.StmtContext(ctx, s.advance),
		insertMsg:   tx.StmtContext(ctx, s.insertMsg),
		nextPos:     tx.StmtContext(ctx, s.nextPos),
		insertEvent: tx.StmtContext(ctx, s.insertEvent),
		savepoint:   tx.StmtContext(ctx, s.savepoint),
		release:     tx.StmtContext(ctx, s.release),
		rollbackTo:  tx.StmtContext(ctx, s.rollbackTo),
	}
}
