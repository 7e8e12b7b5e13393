package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The purge's statements must cost their batch, not the conversation, on
// a table the planner knows nothing about (a fresh one: autovacuum has not
// analyzed it yet) as well as on an analyzed one. The batch that was
// planned as a nested-loop semi join on a fresh table discarded 9.5
// million rows per 1,000-row batch of a 10,000-message conversation (issue
// 10, item 6). These tests check the plans, custom and generic, with
// EXPLAIN, and the work done with EXPLAIN ANALYZE.

// planSentAt is the first message's sent_at in these tests.
const planSentAt = 1_700_000_000_000_000

// purgePlanCases are the purge's statements, as prepared statements with
// arguments written as SQL literals (for EXPLAIN EXECUTE).
var purgePlanCases = []struct {
	name, stmt, types, args string
	// batch: the statement reads and deletes one batch, so no node may
	// handle more than purgeBatch rows and every scan of messages must
	// be bounded by sent_at.
	batch bool
}{
	{"purge batch (first)", sqlPurgeBatch, "text, text, bigint", fmt.Sprintf("'acme', 'big', %d", int64(math.MinInt64)), true},
	{"purge batch (middle)", sqlPurgeBatch, "text, text, bigint", fmt.Sprintf("'acme', 'big', %d", planSentAt+10_000), true},
	{"purge done", sqlPurgeDone, "text, text", "'acme', 'big'", false},
}

// TestPurgePlans fills one conversation with 20,000 messages (beside
// others), then checks every purge statement's plan on the fresh table and
// again after ANALYZE: only index scans of the primary key bounded by
// the conversation's key (and by sent_at for a batch), no sequential scan,
// sort or join; and, executed (EXPLAIN ANALYZE, rolled back), no node
// that handles more rows than a batch or discards any.
func TestPurgePlans(t *testing.T) {
	db := planStore(t)
	ctx := t.Context()
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`ALTER TABLE messages SET (autovacuum_enabled = false)`)
	for _, f := range []struct {
		tenant, conv string
		n            int
	}{{"acme", "big", 20_000}, {"acme", "small", 100}, {"other", "big", 100}, {"zeta", "z", 100}} {
		exec(`INSERT INTO messages (tenant_id, conversation_id, sent_at, seq, id, author_id, text)
			SELECT $1, $2, $3::bigint + i, i, $2 || '-' || i, 'a', 'text' FROM generate_series(1, $4::int) i`,
			f.tenant, f.conv, planSentAt, f.n)
	}
	exec(`INSERT INTO deleted_conversations (tenant_id, id, deleted_at) VALUES ('acme', 'big', 1)`)

	n := 0
	for _, state := range []string{"fresh", "analyzed"} {
		if state == "analyzed" {
			exec(`ANALYZE`)
		}
		for _, pc := range purgePlanCases {
			for _, mode := range []string{"force_custom_plan", "force_generic_plan", "executed"} {
				t.Run(fmt.Sprintf("%s/%s/%s", state, pc.name, mode), func(t *testing.T) {
					// As purgeStep runs it: in a transaction that starts
					// with sqlPurgePlan. A statement of its own, so that
					// the generic plan is made here.
					n++
					name := fmt.Sprintf("purge_%d", n)
					exec(`BEGIN`)
					defer exec(`ROLLBACK`)
					exec(sqlPurgePlan)
					exec(fmt.Sprintf(`PREPARE %s (%s) AS %s`, name, pc.types, pc.stmt), pgx.QueryExecModeSimpleProtocol)
					defer exec(`DEALLOCATE ` + name)
					execute := fmt.Sprintf(`EXECUTE %s(%s)`, name, pc.args)
					if mode == "executed" {
						checkPurgePlan(t, explainJSON(t, conn, "EXPLAIN (ANALYZE, FORMAT JSON) "+execute), pc.batch, true)
						return
					}
					exec(`SET LOCAL plan_cache_mode = ` + mode)
					t.Logf("plan:\n%s", explainText(t, conn, execute))
					checkPurgePlan(t, explainJSON(t, conn, "EXPLAIN (FORMAT JSON) "+execute), pc.batch, false)
				})
			}
		}
	}
}

