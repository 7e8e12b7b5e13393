package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/sqlite"
)

// TestPurgeResumesAfterCrash leaves the database as a process killed in
// the middle of DeleteConversation would (conversation row gone,
// tombstone written, messages still there) and checks that the next Open
// finishes the purge by itself.
func TestPurgeResumesAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "threads.db")
	db := open(t, path)
	ctx := t.Context()
	c := &threads.Conversation{ID: uuid.Must(uuid.NewV7()).String(), GroupID: "g", Topic: "doomed"}
	if err := db.CreateConversation(ctx, "acme", c); err != nil {
		t.Fatal(err)
	}
	for i := range 2100 { // more than two purge batches
		m := &threads.Message{ID: uuid.Must(uuid.NewV7()).String(), ConversationID: c.ID, AuthorID: "a", Text: string(rune('a' + i%26))}
		if _, err := db.CreateMessage(ctx, "acme", m); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	raw := rawDB(t, path)
	if _, err := raw.Exec(`DELETE FROM conversations WHERE tenant_id = 'acme' AND id = ?`, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO deleted_conversations (tenant_id, id, deleted_at) VALUES ('acme', ?, 1)`, c.ID); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		var n int
		if err := raw.QueryRow(q, c.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM messages WHERE conversation_id = ?`); n != 2100 {
		t.Fatalf("setup: %d messages, want 2100", n)
	}

	db2, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	// The orphans are invisible at once, purged or not.
	if _, err := db2.ListMessages(ctx, "acme", threads.MessageFilter{ConversationID: c.ID, Limit: 25}); threads.ErrorCode(err) != threads.ENOTFOUND {
		t.Fatalf("ListMessages of a deleted conversation: %v, want NOT_FOUND", err)
	}
	// The sweep started by Open removes them; poll (this is a liveness
	// check with a generous limit, not a speed bound).
	for i := 0; ; i++ {
		if count(`SELECT count(*) FROM messages WHERE conversation_id = ?`) == 0 &&
			count(`SELECT count(*) FROM deleted_conversations WHERE id = ?`) == 0 {
			break
		}
		if i == 600 {
			t.Fatalf("purge not finished after reopen: %d messages left",
				count(`SELECT count(*) FROM messages WHERE conversation_id = ?`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
