package threads_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threads-server/threads"
)

// The object of every event type, as a fixture. The times are those of
// the old payloads below.
var (
	oldConvID  = "019ab1c2-0000-7000-8000-000000000001"
	oldCreated = time.Date(2026, 12, 2, 1, 33, 31, 737225000, time.UTC)
	oldSent    = time.Date(2026, 12, 2, 1, 33, 31, 738879000, time.UTC)
	oldConv    = func(topic string) *threads.Conversation {
		return &threads.Conversation{ID: oldConvID, GroupID: "support", Topic: topic, CreatedAt: oldCreated}
	}
	oldMessage = &threads.Message{ID: "msg-1", ConversationID: oldConvID, AuthorID: "ann", Text: "Have you tried \"water\"?\n", SentAt: oldSent, Seq: 1}
)

// TestEventDataVersion0 reads payloads exactly as the stores wrote them
// before EventData had tags and a version (taken from a database of each
// engine written by the commit before), one per event type: SQLite kept
// Go's JSON as text, PostgreSQL as jsonb, which reorders the keys and
// spaces them out. Each reads as the object it described.
func TestEventDataVersion0(t *testing.T) {
	for _, tc := range []struct {
		engine, typ, data string
		want              threads.Event
	}{
		{"sqlite", threads.EventConversationCreated,
			`{"conversation":{"ID":"019ab1c2-0000-7000-8000-000000000001","GroupID":"support","Topic":"Printer on fire","CreatedAt":"2026-12-02T01:33:31.737225Z"}}`,
			threads.Event{Conversation: oldConv("Printer on fire")}},
		{"sqlite", threads.EventMessageCreated,
			`{"message":{"ID":"msg-1","ConversationID":"019ab1c2-0000-7000-8000-000000000001","AuthorID":"ann","Text":"Have you tried \"water\"?\n","SentAt":"2026-12-02T01:33:31.738879Z","Seq":1}}`,
			threads.Event{Message: oldMessage}},
		{"sqlite", threads.EventConversationUpdated,
			`{"conversation":{"ID":"019ab1c2-0000-7000-8000-000000000001","GroupID":"support","Topic":"Printer no longer on fire","CreatedAt":"2026-12-02T01:33:31.737225Z"}}`,
			threads.Event{Conversation: oldConv("Printer no longer on fire")}},
		{"sqlite", threads.EventConversationDeleted,
			`{"conversation":{"ID":"019ab1c2-0000-7000-8000-000000000001","GroupID":"support","Topic":"Printer no longer on fire","CreatedAt":"2026-12-02T01:33:31.737225Z"}}`,
			threads.Event{Conversation: oldConv("Printer no longer on fire")}},
		{"postgres", threads.EventConversationCreated,
			`{"conversation": {"ID": "019ab1c2-0000-7000-8000-000000000001", "Topic": "Printer on fire", "GroupID": "support", "CreatedAt": "2026-12-02T01:33:31.737225Z"}}`,
			threads.Event{Conversation: oldConv("Printer on fire")}},
		{"postgres", threads.EventMessageCreated,
			`{"message": {"ID": "msg-1", "Seq": 1, "Text": "Have you tried \"water\"?\n", "SentAt": "2026-12-02T01:33:31.738879Z", "AuthorID": "ann", "ConversationID": "019ab1c2-0000-7000-8000-000000000001"}}`,
			threads.Event{Message: oldMessage}},
		{"postgres", threads.EventConversationUpdated,
			`{"conversation": {"ID": "019ab1c2-0000-7000-8000-000000000001", "Topic": "Printer no longer on fire", "GroupID": "support", "CreatedAt": "2026-12-02T01:33:31.737225Z"}}`,
			threads.Event{Conversation: oldConv("Printer no longer on fire")}},
		{"postgres", threads.EventConversationDeleted,
			`{"conversation": {"ID": "019ab1c2-0000-7000-8000-000000000001", "Topic": "Printer no longer on fire", "GroupID": "support", "CreatedAt": "2026-12-02T01:33:31.737225Z"}}`,
			threads.Event{Conversation: oldConv("Printer no longer on fire")}},
	} {
		var got threads.Event
		if err := got.UnmarshalData([]byte(tc.data)); err != nil {
			t.Errorf("%s %s: UnmarshalData: %v", tc.engine, tc.typ, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s %s: %s (-want +got):\n%s", tc.engine, tc.typ, tc.data, d)
		}
	}
}

// TestEventDataVersion1 pins the stored names: a tag changed by mistake
// fails here, not silently in old rows.
func TestEventDataVersion1(t *testing.T) {
	for _, tc := range []struct {
		e    *threads.Event
		want string
	}{
		{threads.NewConversationEvent(threads.EventConversationCreated, oldConv("Printer on fire")),
			`{"version":1,"conversation":{"id":"019ab1c2-0000-7000-8000-000000000001","group_id":"support","topic":"Printer on fire","created_at":"2026-12-02T01:33:31.737225Z"}}`},
		{threads.NewMessageEvent("support", oldMessage),
			`{"version":1,"message":{"id":"msg-1","conversation_id":"019ab1c2-0000-7000-8000-000000000001","author_id":"ann","text":"Have you tried \"water\"?\n","sent_at":"2026-12-02T01:33:31.738879Z","seq":1}}`},
	} {
		b, err := tc.e.MarshalData()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.e.Type, b, tc.want)
		}
	}
}

// TestEventDataCarriesEveryField fills every field of Conversation and
// Message, so that a field added to either and left out of EventData
// fails the round trip instead of reaching subscribers as a zero value.
func TestEventDataCarriesEveryField(t *testing.T) {
	var c threads.Conversation
	var m threads.Message
	fill(t, &c)
	fill(t, &m)
	for _, e := range []*threads.Event{
		threads.NewConversationEvent(threads.EventConversationUpdated, &c),
		threads.NewMessageEvent(c.GroupID, &m),
	} {
		b, err := e.MarshalData()
		if err != nil {
			t.Fatal(err)
		}
		got := threads.Event{Type: e.Type, GroupID: e.GroupID, ConversationID: e.ConversationID}
		if err := got.UnmarshalData(b); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(e, &got); d != "" {
			t.Errorf("round trip through %s (-want +got):\n%s", b, d)
		}
	}
}

// fill sets every field of the struct v points to to a value that is not
// its zero value; a kind it does not know fails the test.
func fill(t *testing.T, v any) {
	t.Helper()
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		f, name := s.Field(i), s.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC).Add(time.Duration(i) * time.Second)))
		case f.Kind() == reflect.String:
			f.SetString(strings.ToLower(name) + "-value")
		case f.Kind() == reflect.Int64 || f.Kind() == reflect.Int:
			f.SetInt(int64(i + 7))
		default:
			t.Fatalf("fill: field %s of %s is a %s: teach fill (and EventData) about it", name, s.Type(), f.Type())
		}
	}
}

// TestEventDataNewerVersion: a payload of a version this binary does not
// know is an error, not a row of zero values.
func TestEventDataNewerVersion(t *testing.T) {
	var e threads.Event
	if err := e.UnmarshalData([]byte(`{"version":2,"message":{"id":"m"}}`)); err == nil {
		t.Errorf("version 2 read as %+v, want an error", e.Message)
	}
	if _, err := threads.ParseEventData([]byte(`{"version":1,"message":{"id":"m"}}`)); err != nil {
		t.Errorf("version 1: %v", err)
	}
}
