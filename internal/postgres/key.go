package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/threads-server/threads"
)

// Keys are read from the database on every request, with no cache: a key
// created or revoked through any replica takes effect on all of them at
// once.

func (db *DB) CreateKey(ctx context.Context, k *threads.Key) error {
	var created int64
	err := db.pool.QueryRow(ctx, `INSERT INTO keys (id, tenant_id, hash, admin, created_at) VALUES ($1, $2, $3, $4, `+nowMicros+`)
		RETURNING created_at`, k.ID, k.Tenant, k.Hash, k.Admin).Scan(&created)
	if err != nil {
		return mapErr(err)
	}
	k.CreatedAt = threads.FromMicros(created)
	return nil
}

// CreateFirstKey serializes replicas on a transaction advisory lock: under
// READ COMMITTED two concurrent "insert if none" would both see none.
func (db *DB) CreateFirstKey(ctx context.Context, k *threads.Key) (bool, error) {
	var created int64
	inserted := false
	err := db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('threads.first-key.' || current_schema()))`); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `INSERT INTO keys (id, tenant_id, hash, admin, created_at)
			SELECT $1, $2, $3, $4, `+nowMicros+` WHERE NOT EXISTS (SELECT 1 FROM keys)
			RETURNING created_at`, k.ID, k.Tenant, k.Hash, k.Admin).Scan(&created)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		inserted = err == nil
		return err
	})
	if err != nil || !inserted {
		return false, err
	}
	k.CreatedAt = threads.FromMicros(created)
	return true, nil
}

func (db *DB) FindKey(ctx context.Context, hash []byte) (*threads.Key, error) {
	k, err := scanKey(db.pool.QueryRow(ctx,
		`SELECT id, tenant_id, hash, admin, created_at, revoked_at FROM keys WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, threads.ErrKeyNotFound
	}
	return k, mapErr(err)
}

func (db *DB) ListKeys(ctx context.Context) ([]*threads.Key, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, tenant_id, hash, admin, created_at, revoked_at FROM keys ORDER BY created_at, id`)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*threads.Key, error) { return scanKey(r) })
	return out, mapErr(err)
}

func (db *DB) RevokeKey(ctx context.Context, id string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE keys SET revoked_at = `+nowMicros+` WHERE id = $1 AND revoked_at = 0`, id)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		var one int
		if err := db.pool.QueryRow(ctx, `SELECT 1 FROM keys WHERE id = $1`, id).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return threads.ErrKeyNotFound
		} else if err != nil {
			return mapErr(err)
		}
	}
	return nil
}

func (db *DB) CountKeys(ctx context.Context) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM keys`).Scan(&n)
	return n, mapErr(err)
}

func scanKey(row pgx.Row) (*threads.Key, error) {
	var k threads.Key
	var created, revoked int64
	if err := row.Scan(&k.ID, &k.Tenant, &k.Hash, &k.Admin, &created, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = threads.FromMicros(created)
	if revoked != 0 {
		k.RevokedAt = threads.FromMicros(revoked)
	}
	return &k, nil
}
