// Package driverbench benchmarks Go SQLite drivers through database/sql
// against the messaging schema. Select the driver with a build tag:
// -tags modernc | mattn | ncruces.
package driverbench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
)

const Tenant = "default"

const Schema = `
CREATE TABLE IF NOT EXISTS conversations (
  tenant_id TEXT NOT NULL, id TEXT NOT NULL, group_id TEXT NOT NULL, topic TEXT NOT NULL,
  created_at INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0, last_sent_at INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  tenant_id TEXT NOT NULL, conversation_id TEXT NOT NULL, sent_at INTEGER NOT NULL, seq INTEGER NOT NULL,
  id TEXT NOT NULL, author_id TEXT NOT NULL, text TEXT NOT NULL,
  PRIMARY KEY (tenant_id, conversation_id, sent_at)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_id ON messages (tenant_id, id);
`

const (
	SQLBumpConv = `UPDATE conversations SET last_seq=last_seq+1, last_sent_at=max(last_sent_at+1, ?) WHERE tenant_id=? AND id=? RETURNING last_seq, last_sent_at`
	SQLExists   = `SELECT 1 FROM messages WHERE tenant_id=? AND id=?`
	SQLInsert   = `INSERT INTO messages (tenant_id, conversation_id, sent_at, seq, id, author_id, text) VALUES (?,?,?,?,?,?,?)`
	SQLNewest25 = `SELECT id, author_id, text, sent_at, seq FROM messages WHERE tenant_id=? AND conversation_id=? AND sent_at < ? ORDER BY sent_at DESC LIMIT 25`
)

// MsgText is a ~100 byte message body.
var MsgText = strings.Repeat("hello world, this is a message body ", 3)[:100]

// OpenWriter opens the single-connection writer pool and verifies pragmas.
func OpenWriter(path, sync string) (*sql.DB, error) {
	db, err := sql.Open(DriverName, DSN(path, sync, false))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := VerifyPragmas(db, 1, sync, false); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// OpenReaders opens a query_only pool with n connections and verifies every one.
func OpenReaders(path string, n int) (*sql.DB, error) {
	db, err := sql.Open(DriverName, DSN(path, "NORMAL", true))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := VerifyPragmas(db, n, "NORMAL", true); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// VerifyPragmas checks out n distinct connections at once and checks the
// effective pragma values on each of them. Any mismatch is an error.
func VerifyPragmas(db *sql.DB, n int, sync string, readOnly bool) error {
	ctx := context.Background()
	wantSync := map[string]int{"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}[sync]
	wantQO := 0
	if readOnly {
		wantQO = 1
	}
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		var jm string
		var syn, bt, fk, qo int
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&jm); err != nil {
			return err
		}
		if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syn); err != nil {
			return err
		}
		if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&bt); err != nil {
			return err
		}
		if err := c.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
			return err
		}
		if err := c.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil {
			return err
		}
		if strings.ToLower(jm) != "wal" || syn != wantSync || bt != 5000 || fk != 0 || qo != wantQO {
			return fmt.Errorf("PRAGMA MISMATCH on %s conn %d: journal_mode=%s synchronous=%d (want %d) busy_timeout=%d foreign_keys=%d query_only=%d (want %d)",
				DriverLabel, i, jm, syn, wantSync, bt, fk, qo, wantQO)
		}
	}
	return nil
}

// SQLiteVersion returns sqlite_version() as seen through the driver.
func SQLiteVersion(db *sql.DB) string {
	var v string
	if err := db.QueryRow("SELECT sqlite_version()").Scan(&v); err != nil {
		return "?" + err.Error()
	}
	return v
}

// NewUUID returns a uuid from a deterministic RNG (same data for every driver).
func NewUUID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	u, _ := uuid.FromBytes(b[:])
	u[6] = (u[6] & 0x0f) | 0x40
	u[8] = (u[8] & 0x3f) | 0x80
	return u.String()
}

// CreateConversations creates n conversations and returns their ids.
func CreateConversations(db *sql.DB, r *rand.Rand, n int) ([]string, error) {
	ids := make([]string, n)
	tx, err := db.Begin()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := time.Now().UnixMicro()
	for i := range ids {
		ids[i] = NewUUID(r)
		if _, err := tx.Exec(`INSERT INTO conversations (tenant_id, id, group_id, topic, created_at) VALUES (?,?,?,?,?)`,
			Tenant, ids[i], NewUUID(r), fmt.Sprintf("topic %d", i), now); err != nil {
			return nil, err
		}
	}
	return ids, tx.Commit()
}

