package sqlite

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// planCase is one statement the store issues, with arguments of the right
// shape, the plan lines it must contain, and whether it returns a page in
// an order that the index must give (so no sort step is allowed).
type planCase struct {
	name  string
	query string
	args  []any
	want  []string
	paged bool
}

var planCases = []planCase{
	{
		name:  "ListMessages",
		query: sqlListMessages,
		args:  []any{"tenant", "conv", int64(math.MaxInt64), 25},
		want: []string{
			"SEARCH messages USING PRIMARY KEY (tenant_id=? AND conversation_id=? AND sent_at<?)",
			"SEARCH conversations EXISTS USING PRIMARY KEY (tenant_id=? AND id=?)",
		},
		paged: true,
	},
	{
		name:  "RecentMessages(3 ids)",
		query: sqlRecentMessages,
		args:  []any{"tenant", `["a","b","c"]`, 25},
		want: []string{
			"SEARCH c USING PRIMARY KEY (tenant_id=? AND id=?)",
			"SEARCH m USING PRIMARY KEY (tenant_id=? AND conversation_id=? AND sent_at>?)",
			"SEARCH messages USING PRIMARY KEY (tenant_id=? AND conversation_id=?)",
		},
		paged: true,
	},
	{
		name:  "ListConversations",
		query: sqlListConversations,
		args:  []any{"tenant", "group", int64(math.MaxInt64), "", 26},
		want:  []string{"SEARCH conversations USING COVERING INDEX conversations_by_group_page (tenant_id=? AND group_id=? AND (created_at,id)<(?,?))"},
		paged: true,
	},
	{
		name:  "FindConversation",
		query: sqlFindConversation,
		args:  []any{"tenant", "conv"},
		want:  []string{"SEARCH conversations USING PRIMARY KEY (tenant_id=? AND id=?)"},
	},
	{
		name:  "CreateMessage idempotency lookup",
		query: sqlMessageByID,
		args:  []any{"tenant", "msg"},
		want:  []string{"SEARCH messages USING INDEX messages_by_id (tenant_id=? AND id=?)"},
	},
	{
		name:  "CreateMessage counter",
		query: sqlAdvanceCounter,
		args:  []any{int64(1), "tenant", "conv"},
		want:  []string{"SEARCH conversations USING PRIMARY KEY (tenant_id=? AND id=?)"},
	},
	{
		name:  "FindKey",
		query: sqlFindKey,
		args:  []any{[]byte("hash")},
		want:  []string{"SEARCH keys USING INDEX keys_by_hash (hash=?)"},
	},
	{
		name:  "ReadEvents",
		query: sqlReadEvents,
		args:  []any{"tenant", int64(0), 100},
		want:  []string{"SEARCH events USING PRIMARY KEY (tenant_id=? AND pos>?)"},
		paged: true,
	},
	{
		name:  "ReadEvents(group)",
		query: filteredEventsQuery(true, 0),
		args:  []any{"tenant", int64(0), 100, "group"},
		want: []string{
			"SEARCH events USING PRIMARY KEY (tenant_id=? AND pos=?)",
			"SEARCH events USING COVERING INDEX events_by_group (tenant_id=? AND group_id=? AND pos>?)",
		},
		paged: true,
	},
	{
		name:  "ReadEvents(3 conversations)",
		query: filteredEventsQuery(false, 3),
		args:  []any{"tenant", int64(0), 100, "", "a", "b", "c"},
		want: []string{
			"SEARCH events USING PRIMARY KEY (tenant_id=? AND pos=?)",
			"COMPOUND QUERY",
			"SEARCH events USING COVERING INDEX events_by_conversation (tenant_id=? AND conversation_id=? AND pos>?)",
		},
		paged: true,
	},
	{
		name:  "ReadEvents(group and 100 conversations)",
		query: filteredEventsQuery(true, 100),
		args:  eventArgs(100),
		want: []string{
			"SEARCH events USING PRIMARY KEY (tenant_id=? AND pos=?)",
			"SEARCH events USING COVERING INDEX events_by_group (tenant_id=? AND group_id=? AND pos>?)",
			"SEARCH events USING COVERING INDEX events_by_conversation (tenant_id=? AND conversation_id=? AND pos>?)",
		},
		paged: true,
	},
	{
		name:  "EventHead",
		query: sqlEventHead,
		args:  []any{"tenant"},
		want:  []string{"SEARCH event_heads USING PRIMARY KEY (tenant_id=?)"},
	},
	{
		name:  "a batch reads the event counter",
		query: sqlReadHead,
		args:  []any{"tenant"},
		want:  []string{"SEARCH event_heads USING PRIMARY KEY (tenant_id=?)"},
	},
	{
		name:  "PurgeEvents batch",
		query: sqlPurgeEvents,
		args:  []any{int64(1), purgeBatch},
		want: []string{
			"SEARCH events USING PRIMARY KEY (tenant_id=? AND pos=?)",
			"SEARCH events USING COVERING INDEX events_by_at (at<?)",
		},
	},
	{
		name:  "purge batch",
		query: sqlPurgeBatch,
		args:  []any{"tenant", "conv", purgeBatch},
		want: []string{
			"SEARCH messages USING PRIMARY KEY (tenant_id=? AND conversation_id=? AND sent_at=?)",
			"SEARCH messages USING PRIMARY KEY (tenant_id=? AND conversation_id=?)",
		},
	},
}

