package threads_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/threads-server/threads"
)

// metadataOf returns a JSON object of n members whose values pad it to
// size bytes at least (exactly size when size is reachable).
func metadataOf(t *testing.T, n, size int) json.RawMessage {
	t.Helper()
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%02d":""`, i)
	}
	b.WriteByte('}')
	s := b.String()
	if pad := size - len(s); pad > 0 {
		// Grow the last value: `"k..":""` → `"k..":"xxx"`.
		s = s[:len(s)-2] + strings.Repeat("x", pad) + `"}`
	}
	if !json.Valid([]byte(s)) {
		t.Fatalf("metadataOf(%d, %d) made invalid JSON", n, size)
	}
	return json.RawMessage(s)
}

func TestValidateMetadata(t *testing.T) {
	spaced := json.RawMessage("{" + strings.Repeat(" ", threads.MaxMetadataBytes) + `"a": 1}`)
	for _, tc := range []struct {
		name string
		m    json.RawMessage
		ok   bool
	}{
		{"empty object", json.RawMessage(`{}`), true},
		{"nested values", json.RawMessage(`{"a":{"b":[1,2,{"c":null}]},"d":"é"}`), true},
		{"64 keys", metadataOf(t, threads.MaxMetadataKeys, 0), true},
		{"65 keys", metadataOf(t, threads.MaxMetadataKeys+1, 0), false},
		{"a key repeated counts once", json.RawMessage(strings.TrimSuffix(string(metadataOf(t, threads.MaxMetadataKeys, 0)), "}") + `,"k00":1}`), true},
		{"16 KiB", metadataOf(t, 1, threads.MaxMetadataBytes), true},
		{"16 KiB + 1", metadataOf(t, 1, threads.MaxMetadataBytes+1), false},
		{"whitespace does not count", spaced, true},
		{"null", json.RawMessage(`null`), false},
		{"array", json.RawMessage(`[{"a":1}]`), false},
		{"string", json.RawMessage(`"{}"`), false},
		{"number", json.RawMessage(`1`), false},
		{"empty", json.RawMessage(``), false},
		{"not JSON", json.RawMessage(`{"a":}`), false},
		{"two objects", json.RawMessage(`{}{}`), false},
		{"invalid UTF-8", json.RawMessage("{\"a\":\"\xff\"}"), false},
	} {
		err := threads.ValidateMetadata(tc.m)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		case !tc.ok && threads.ErrorCode(err) != threads.EBADREQUEST:
			t.Errorf("%s: %v, want BAD_REQUEST", tc.name, err)
		}
	}
}

func TestMessageUpdateValidate(t *testing.T) {
	text := func(s string) *string { return &s }
	for _, tc := range []struct {
		name string
		u    threads.MessageUpdate
		id   string // the error id wanted, "" for none
	}{
		{"text", threads.MessageUpdate{Text: text("edited")}, ""},
		{"metadata", threads.MessageUpdate{Metadata: json.RawMessage(`{"pinned":true}`)}, ""},
		{"both", threads.MessageUpdate{Text: text("edited"), Metadata: json.RawMessage(`{}`)}, ""},
		{"text of the longest length", threads.MessageUpdate{Text: text(strings.Repeat("a", threads.MaxTextBytes))}, ""},
		{"neither", threads.MessageUpdate{}, "MISSING_TEXT"},
		{"empty text", threads.MessageUpdate{Text: text("")}, "MISSING_TEXT"},
		{"text too long", threads.MessageUpdate{Text: text(strings.Repeat("a", threads.MaxTextBytes+1))}, "BAD_REQUEST"},
		{"text with a control character", threads.MessageUpdate{Text: text("a\x00b")}, "BAD_REQUEST"},
		{"metadata not an object", threads.MessageUpdate{Text: text("ok"), Metadata: json.RawMessage(`[]`)}, "BAD_REQUEST"},
		{"metadata with too many keys", threads.MessageUpdate{Metadata: metadataOf(t, threads.MaxMetadataKeys+1, 0)}, "BAD_REQUEST"},
		{"metadata too large", threads.MessageUpdate{Metadata: metadataOf(t, 1, threads.MaxMetadataBytes+1)}, "BAD_REQUEST"},
	} {
		err := tc.u.Validate()
		if got := errorID(err); got != tc.id {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.id)
		}
	}
}

func TestConversationUpdateValidate(t *testing.T) {
	topic := func(s string) *string { return &s }
	for _, tc := range []struct {
		name string
		u    threads.ConversationUpdate
		id   string
	}{
		{"topic", threads.ConversationUpdate{Topic: topic("new")}, ""},
		{"metadata", threads.ConversationUpdate{Metadata: json.RawMessage(`{"team":"billing"}`)}, ""},
		{"both", threads.ConversationUpdate{Topic: topic("new"), Metadata: json.RawMessage(`{}`)}, ""},
		{"topic of the longest length", threads.ConversationUpdate{Topic: topic(strings.Repeat("t", threads.MaxTopicBytes))}, ""},
		{"neither", threads.ConversationUpdate{}, "MISSING_TOPIC"},
		{"empty topic", threads.ConversationUpdate{Topic: topic("")}, "MISSING_TOPIC"},
		{"topic too long", threads.ConversationUpdate{Topic: topic(strings.Repeat("t", threads.MaxTopicBytes+1))}, "BAD_REQUEST"},
		{"topic not UTF-8", threads.ConversationUpdate{Topic: topic("\xff")}, "BAD_REQUEST"},
		{"metadata null", threads.ConversationUpdate{Metadata: json.RawMessage(`null`)}, "BAD_REQUEST"},
		{"metadata too large", threads.ConversationUpdate{Topic: topic("ok"), Metadata: metadataOf(t, 1, threads.MaxMetadataBytes+1)}, "BAD_REQUEST"},
	} {
		err := tc.u.Validate()
		if got := errorID(err); got != tc.id {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.id)
		}
	}
}

func errorID(err error) string {
	if err == nil {
		return ""
	}
	return threads.ErrorID(err)
}