// Seed layout for read benchmarks.
const (
	SeedTotal      = 500_000
	SeedBig        = 200_000 // messages in the "big" conversation
	SeedSmallConvs = 1000    // other conversations, 300 messages each
	SeedBatch      = 10_000
	SeedBaseMicros = int64(1_700_000_000_000_000)
)

// SeedInfo describes a seeded database.
type SeedInfo struct {
	Path       string
	BigConv    string
	SmallConvs []string
	BigMinTS   int64
	BigMaxTS   int64
	BigMidTS   int64
}

// SeedPath is the per-driver seed file.
func SeedPath() string { return fmt.Sprintf("data/seed_%s.db", DriverLabel) }

// EnsureSeed creates (once) a db with SeedTotal messages: 40% in one big
// conversation, the rest round-robin over SeedSmallConvs conversations,
// inserted interleaved in time order. Data are deterministic. Returns the
// seed info and how long seeding took (0 if reused).
func EnsureSeed() (*SeedInfo, time.Duration, error) {
	path := SeedPath()
	r := rand.New(rand.NewPCG(1, 2))
	bigConv := NewUUID(r)
	small := make([]string, SeedSmallConvs)
	for i := range small {
		small[i] = NewUUID(r)
	}
	info := &SeedInfo{Path: path, BigConv: bigConv, SmallConvs: small}
	var took time.Duration
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		if err := seed(path, r, bigConv, small); err != nil {
			os.Remove(path)
			return nil, 0, fmt.Errorf("seed: %w", err)
		}
		took = time.Since(start)
	}
	db, err := sql.Open(DriverName, DSN(path, "NORMAL", true))
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM messages`).Scan(&n); err != nil {
		return nil, 0, err
	}
	if n != SeedTotal {
		return nil, 0, fmt.Errorf("seed file %s has %d messages, want %d (delete it)", path, n, SeedTotal)
	}
	if err := db.QueryRow(`SELECT min(sent_at), max(sent_at), count(*) FROM messages WHERE tenant_id=? AND conversation_id=?`, Tenant, bigConv).
		Scan(&info.BigMinTS, &info.BigMaxTS, &n); err != nil {
		return nil, 0, err
	}
	if n != SeedBig {
		return nil, 0, fmt.Errorf("big conversation has %d messages, want %d", n, SeedBig)
	}
	if err := db.QueryRow(`SELECT sent_at FROM messages WHERE tenant_id=? AND conversation_id=? ORDER BY sent_at LIMIT 1 OFFSET ?`, Tenant, bigConv, SeedBig/2).
		Scan(&info.BigMidTS); err != nil {
		return nil, 0, err
	}
	return info, took, nil
}

func seed(path string, r *rand.Rand, bigConv string, small []string) error {
	os.MkdirAll("data", 0o755)
	db, err := OpenWriter(path, "NORMAL")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(Schema); err != nil {
		return err
	}
	if _, err := db.Exec(`PRAGMA cache_size=-131072`); err != nil { // 128 MiB, seeding only
		return err
	}
	convs := append([]string{bigConv}, small...)
	now := time.Now().UnixMicro()
	counts := make(map[string]int64, len(convs))
	lastTS := make(map[string]int64, len(convs))
	ins, err := db.Prepare(SQLInsert)
	if err != nil {
		return err
	}
	defer ins.Close()
	si := 0
	for start := 0; start < SeedTotal; start += SeedBatch {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		st := tx.Stmt(ins)
		for i := start; i < start+SeedBatch; i++ {
			var c string
			if i%5 < 2 {
				c = bigConv
			} else {
				c = small[si%len(small)]
				si++
			}
			counts[c]++
			ts := SeedBaseMicros + int64(i)*1000
			lastTS[c] = ts
			if _, err := st.Exec(Tenant, c, ts, counts[c], NewUUID(r), NewUUID(r), MsgText); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	for i, c := range convs {
		if _, err := tx.Exec(`INSERT INTO conversations (tenant_id, id, group_id, topic, created_at, last_seq, last_sent_at) VALUES (?,?,?,?,?,?,?)`,
			Tenant, c, NewUUID(r), fmt.Sprintf("topic %d", i), now, counts[c], lastTS[c]); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}