// eventArgs are the arguments of filteredEventsQuery(true, n).
func eventArgs(n int) []any {
	args := []any{"tenant", int64(0), 100, "group"}
	for i := range n {
		args = append(args, fmt.Sprintf("conv-%d", i))
	}
	return args
}

// TestQueryPlans checks that every hot statement is a bounded SEARCH of a
// key, never a full SCAN of a table, and that paged statements read rows
// in index order rather than sorting them. It runs on a fresh schema (the
// planner without statistics, which is how the store runs) and again after
// ANALYZE on a populated file, so that statistics cannot turn a plan bad.
func TestQueryPlans(t *testing.T) {
	for _, analyzed := range []bool{false, true} {
		t.Run(fmt.Sprintf("analyzed=%v", analyzed), func(t *testing.T) {
			t.Parallel()
			db, err := Open(t.Context(), filepath.Join(t.TempDir(), "plan.db"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if analyzed {
				populate(t, db)
			}
			for _, pc := range planCases {
				t.Run(pc.name, func(t *testing.T) { checkPlan(t, db, pc) })
			}
		})
	}
}

func checkPlan(t *testing.T, db *DB, pc planCase) {
	plan := explain(t, db, pc.query, pc.args)
	t.Logf("plan:\n%s", strings.Join(plan, "\n"))
	joined := "\n" + strings.Join(plan, "\n") + "\n"
	for _, w := range pc.want {
		if !strings.Contains(joined, "\n"+w+"\n") {
			t.Errorf("plan has no line %q", w)
		}
	}
	for _, line := range plan {
		for _, table := range []string{"messages", "conversations", "keys", "events", "event_heads"} {
			if strings.HasPrefix(line, "SCAN "+table) {
				t.Errorf("plan scans a whole table: %q", line)
			}
		}
		if pc.paged && strings.Contains(line, "USE TEMP B-TREE") {
			t.Errorf("paged query sorts instead of reading the index in order: %q", line)
		}
	}
}

// explain returns the detail column of EXPLAIN QUERY PLAN, one line per
// step.
func explain(t *testing.T, db *DB, query string, args []any) []string {
	t.Helper()
	rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("EXPLAIN QUERY PLAN returned nothing")
	}
	return out
}

// populate fills the tables of several tenants and runs ANALYZE.
func populate(t *testing.T, db *DB) {
	t.Helper()
	ctx := t.Context()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, tenant := range []string{"t1", "t2", "t3"} {
		for c := range 20 {
			conv := fmt.Sprintf("conv-%d", c)
			if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (tenant_id, id, group_id, topic, created_at, last_seq, last_sent_at)
				VALUES (?, ?, ?, 'topic', ?, 100, 100)`, tenant, conv, fmt.Sprintf("group-%d", c%3), c+1); err != nil {
				t.Fatal(err)
			}
			for m := range 100 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO messages (tenant_id, conversation_id, sent_at, seq, id, author_id, text)
					VALUES (?, ?, ?, ?, ?, 'author', 'text')`, tenant, conv, m+1, m+1, fmt.Sprintf("%s-%d", conv, m)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, tenant := range []string{"t1", "t2", "t3"} {
		const n = 3000
		for pos := range n {
			if _, err := tx.ExecContext(ctx, `INSERT INTO events (tenant_id, pos, at, type, group_id, conversation_id, data)
				VALUES (?, ?, ?, 'message.created', ?, ?, '{}')`, tenant, pos+1, pos+1, fmt.Sprintf("group-%d", pos%3), fmt.Sprintf("conv-%d", pos%20)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO event_heads (tenant_id, last_pos, last_at) VALUES (?, ?, ?)`, tenant, n, n); err != nil {
			t.Fatal(err)
		}
	}
	for k := range 50 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO keys (id, tenant_id, hash, admin, created_at) VALUES (?, 't1', ?, 0, 1)`,
			fmt.Sprintf("key_%d", k), []byte(fmt.Sprintf("hash-%d", k))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
