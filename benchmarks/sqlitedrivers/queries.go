package driverbench

import (
	"fmt"
	"strings"
)

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// RecentWindow: one query, row_number() window over all rows of the n conversations.
// Args: tenant, conv ids...
func RecentWindow(n int) string {
	return `SELECT conversation_id, id, author_id, text, sent_at, seq FROM (
  SELECT m.conversation_id, m.id, m.author_id, m.text, m.sent_at, m.seq,
         row_number() OVER (PARTITION BY m.conversation_id ORDER BY m.sent_at DESC) AS rn
  FROM messages m WHERE m.tenant_id=? AND m.conversation_id IN (` + placeholders(n) + `)
) WHERE rn <= 25`
}

// RecentUnion: UNION ALL of n per-conversation LIMIT 25 subqueries.
// Args: (tenant, conv id) × n.
func RecentUnion(n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString("\nUNION ALL\n")
		}
		sb.WriteString(`SELECT * FROM (SELECT conversation_id, id, author_id, text, sent_at, seq FROM messages WHERE tenant_id=? AND conversation_id=? ORDER BY sent_at DESC LIMIT 25)`)
	}
	return sb.String()
}

// RecentLateral: LATERAL emulation. A VALUES list of conversation ids, a
// correlated scalar subquery finds each conversation's 25th-newest sent_at
// (one index seek + 25-step backward scan), then CROSS JOIN (forces the
// VALUES list as outer loop) does a PK range scan per conversation.
// Args: tenant (?1), conv ids (?2..).
func RecentLateral(n int) string {
	var vb strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			vb.WriteString(",")
		}
		fmt.Fprintf(&vb, "(?%d)", i+2)
	}
	vals := vb.String()
	return `WITH c(cid) AS (VALUES ` + vals + `),
cut(cid, lo) AS (
  SELECT cid, coalesce((SELECT sent_at FROM messages WHERE tenant_id=?1 AND conversation_id=c.cid ORDER BY sent_at DESC LIMIT 1 OFFSET 24), -9223372036854775808) FROM c)
SELECT m.conversation_id, m.id, m.author_id, m.text, m.sent_at, m.seq
FROM cut CROSS JOIN messages m
WHERE m.tenant_id=?1 AND m.conversation_id=cut.cid AND m.sent_at >= cut.lo`
}

// RecentArgs builds the argument list for a given form.
func RecentArgs(form string, convs []string) []any {
	var args []any
	switch form {
	case "window":
		args = append(args, Tenant)
		for _, c := range convs {
			args = append(args, c)
		}
	case "union":
		for _, c := range convs {
			args = append(args, Tenant, c)
		}
	case "lateral":
		args = append(args, Tenant)
		for _, c := range convs {
			args = append(args, c)
		}
	default:
		panic(form)
	}
	return args
}

func RecentSQL(form string, n int) string {
	switch form {
	case "window":
		return RecentWindow(n)
	case "union":
		return RecentUnion(n)
	case "lateral":
		return RecentLateral(n)
	}
	panic(form)
}
