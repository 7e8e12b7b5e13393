package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/threads-server/threads"
)

// LegacyEvent is an event row as a store wrote it before the stored
// payload had a version (threads.EventData version 0): Data is the
// payload exactly as it was in the events table of each engine, for each
// event type.
type LegacyEvent struct {
	Type, GroupID, ConversationID string
	At                            int64 // unix microseconds
	// SQLite and PostgreSQL are the data column as each engine kept it:
	// Go's JSON as text, and jsonb (keys reordered, spaced out).
	SQLite, PostgreSQL string

	want *threads.Event
}

var (
	legacyConv    = "019ab1c2-0000-7000-8000-000000000001"
	legacyCreated = time.Date(2026, 12, 2, 1, 33, 31, 737225000, time.UTC)
	legacySent    = time.Date(2026, 12, 2, 1, 33, 31, 738879000, time.UTC)
)

func legacyConversation(topic string) *threads.Conversation {
	return &threads.Conversation{ID: legacyConv, GroupID: "support", Topic: topic, CreatedAt: legacyCreated}
}

// LegacyEvents are one row of each event type, in log order, written by
// the commit before versions (a conversation created, a message posted,
// the topic changed, the conversation deleted).
var LegacyEvents = []LegacyEvent{
	{
		Type: threads.EventConversationCreated, GroupID: "support", ConversationID: legacyConv, At: 1796175211738153,
		SQLite:     `{"conversation":{"ID":"019ab1c2-0000-7000-8000-000000000001","GroupID":"support","Topic":"Printer on fire","CreatedAt":"2026-12-02T01:33:31.737225Z"}}`,
		PostgreSQL: `{"conversation": {"ID": "019ab1c2-0000-7000-8000-000000000001", "Topic": "Printer on fire", "GroupID": "support", "CreatedAt": "2026-12-02T01:33:31.737225Z"}}`,
		want:       &threads.Event{Conversation: legacyConversation("Printer on fire")},
	},
	{
		Type: threads.EventMessageCreated, GroupID: "support", ConversationID: legacyConv, At: 1796175211738964,
		SQLite:     `{"message":{"ID":"msg-1","ConversationID":"019ab1c2-0000-7000-8000-000000000001","AuthorID":"ann","Text":"Have you tried \"water\"?\n","SentAt":"2026-12-02T01:33:31.738879Z","Seq":1}}`,
		PostgreSQL: `{"message": {"ID": "msg-1", "Seq": 1, "Text": "Have you tried \"water\"?\n", "SentAt": "2026-12-02T01:33:31.738879Z", "AuthorID": "ann", "ConversationID": "019ab1c2-0000-7000-8000-000000000001"}}`,
		want: &threads.Event{Message: &threads.Message{ID: "msg-1", ConversationID: legacyConv, AuthorID: "ann",
			Text: "Have you tried \"water\"?\n", SentAt: legacySent, Seq: 1}},
	},
	{
		Type: threads.EventConversationUpdated, GroupID: "support", ConversationID: legacyConv, At: 1796175211739643,
		SQLite:     `{"conversation":{"ID":"019ab1c2-0000-7000-8000-000000000001","GroupID":"support","Topic":"Printer no longer on fire","CreatedAt":"2026-12-02T01:33:31.737225Z"}}`,
		PostgreSQL: `{"conversation": {"ID": "019ab1c2-0000-7000-8000-000000000001", "Topic": "Printer no longer on fire", "GroupID": "support", "CreatedAt": "2026-12-02T01:33:31.737225Z"}}`,
		want:       &threads.Event{Conversation: legacyConversation("Printer no longer on fire")},
	},
	{
		Type: threads.EventConversationDeleted, GroupID: "support", ConversationID: legacyConv, At: 1796175211740248,
		SQLite:     `{"conversation":{"ID":"019ab1c2-0000-7000-8000-000000000001","GroupID":"support","Topic":"Printer no longer on fire","CreatedAt":"2026-12-02T01:33:31.737225Z"}}`,
		PostgreSQL: `{"conversation": {"ID": "019ab1c2-0000-7000-8000-000000000001", "Topic": "Printer no longer on fire", "GroupID": "support", "CreatedAt": "2026-12-02T01:33:31.737225Z"}}`,
		want:       &threads.Event{Conversation: legacyConversation("Printer no longer on fire")},
	},
}

// CheckLegacyEvents checks that rows written before the payload had a
// version still read: insert must write LegacyEvents, in order, into the
// tenant's log of s, the way that engine stored them; every one must
// then come back from ReadEvents as the object it described, with its
// type, group, conversation and time.
func CheckLegacyEvents(t *testing.T, s threads.Store, tenant string, insert func(rows []LegacyEvent)) {
	t.Helper()
	insert(LegacyEvents)
	got, _, err := s.ReadEvents(t.Context(), tenant, threads.EventCursor{}, threads.EventFilter{}, 100)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	var want []*threads.Event
	for _, r := range LegacyEvents {
		e := *r.want
		e.Type, e.GroupID, e.ConversationID, e.Cursor.At = r.Type, r.GroupID, r.ConversationID, r.At
		want = append(want, &e)
	}
	positions := cmpopts.IgnoreFields(threads.EventCursor{}, "Hi", "Lo")
	if d := cmp.Diff(want, got, positions); d != "" {
		t.Errorf("events written before versions (-want +got):\n%s", d)
	}
}
