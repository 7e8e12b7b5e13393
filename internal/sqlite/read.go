package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// readStmts are the reader pool's statements, prepared on first use and
// kept, by SQL text. The profile of ListMessages under load showed
// SQLite's parser at a quarter of the server's CPU when every request
// prepared its statement anew (modernc.org/sqlite prepares a statement
// per QueryContext call). database/sql prepares a kept *sql.Stmt once on
// each reader connection that runs it, so each text is parsed at most
// once per connection.
//
// Only statements of fixed text belong here: the cache never shrinks.
type readStmts struct {
	m sync.Map // SQL text → *sql.Stmt
}

// stmt returns the prepared statement for text, preparing it on first
// use. Two first uses at once may both prepare; one is kept.
func (rs *readStmts) stmt(ctx context.Context, r *sql.DB, text string) (*sql.Stmt, error) {
	if st, ok := rs.m.Load(text); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := r.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	if old, loaded := rs.m.LoadOrStore(text, st); loaded {
		st.Close()
		return old.(*sql.Stmt), nil
	}
	return st, nil
}

func (rs *readStmts) close() error {
	var errs []error
	rs.m.Range(func(_, st any) bool {
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(errs...)
}

// query runs a statement of fixed text on the reader pool, prepared.
func (db *DB) query(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	st, err := db.reads.stmt(ctx, db.r, text)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is query for one row. A statement that fails to prepare is
// run as text instead, which reports the same error through *sql.Row
// (the only way to put an error in one).
func (db *DB) queryRow(ctx context.Context, text string, args ...any) *sql.Row {
	st, err := db.reads.stmt(ctx, db.r, text)
	if err != nil {
		return db.r.QueryRowContext(ctx, text, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
