package postgres

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/threads-server/threads"
)

// TestEventDataPaths guards the creates' one-statement events: the paths
// at which SQL fills in created_at, sent_at and seq must be where
// Event.MarshalData puts those fields, with the JSON types it uses.
func TestEventDataPaths(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 4, 5, 123456000, time.UTC)
	conv, _ := threads.NewConversationEvent(threads.EventConversationCreated,
		&threads.Conversation{ID: "c", GroupID: "g", Topic: "t", CreatedAt: at}).MarshalData()
	msg, _ := threads.NewMessageEvent("g", &threads.Message{ID: "m", ConversationID: "c", AuthorID: "a", Text: "x",
		SentAt: at, Seq: 7}).MarshalData()
	atJSON, _ := json.Marshal(at)
	for _, c := range []struct {
		data []byte
		path string
		want any
	}{
		{conv, pathCreatedAt, strings.Trim(string(atJSON), `"`)},
		{msg, pathSentAt, strings.Trim(string(atJSON), `"`)},
		{msg, pathSeq, float64(7)},
	} {
		var v any
		if err := json.Unmarshal(c.data, &v); err != nil {
			t.Fatal(err)
		}
		for _, key := range strings.Split(strings.Trim(c.path, "{}"), ",") {
			obj, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s: %s is not an object in %s", c.path, key, c.data)
			}
			v = obj[key]
		}
		if v != c.want {
			t.Errorf("MarshalData has %v (%T) at %s, want %v: %s", v, v, c.path, c.want, c.data)
		}
	}
}

func TestChannelFor(t *testing.T) {
	for schema, want := range map[string]string{
		"":                      "threads_events",
		"public":                "threads_events",
		"t_0123456789ab":        "threads_events.t_0123456789ab",
		strings.Repeat("s", 63): "threads_events.",
	} {
		got := channelFor(schema)
		if !strings.HasPrefix(got, want) || len(got) > 63 || (want == "threads_events." && len(got) != len(want)+32) {
			t.Errorf("channelFor(%q) = %q, want %q…, at most 63 bytes", schema, got, want)
		}
	}
}