// planNode is the part of EXPLAIN (FORMAT JSON)'s node that the checks
// read.
type planNode struct {
	NodeType     string     `json:"Node Type"`
	Relation     string     `json:"Relation Name"`
	Index        string     `json:"Index Name"`
	IndexCond    string     `json:"Index Cond"`
	Filter       string     `json:"Filter"`
	ActualRows   float64    `json:"Actual Rows"`
	ActualLoops  float64    `json:"Actual Loops"`
	RemovedBy    float64    `json:"Rows Removed by Filter"`
	RemovedJoin  float64    `json:"Rows Removed by Join Filter"`
	RemovedCheck float64    `json:"Rows Removed by Index Recheck"`
	Plans        []planNode `json:"Plans"`
}

// checkPurgePlan walks the plan. Bitmap scans are allowed: they are as
// bounded as the index condition that drives them.
func checkPurgePlan(t *testing.T, root planNode, batch, executed bool) {
	t.Helper()
	var walk func(n planNode)
	walk = func(n planNode) {
		switch n.NodeType {
		case "Aggregate", "Limit", "CTE Scan", "ModifyTable", "Result":
		case "Index Scan", "Index Only Scan", "Bitmap Index Scan":
			if n.Relation == "messages" || strings.HasPrefix(n.Index, "messages") {
				if n.Index != "messages_pkey" {
					t.Errorf("%s on messages uses %q, want messages_pkey", n.NodeType, n.Index)
				}
				want := []string{"tenant_id =", "conversation_id ="}
				if batch {
					want = append(want, "sent_at >")
				}
				for _, w := range want {
					if !strings.Contains(n.IndexCond, w) {
						t.Errorf("%s on messages has index condition %q, without %q", n.NodeType, n.IndexCond, w)
					}
				}
			}
			if n.Filter != "" {
				t.Errorf("%s on %s filters rows after the index (%s)", n.NodeType, n.Relation, n.Filter)
			}
		case "Bitmap Heap Scan":
		default:
			t.Errorf("plan has a %s node (want index scans only)", n.NodeType)
		}
		if executed {
			if rows := n.ActualRows * n.ActualLoops; batch && rows > purgeBatch {
				t.Errorf("%s handled %.0f rows, more than a batch (%d)", n.NodeType, rows, purgeBatch)
			}
			if removed := n.RemovedBy + n.RemovedJoin + n.RemovedCheck; removed > 0 {
				t.Errorf("%s discarded %.0f rows", n.NodeType, removed)
			}
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(root)
}

func explainJSON(t *testing.T, conn *pgxpool.Conn, explain string) planNode {
	t.Helper()
	var out string
	if err := conn.QueryRow(t.Context(), explain, pgx.QueryExecModeSimpleProtocol).Scan(&out); err != nil {
		t.Fatalf("%s: %v", explain, err)
	}
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(out), &plans); err != nil || len(plans) != 1 {
		t.Fatalf("%s: cannot read %s: %v", explain, out, err)
	}
	return plans[0].Plan
}

func explainText(t *testing.T, conn *pgxpool.Conn, execute string) string {
	t.Helper()
	rows, err := conn.Query(t.Context(), "EXPLAIN "+execute, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// planStore opens a store on a new schema of the database named by
// THREADS_TEST_POSTGRES, dropped when the test ends. (pgtest does this
// for the external tests; it imports this package, so this one cannot
// import it.)
func planStore(t *testing.T) *DB {
	t.Helper()
	base := os.Getenv("THREADS_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("THREADS_TEST_REQUIRE_POSTGRES") != "" {
			t.Fatal("THREADS_TEST_REQUIRE_POSTGRES is set but THREADS_TEST_POSTGRES is not")
		}
		t.Skip("PostgreSQL tests skipped: set THREADS_TEST_POSTGRES")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	admin := func(sql string) {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	admin(`CREATE SCHEMA ` + schema)
	t.Cleanup(func() { admin(`DROP SCHEMA ` + schema + ` CASCADE`) })
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	db, err := Open(t.Context(), base+sep+"search_path="+schema, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
