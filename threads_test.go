package threads_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
)

func ptr[T any](v T) *T { return &v }

func TestValidateMessage(t *testing.T) {
	ok := threads.Message{ConversationID: "c", AuthorID: "a", Text: "hi\tthere\r\n"}
	tests := []struct {
		name   string
		edit   func(*threads.Message)
		wantID string
	}{
		{"valid", func(*threads.Message) {}, ""},
		{"missing author", func(m *threads.Message) { m.AuthorID = "" }, "MISSING_AUTHOR_ID"},
		{"missing conversation", func(m *threads.Message) { m.ConversationID = "" }, "MISSING_CONVERSATION_ID"},
		{"missing text", func(m *threads.Message) { m.Text = "" }, "MISSING_TEXT"},
		{"text at the limit", func(m *threads.Message) { m.Text = strings.Repeat("x", threads.MaxTextBytes) }, ""},
		{"text over the limit", func(m *threads.Message) { m.Text = strings.Repeat("x", threads.MaxTextBytes+1) }, "BAD_REQUEST"},
		{"NUL in text", func(m *threads.Message) { m.Text = "a\x00b" }, "BAD_REQUEST"},
		{"invalid UTF-8 text", func(m *threads.Message) { m.Text = "a\xffb" }, "BAD_REQUEST"},
		{"id over the limit", func(m *threads.Message) { m.ID = strings.Repeat("i", threads.MaxIDBytes+1) }, "BAD_REQUEST"},
		{"newline in id", func(m *threads.Message) { m.ID = "a\nb" }, "BAD_REQUEST"},
		{"DEL in author", func(m *threads.Message) { m.AuthorID = "a\x7f" }, "BAD_REQUEST"},
		{"unicode id", func(m *threads.Message) { m.ID = "消息-1" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := ok
			tc.edit(&m)
			err := m.Validate()
			got := ""
			if err != nil {
				got = threads.ErrorID(err)
			}
			if got != tc.wantID {
				t.Fatalf("Validate() = %v, want id %q", err, tc.wantID)
			}
		})
	}
}

func TestValidateConversation(t *testing.T) {
	for _, tc := range []struct {
		c      threads.Conversation
		wantID string
	}{
		{threads.Conversation{GroupID: "g", Topic: "t"}, ""},
		{threads.Conversation{Topic: "t"}, "MISSING_GROUP_ID"},
		{threads.Conversation{GroupID: "g"}, "MISSING_TOPIC"},
		{threads.Conversation{GroupID: "g", Topic: strings.Repeat("t", threads.MaxTopicBytes+1)}, "BAD_REQUEST"},
	} {
		err := tc.c.Validate()
		if got := threads.ErrorID(err); (err == nil) != (tc.wantID == "") || (err != nil && got != tc.wantID) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.c, err, tc.wantID)
		}
	}
}

func TestMessageFilterLimits(t *testing.T) {
	for _, tc := range []struct {
		limit *int32
		want  int
		err   bool
	}{
		{nil, 25, false}, {ptr[int32](0), 25, false}, {ptr[int32](1), 1, false},
		{ptr[int32](200), 200, false}, {ptr[int32](201), 200, false}, {ptr[int32](-1), 0, true},
	} {
		f, err := threads.NewMessageFilter("c", nil, tc.limit)
		if (err != nil) != tc.err || (err == nil && f.Limit != tc.want) {
			t.Errorf("limit %v: got %d, %v; want %d, error %t", tc.limit, f.Limit, err, tc.want, tc.err)
		}
	}
}

// TestSentBeforeRoundsUp: a bound finer than a microsecond must not skip
// the message stored at the microsecond below it.
func TestSentBeforeRoundsUp(t *testing.T) {
	base := time.Date(2026, 11, 25, 10, 4, 5, 123456000, time.UTC)
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{
		{base, base.UnixMicro()},
		{base.Add(1), base.UnixMicro() + 1},
		{base.Add(999), base.UnixMicro() + 1},
	} {
		f, err := threads.NewMessageFilter("c", &tc.at, nil)
		if err != nil || f.SentBefore != tc.want {
			t.Errorf("sent_before %s: got %d, %v; want %d", tc.at.Format(time.RFC3339Nano), f.SentBefore, err, tc.want)
		}
	}
	old := time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)
	if _, err := threads.NewMessageFilter("c", &old, nil); threads.ErrorCode(err) != threads.EBADREQUEST {
		t.Errorf("sent_before before 1970: %v, want BAD_REQUEST", err)
	}
}

func TestRecentFilter(t *testing.T) {
	f, err := threads.NewRecentFilter([]string{"b", "a", "b", "c"}, ptr[int32](500))
	ids, per := f.ConversationIDs, f.PerConversation
	if err != nil || per != 200 {
		t.Fatalf("got %v %d %v", ids, per, err)
	}
	if diff := cmp.Diff([]string{"b", "a", "c"}, ids); diff != "" {
		t.Errorf("duplicates not dropped in order (-want +got):\n%s", diff)
	}
	if _, err := threads.NewRecentFilter(nil, nil); threads.ErrorID(err) != "MISSING_CONVERSATION_IDS" {
		t.Errorf("no ids: %v", err)
	}
	if _, err := threads.NewRecentFilter(make([]string, 101), nil); threads.ErrorCode(err) != threads.EBADREQUEST {
		t.Errorf("101 ids: %v", err)
	}
	if _, err := threads.NewRecentFilter([]string{"a", ""}, nil); threads.ErrorID(err) != "MISSING_CONVERSATION_IDS" {
		t.Errorf("an empty id: %v", err)
	}
}

