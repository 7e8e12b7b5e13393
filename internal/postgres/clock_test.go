package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// TestClockStepsBack: sent_at stays strictly increasing in a conversation
// when the database's clock is behind the last message (a clock stepped
// back, a failover to a server whose clock lags). The lag is simulated by
// moving the conversation's last sent_at an hour into the future.
func TestClockStepsBack(t *testing.T) {
	url := pgtest.SchemaURL(t)
	db := pgtest.OpenURL(t, url)
	ctx := context.Background()
	c := &threads.Conversation{ID: "c1", GroupID: "g", Topic: "clock"}
	if err := db.CreateConversation(ctx, "acme", c); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	future := time.Now().Add(time.Hour).UnixMicro()
	if _, err := conn.Exec(ctx, `UPDATE conversations SET last_sent_at = $1 WHERE tenant_id = 'acme' AND id = 'c1'`, future); err != nil {
		t.Fatal(err)
	}
	last := future
	for i := range 3 {
		m, err := db.CreateMessage(ctx, "acme", &threads.Message{ID: "m" + string(rune('0'+i)), ConversationID: "c1", AuthorID: "a", Text: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if got := threads.Micros(m.SentAt); got <= last {
			t.Fatalf("message %d: sent_at %d is not after %d", i, got, last)
		}
		last = threads.Micros(m.SentAt)
	}
}
