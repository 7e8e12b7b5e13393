package server

import (
	"testing"
	"time"

	"github.com/threads-server/threads"
	"google.golang.org/protobuf/encoding/protojson"
)

// FuzzJSONSize checks that threads.Message.JSONSize, which the stores use
// to keep answers within MaxAnswerBytes, is never smaller than what the
// API's JSON encoders write: the m3o encoder (also the event stream's)
// and Connect's protojson.
func FuzzJSONSize(f *testing.F) {
	for _, s := range []string{"", "plain", "\t\n\r\"\\", "\x00\x01\x1f", "\u2028\u2029", "\xff\xfe", "é😀", "<>&"} {
		f.Add(s, s)
		f.Add("id", s)
	}
	f.Fuzz(func(t *testing.T, id, text string) {
		if got := len(appendString(nil, text)); got > threads.JSONStringSize(text) {
			t.Fatalf("appendString(%q) is %d bytes, JSONStringSize %d", text, got, threads.JSONStringSize(text))
		}
		m := &threads.Message{ID: id, ConversationID: id, AuthorID: id, Text: text,
			SentAt: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), Seq: 1<<63 - 1}
		if m.Validate() != nil {
			return // JSONSize bounds messages as stored, which are valid
		}
		p := pbMessage(m)
		n := m.JSONSize()
		if got := len(appendMessage(nil, p)); got > n {
			t.Fatalf("m3o encoding is %d bytes, JSONSize %d", got, n)
		}
		b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > n {
			t.Fatalf("protojson encoding is %d bytes, JSONSize %d: %s", len(b), n, b)
		}
	})
}