func TestConversationCursorRoundTrip(t *testing.T) {
	c := threads.ConversationCursor{CreatedAt: 1764054560123456, ID: "019ab-c:d"}
	got, err := threads.ParseConversationCursor(c.Token())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, c)
	}
	if (threads.ConversationCursor{}).Token() != "" {
		t.Error("zero cursor must have an empty token")
	}
	for _, bad := range []string{"!!!", "bm90LWEtY3Vyc29y", "MDpp", "LTU6aWQ", "MTIzOg", strings.Repeat("A", 1000)} {
		if _, err := threads.ParseConversationCursor(bad); threads.ErrorCode(err) != threads.EBADREQUEST {
			t.Errorf("token %q: %v, want BAD_REQUEST", bad, err)
		}
	}
}

func TestParseBearer(t *testing.T) {
	_, secret, err := threads.NewKey("acme", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Bearer " + secret, "bearer " + secret, "BEARER  " + secret + " "} {
		if got, err := threads.ParseBearer(h); err != nil || got != secret {
			t.Errorf("ParseBearer(%q) = %q, %v", h, got, err)
		}
	}
	for _, h := range []string{"", "Bearer", "Bearer ", secret, "Basic " + secret, "Bearer " + secret[:40], "Bearer x" + secret[1:], "Bearer " + secret[:46] + "="} {
		_, err := threads.ParseBearer(h)
		if threads.ErrorCode(err) != threads.EUNAUTHORIZED {
			t.Errorf("ParseBearer(%q) = %v, want UNAUTHORIZED", h, err)
		}
		if err != nil && strings.Contains(err.Error(), secret[4:]) {
			t.Errorf("error echoes the key: %v", err)
		}
	}
}

func TestNewKey(t *testing.T) {
	k, secret, err := threads.NewKey("acme", true)
	if err != nil {
		t.Fatal(err)
	}
	if !threads.SameHash(k.Hash, threads.HashKey(secret)) || !k.Admin || k.Tenant != "acme" || !strings.HasPrefix(k.ID, "key_") {
		t.Fatalf("key %+v does not match its secret", k)
	}
	_, other, _ := threads.NewKey("acme", true)
	if other == secret {
		t.Fatal("two keys share a secret")
	}
	if _, _, err := threads.NewKey("no spaces", false); err == nil {
		t.Fatal("a tenant with a space was accepted")
	}
}

func TestFormatTime(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 25, 10, 4, 5, 120000000, time.UTC), "2026-11-25T10:04:05.120000Z"},
		{time.Date(2026, 11, 25, 10, 4, 5, 0, time.FixedZone("x", 3600)), "2026-11-25T09:04:05.000000Z"},
		{threads.FromMicros(1), "1970-01-01T00:00:00.000001Z"},
	} {
		if got := threads.FormatTime(tc.t); got != tc.want {
			t.Errorf("FormatTime = %s, want %s", got, tc.want)
		}
	}
}

// FuzzConversationCursor: any token either fails with BAD_REQUEST or
// decodes to a cursor whose token decodes to the same cursor.
func FuzzConversationCursor(f *testing.F) {
	f.Add(threads.ConversationCursor{CreatedAt: 1764054560123456, ID: "019ab"}.Token())
	f.Add("MTc2NDA1NDU2MDAwMDAwMDphYmM")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := threads.ParseConversationCursor(token)
		if err != nil {
			if threads.ErrorCode(err) != threads.EBADREQUEST {
				t.Fatalf("error %v is not BAD_REQUEST", err)
			}
			return
		}
		again, err := threads.ParseConversationCursor(c.Token())
		if err != nil || again != c {
			t.Fatalf("%q → %+v → %q → %+v, %v", token, c, c.Token(), again, err)
		}
	})
}

// FuzzParseBearer: the parser accepts only well-formed keys and never
// echoes what it was given.
func FuzzParseBearer(f *testing.F) {
	_, secret, _ := threads.NewKey("acme", false)
	f.Add("Bearer " + secret)
	f.Add("Basic dXNlcjpwYXNz")
	f.Add("Bearer thr_")
	f.Fuzz(func(t *testing.T, header string) {
		s, err := threads.ParseBearer(header)
		if err != nil {
			if threads.ErrorCode(err) != threads.EUNAUTHORIZED || (len(header) > 8 && strings.Contains(err.Error(), header)) {
				t.Fatalf("ParseBearer(%q): %v", header, err)
			}
			return
		}
		if len(s) != 47 || !strings.HasPrefix(s, "thr_") || !strings.Contains(header, s) {
			t.Fatalf("ParseBearer(%q) accepted %q", header, s)
		}
	})
}
