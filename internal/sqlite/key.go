package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/threads-server/threads"
)

// sqlFindKey is one probe of keys_by_hash (see docs/query-plans.md).
const sqlFindKey = `SELECT id, tenant_id, hash, admin, created_at, revoked_at FROM keys WHERE hash = ?`

func (db *DB) CreateKey(ctx context.Context, k *threads.Key) error {
	created := db.now()
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO keys (id, tenant_id, hash, admin, created_at) VALUES (?, ?, ?, ?, ?)`,
			k.ID, k.Tenant, k.Hash, k.Admin, created)
		return err
	})
	if err == nil {
		k.CreatedAt = threads.FromMicros(created)
	}
	return err
}

// CreateFirstKey needs nothing more than a conditional insert: the
// writer's IMMEDIATE transaction already excludes every other writer.
func (db *DB) CreateFirstKey(ctx context.Context, k *threads.Key) (bool, error) {
	created := db.now()
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO keys (id, tenant_id, hash, admin, created_at)
			SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM keys)`, k.ID, k.Tenant, k.Hash, k.Admin, created)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil || n == 0 {
		return false, err
	}
	k.CreatedAt = threads.FromMicros(created)
	return true, nil
}

func (db *DB) FindKey(ctx context.Context, hash []byte) (*threads.Key, error) {
	k, err := scanKey(db.queryRow(ctx, sqlFindKey, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, threads.ErrKeyNotFound
	}
	return k, mapErr(err)
}

func (db *DB) ListKeys(ctx context.Context) ([]*threads.Key, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, tenant_id, hash, admin, created_at, revoked_at FROM keys ORDER BY created_at, id`)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []*threads.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, mapErr(err)
		}
		out = append(out, k)
	}
	return out, mapErr(rows.Err())
}

func (db *DB) RevokeKey(ctx context.Context, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, db.now(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM keys WHERE id = ?`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return threads.ErrKeyNotFound
			}
		}
		return nil
	})
}

func (db *DB) CountKeys(ctx context.Context) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM keys`).Scan(&n)
	return n, mapErr(err)
}

func scanKey(s scanner) (*threads.Key, error) {
	var k threads.Key
	var created, revoked int64
	if err := s.Scan(&k.ID, &k.Tenant, &k.Hash, &k.Admin, &created, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = threads.FromMicros(created)
	if revoked != 0 {
		k.RevokedAt = threads.FromMicros(revoked)
	}
	return &k, nil
}
