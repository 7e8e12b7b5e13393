package driverbench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

const (
	createConvs    = 100 // round-robin conversations for create benchmarks
	createWriters  = 16  // goroutines calling create
	readConns      = 8   // read pool size
	readGoroutines = 8
	recentConvs    = 50
)

func requireDriver(tb testing.TB) {
	if DriverName == "" {
		tb.Fatal("build with -tags modernc | mattn | ncruces")
	}
}

func parallelism(goroutines int) int {
	p := (goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	if p < 1 {
		p = 1
	}
	return p
}

// writer bundles the single-connection writer pool and its prepared statements.
type writer struct {
	db                *sql.DB
	bump, exists, ins *sql.Stmt
	convs             []string
	rr                atomic.Uint64
}

func newWriter(tb testing.TB, sync string) *writer {
	requireDriver(tb)
	path := filepath.Join(tb.TempDir(), "create.db")
	db, err := OpenWriter(path, sync)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Exec(Schema); err != nil {
		tb.Fatal(err)
	}
	convs, err := CreateConversations(db, rand.New(rand.NewPCG(3, 4)), createConvs)
	if err != nil {
		tb.Fatal(err)
	}
	w := &writer{db: db, convs: convs}
	for _, p := range []struct {
		s **sql.Stmt
		q string
	}{{&w.bump, SQLBumpConv}, {&w.exists, SQLExists}, {&w.ins, SQLInsert}} {
		if *p.s, err = db.Prepare(p.q); err != nil {
			tb.Fatal(err)
		}
	}
	return w
}

// createTx inserts n messages in one BEGIN IMMEDIATE transaction.
func (w *writer) createTx(ctx context.Context, n int, author string) error {
	tx, err := w.db.BeginTx(ctx, nil) // _txlock=immediate => BEGIN IMMEDIATE
	if err != nil {
		return err
	}
	defer tx.Rollback()
	bump, exists, ins := tx.StmtContext(ctx, w.bump), tx.StmtContext(ctx, w.exists), tx.StmtContext(ctx, w.ins)
	for i := 0; i < n; i++ {
		conv := w.convs[w.rr.Add(1)%uint64(len(w.convs))]
		id := uuid.NewString()
		var seq, sentAt int64
		if err := bump.QueryRowContext(ctx, time.Now().UnixMicro(), Tenant, conv).Scan(&seq, &sentAt); err != nil {
			return fmt.Errorf("bump: %w", err)
		}
		var one int
		if err := exists.QueryRowContext(ctx, Tenant, id).Scan(&one); !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("idempotency check: want ErrNoRows, got %v", err)
		}
		if _, err := ins.ExecContext(ctx, Tenant, conv, sentAt, seq, id, author, MsgText); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	return tx.Commit()
}

func reportOps(b *testing.B, perOp float64, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)*perOp/s, unit)
	}
}

// A. create: one transaction per message, 16 goroutines sharing the single writer conn.
func BenchmarkCreate(b *testing.B) {
	for _, sync := range []string{"NORMAL", "FULL"} {
		b.Run("sync="+sync, func(b *testing.B) {
			// Fresh db per invocation (-count and b.N ramp-up), so every
			// measured run starts from the same state (100 conversations,
			// empty messages table) regardless of driver speed.
			w := newWriter(b, sync)
			b.ReportAllocs()
			b.SetParallelism(parallelism(createWriters))
			var gid atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				author := fmt.Sprintf("author-%02d-0000-0000-0000-000000000000", gid.Add(1))
				ctx := context.Background()
				for pb.Next() {
					if err := w.createTx(ctx, 1, author); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportOps(b, 1, "ops/s")
		})
	}
}

// B. create-batch100: 100 messages per transaction (group commit), one goroutine.
func BenchmarkCreateBatch100(b *testing.B) {
	for _, sync := range []string{"NORMAL", "FULL"} {
		b.Run("sync="+sync, func(b *testing.B) {
			w := newWriter(b, sync) // fresh db per -count run (b.Loop runs the body once)
			b.ReportAllocs()
			ctx := context.Background()
			author := "author-00-0000-0000-0000-000000000000"
			for b.Loop() {
				if err := w.createTx(ctx, 100, author); err != nil {
					b.Fatal(err)
				}
			}
			reportOps(b, 100, "msgs/s")
			reportOps(b, 1, "ops/s")
		})
	}
}

type readers struct {
	db   *sql.DB
	info *SeedInfo
}

func newReaders(tb testing.TB) *readers {
	requireDriver(tb)
	info, _, err := EnsureSeed()
	if err != nil {
		tb.Fatal(err)
	}
	db, err := OpenReaders(info.Path, readConns)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return &readers{db: db, info: info}
}

func scanMessages(rows *sql.Rows) (int, error) {
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, author, text string
		var sentAt, seq int64
		if err := rows.Scan(&id, &author, &text, &sentAt, &seq); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// C. newest25 page on a 200k-message conversation, parallel readers.
func BenchmarkNewest25(b *testing.B) {
	r := newReaders(b)
	stmt, err := r.db.Prepare(SQLNewest25)
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	for _, c := range []struct {
		name   string
		before int64
	}{{"page=first", r.info.BigMaxTS + 1}, {"page=deep", r.info.BigMidTS}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(parallelism(readGoroutines))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					rows, err := stmt.QueryContext(ctx, Tenant, r.info.BigConv, c.before)
					if err != nil {
						b.Error(err)
						return
					}
					if n, err := scanMessages(rows); err != nil || n != 25 {
						b.Errorf("got %d rows, err %v", n, err)
						return
					}
				}
			})
			reportOps(b, 1, "ops/s")
		})
	}
}

