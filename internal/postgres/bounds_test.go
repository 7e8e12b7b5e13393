package postgres_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// TestRecentMessagesSendsBounded: a RecentMessages answer too large to
// send is refused (TOO_LARGE) without the database sending it all first.
// pgx drains what a statement selected even when the reader stops, so
// the bound must be in the statement: here 3 × 200 messages of 64 KiB
// (38 MiB) are selected, and less than twice MaxAnswerBytes may cross
// the wire.
func TestRecentMessagesSendsBounded(t *testing.T) {
	u, addr := schemaAddr(t)
	proxy := startProxy(t, addr)
	u.Host = proxy.addr
	st := pgtest.OpenURL(t, u.String())
	ctx := t.Context()
	text := strings.Repeat("x", threads.MaxTextBytes)
	var ids []string
	for i := range 3 {
		c := &threads.Conversation{ID: fmt.Sprintf("c%d", i), GroupID: "g", Topic: "huge"}
		if err := st.CreateConversation(ctx, "acme", c); err != nil {
			t.Fatal(err)
		}
		for j := range threads.MaxMessageLimit {
			if _, err := st.CreateMessage(ctx, "acme", &threads.Message{ID: fmt.Sprintf("m%d-%d", i, j), ConversationID: c.ID, AuthorID: "a", Text: text}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, c.ID)
	}
	before := proxy.down.Load()
	_, err := st.RecentMessages(ctx, "acme", threads.RecentFilter{ConversationIDs: ids, PerConversation: threads.MaxMessageLimit})
	if threads.ErrorCode(err) != threads.ETOOLARGE {
		t.Fatalf("RecentMessages: %v, want TOO_LARGE", err)
	}
	if sent := proxy.down.Load() - before; sent > 2*threads.MaxAnswerBytes {
		t.Errorf("the database sent %.1f MiB for an answer refused at %d MiB", float64(sent)/(1<<20), threads.MaxAnswerBytes>>20)
	}
}

// BenchmarkRecentMessages: 100 conversations' newest 25, the shape the
// HTTP benchmarks use (BENCHMARKS.md).
func BenchmarkRecentMessages(b *testing.B) {
	st := pgtest.Open(b)
	ctx := b.Context()
	var ids []string
	for i := range 100 {
		c := &threads.Conversation{ID: fmt.Sprintf("c%d", i), GroupID: "g", Topic: "t"}
		if err := st.CreateConversation(ctx, "acme", c); err != nil {
			b.Fatal(err)
		}
		for j := range 30 {
			if _, err := st.CreateMessage(ctx, "acme", &threads.Message{ID: fmt.Sprintf("m%d-%d", i, j), ConversationID: c.ID, AuthorID: "a", Text: "a short message of the usual kind"}); err != nil {
				b.Fatal(err)
			}
		}
		ids = append(ids, c.ID)
	}
	b.ReportAllocs()
	for b.Loop() {
		ms, err := st.RecentMessages(ctx, "acme", threads.RecentFilter{ConversationIDs: ids, PerConversation: 25})
		if err != nil || len(ms) != 2500 {
			b.Fatal(len(ms), err)
		}
	}
}