func recentSets(info *SeedInfo) map[string][]string {
	return map[string][]string{
		"small50": info.SmallConvs[:recentConvs], // 50 × 300-message conversations
		"withbig": append([]string{info.BigConv}, info.SmallConvs[:recentConvs-1]...),
	}
}

func scanRecent(rows *sql.Rows) (int, error) {
	defer rows.Close()
	n := 0
	for rows.Next() {
		var conv, id, author, text string
		var sentAt, seq int64
		if err := rows.Scan(&conv, &id, &author, &text, &sentAt, &seq); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// D. recent: 50 conversations × 25 newest messages in ONE query, three SQL forms.
func BenchmarkRecent(b *testing.B) {
	r := newReaders(b)
	sets := recentSets(r.info)
	for _, set := range []string{"small50", "withbig"} {
		for _, form := range []string{"window", "union", "lateral"} {
			convs := sets[set]
			stmt, err := r.db.Prepare(RecentSQL(form, len(convs)))
			if err != nil {
				b.Fatal(err)
			}
			args := RecentArgs(form, convs)
			b.Run("set="+set+"/form="+form, func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(parallelism(readGoroutines))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						rows, err := stmt.QueryContext(ctx, args...)
						if err != nil {
							b.Error(err)
							return
						}
						if n, err := scanRecent(rows); err != nil || n != recentConvs*25 {
							b.Errorf("got %d rows, err %v", n, err)
							return
						}
					}
				})
				reportOps(b, 1, "ops/s")
			})
			stmt.Close()
		}
	}
}

// TestSeed creates the seed file (if missing) and logs versions and seed time.
func TestSeed(t *testing.T) {
	requireDriver(t)
	info, took, err := EnsureSeed()
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenReaders(info.Path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t.Logf("driver=%s sqlite_version=%s seed_took=%v (0 = reused)", DriverLabel, SQLiteVersion(db), took)
}

// TestPragmasFailLoudly proves verification rejects a wrong value.
func TestPragmasFailLoudly(t *testing.T) {
	requireDriver(t)
	db, err := sql.Open(DriverName, DSN(filepath.Join(t.TempDir(), "p.db"), "FULL", false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := VerifyPragmas(db, 1, "FULL", false); err != nil {
		t.Fatalf("FULL should verify: %v", err)
	}
	if err := VerifyPragmas(db, 1, "NORMAL", false); err == nil {
		t.Fatal("verification accepted synchronous=FULL as NORMAL")
	} else {
		t.Log("ok, mismatch detected:", err)
	}
}

// TestCreateSemantics checks seq/sent_at assignment and rollback on the create path.
func TestCreateSemantics(t *testing.T) {
	w := newWriter(t, "NORMAL")
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := w.createTx(ctx, 100, "a"); err != nil {
			t.Fatal(err)
		}
	}
	var n, maxSeq, distinctSeq int
	w.db.QueryRow(`SELECT count(*), max(seq), count(DISTINCT conversation_id||':'||seq) FROM messages`).Scan(&n, &maxSeq, &distinctSeq)
	if n != 300 || maxSeq != 3 || distinctSeq != 300 {
		t.Fatalf("n=%d maxSeq=%d distinct=%d", n, maxSeq, distinctSeq)
	}
}

// TestRecentEquivalent checks the three forms return identical row sets.
func TestRecentEquivalent(t *testing.T) {
	r := newReaders(t)
	for set, convs := range recentSets(r.info) {
		var ref []string
		for _, form := range []string{"window", "union", "lateral"} {
			rows, err := r.db.Query(RecentSQL(form, len(convs)), RecentArgs(form, convs)...)
			if err != nil {
				t.Fatal(form, err)
			}
			var got []string
			for rows.Next() {
				var conv, id, author, text string
				var sentAt, seq int64
				if err := rows.Scan(&conv, &id, &author, &text, &sentAt, &seq); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprint(conv, sentAt, id))
			}
			rows.Close()
			sort.Strings(got)
			if len(got) != recentConvs*25 {
				t.Fatalf("%s/%s: %d rows", set, form, len(got))
			}
			if ref == nil {
				ref = got
			} else if strings.Join(ref, ",") != strings.Join(got, ",") {
				t.Fatalf("%s/%s differs from window", set, form)
			}
		}
	}
}

// TestExplain logs EXPLAIN QUERY PLAN for C and D (run with -v).
func TestExplain(t *testing.T) {
	r := newReaders(t)
	explain := func(name, q string, args ...any) {
		rows, err := r.db.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(name, err)
		}
		defer rows.Close()
		var sb strings.Builder
		depth := map[int64]int{}
		n := 0
		for rows.Next() {
			var id, parent, notused int64
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			depth[id] = depth[parent] + 1
			n++
			if n <= 12 {
				fmt.Fprintf(&sb, "%s%s\n", strings.Repeat("  ", depth[id]-1), detail)
			}
		}
		if n > 12 {
			fmt.Fprintf(&sb, "  ... (%d plan rows total)\n", n)
		}
		t.Logf("PLAN %s [%s]:\n%s", name, DriverLabel, sb.String())
	}
	explain("newest25", SQLNewest25, Tenant, r.info.BigConv, r.info.BigMidTS)
	convs := recentSets(r.info)["small50"]
	for _, form := range []string{"window", "union", "lateral"} {
		explain("recent/"+form, RecentSQL(form, len(convs)), RecentArgs(form, convs)...)
	}
}
