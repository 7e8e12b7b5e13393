package threads_test

import (
	"encoding/base64"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
)

// tokenChars is what a cursor token may contain: it travels in an SSE
// id: line, a Last-Event-ID header and an ?after= query unescaped.
var tokenChars = regexp.MustCompile(`^e[12][A-Za-z0-9_-]+$`)

func TestEventCursorRoundTrip(t *testing.T) {
	for _, c := range []threads.EventCursor{
		{At: 1},
		{At: 1764054560123456, Hi: 42},
		{At: 1764054560123456, Hi: 1 << 40, Lo: 7},
		{At: math.MaxInt64, Hi: math.MaxInt64, Lo: math.MaxInt64},
		{At: 1764054560123456, Hi: 42, Tag: 1},
		{At: 1764054560123456, Hi: 1 << 40, Lo: 7, Tag: threads.EventCursorTag("acme")},
		{At: math.MaxInt64, Hi: math.MaxInt64, Lo: math.MaxInt64, Tag: math.MaxUint32},
	} {
		tok := c.Token()
		if !tokenChars.MatchString(tok) || len(tok) > 128 {
			t.Errorf("%+v: token %q is not a short URL- and header-safe string", c, tok)
		}
		// A tagged cursor is a new version of token; one without a tag
		// keeps the old form.
		if want := map[bool]string{false: "e1", true: "e2"}[c.Tag != 0]; !strings.HasPrefix(tok, want) {
			t.Errorf("%+v: token %q, want it to start with %s", c, tok, want)
		}
		got, err := threads.ParseEventCursor(tok)
		if err != nil || got != c {
			t.Errorf("%+v → %q → %+v, %v", c, tok, got, err)
		}
	}
	if tok := (threads.EventCursor{}).Token(); tok != "" {
		t.Errorf("zero cursor has token %q, want empty", tok)
	}
	if c, err := threads.ParseEventCursor(""); err != nil || !c.IsZero() {
		t.Errorf(`ParseEventCursor("") = %+v, %v; want the zero cursor`, c, err)
	}
}

func TestParseEventCursorRefuses(t *testing.T) {
	enc := func(s string) string { return "e1" + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	enc2 := func(s string) string { return "e2" + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, bad := range []string{
		"x", "e1", "e1!!!", "E1" + enc("1.2.3")[2:], "e2" + enc("1.2.3")[2:],
		enc("1.2"), enc("1.2.3.4"), enc("1..3"), enc("1.2.3 "), enc(".."),
		enc("0.1.1"),                                // no time: not a cursor this server made
		enc("-1.1.1"), enc("1.-1.1"), enc("1.1.-1"), // negative parts
		enc("1y2p0ij32e8e8.0.0"), // beyond int64
		"e1" + base64.RawStdEncoding.EncodeToString([]byte("1.+/?.3")),
		enc("1.2.3") + "=",
		"e1" + strings.Repeat("A", 127),
		// The tagged version has exactly four parts, the tag a nonzero
		// 32-bit number; the old one has no tag.
		enc("1.2.3.4"), enc2("1.2.3"), enc2("1.2.3.4.5"), enc2("1.2.3."), enc2("1.2.3.0"),
		enc2("1.2.3.-1"), enc2("1.2.3.1z141z4"), enc2("0.2.3.4"), enc2("1.-2.3.4"),
		"e3" + enc("1.2.3.4")[2:], "e2",
	} {
		if c, err := threads.ParseEventCursor(bad); threads.ErrorCode(err) != threads.EBADREQUEST {
			t.Errorf("token %q: %+v, %v; want BAD_REQUEST", bad, c, err)
		} else if strings.Contains(err.Error(), bad) {
			t.Errorf("token %q: the error %q echoes it", bad, err)
		}
	}
}

func TestEventCursorBefore(t *testing.T) {
	order := []threads.EventCursor{
		{}, {At: 9, Hi: 0, Lo: 1}, {At: 1, Hi: 1}, {At: 5, Hi: 1, Lo: 1}, {At: 2, Hi: 1, Lo: 2}, {At: 1, Hi: 2},
	}
	for i, c := range order {
		for j, d := range order {
			if got := c.Before(d); got != (i < j) {
				t.Errorf("%+v.Before(%+v) = %v, want %v (At plays no part)", c, d, got, i < j)
			}
		}
	}
	if !(threads.EventCursor{}).IsZero() || (threads.EventCursor{At: 1}).IsZero() {
		t.Error("IsZero must hold for the zero cursor alone")
	}
	// A tag is no position: a tagged zero cursor is still "from now on",
	// and tags do not order positions.
	if tagged := (threads.EventCursor{}).For("acme"); !tagged.IsZero() || tagged.Token() != "" {
		t.Errorf("%+v: IsZero %v, token %q; want the zero cursor", tagged, tagged.IsZero(), tagged.Token())
	}
	for _, c := range order {
		for j, d := range order {
			if a, b := c.For("acme"), d.For("globex"); a.Before(b) != c.Before(d) || b.Before(a) != d.Before(c) {
				t.Errorf("%+v.Before(%+v) changes with tags (order index %d)", c, d, j)
			}
		}
	}
	c := threads.EventCursor{At: 1764054560123456}
	if got := c.Time(); !got.Equal(time.UnixMicro(c.At)) || got.Location() != time.UTC {
		t.Errorf("Time() = %v, want %v in UTC", got, time.UnixMicro(c.At))
	}
}

// TestEventCursorTenant: a cursor made for a tenant opens that tenant's
// streams and no other's; a token made before tags ("e1") is accepted
// for any tenant, as clients keep theirs across an upgrade.
func TestEventCursorTenant(t *testing.T) {
	c := threads.EventCursor{At: 1764054560123456, Hi: 42, Lo: 7}
	acme := c.For("acme").Token()
	got, err := threads.ParseEventCursorFor(acme, "acme")
	if err != nil || got != c.For("acme") || got.Tag != threads.EventCursorTag("acme") {
		t.Errorf("acme's cursor for acme: %+v, %v; want %+v", got, err, c.For("acme"))
	}
	for _, other := range []string{"globex", "acme ", "Acme", ""} {
		got, err := threads.ParseEventCursorFor(acme, other)
		if threads.ErrorCode(err) != threads.EBADREQUEST {
			t.Errorf("acme's cursor for %q: %+v, %v; want BAD_REQUEST", other, got, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "acme") || strings.Contains(msg, acme) {
			t.Errorf("the error %q says whose the cursor is", msg)
		}
	}
	// An old client's token, as the server made it before tags.
	const old = "e1aGRhemg2azNzdy4xNi43"
	for _, tenant := range []string{"acme", "globex"} {
		if got, err := threads.ParseEventCursorFor(old, tenant); err != nil || got != c {
			t.Errorf("old token for %s: %+v, %v; want %+v", tenant, got, err, c)
		}
		if got, err := threads.ParseEventCursorFor("", tenant); err != nil || !got.IsZero() {
			t.Errorf("empty token for %s: %+v, %v; want the zero cursor", tenant, got, err)
		}
	}
	if _, err := threads.ParseEventCursorFor("e1!!", "acme"); threads.ErrorCode(err) != threads.EBADREQUEST {
		t.Errorf("a malformed token: %v, want BAD_REQUEST", err)
	}
	seen := map[uint32]string{}
	for i := range 1000 {
		tenant := fmt.Sprintf("tenant-%d", i)
		tag := threads.EventCursorTag(tenant)
		if tag == 0 || seen[tag] != "" {
			t.Fatalf("tag of %s is %d, which is no tag or %q's", tenant, tag, seen[tag])
		}
		seen[tag] = tenant
	}
}

// TestEventDataRoundTrip: what a store keeps of an event's object comes
// back equal, for each kind of object.
func TestEventDataRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 4, 5, 123456000, time.UTC)
	for _, e := range []*threads.Event{
		threads.NewConversationEvent(threads.EventConversationUpdated, &threads.Conversation{ID: "c", GroupID: "g", Topic: "t \"q\"\n", CreatedAt: at}),
		threads.NewMessageEvent("g", &threads.Message{ID: "m", ConversationID: "c", AuthorID: "a", Text: "h\u00e9\U0001F600</script>", SentAt: at, Seq: 3}),
	} {
		b, err := e.MarshalData()
		if err != nil {
			t.Fatalf("MarshalData: %v", err)
		}
		got := threads.Event{Type: e.Type, GroupID: e.GroupID, ConversationID: e.ConversationID}
		if err := got.UnmarshalData(b); err != nil {
			t.Fatalf("UnmarshalData(%s): %v", b, err)
		}
		if d := cmp.Diff(e, &got); d != "" {
			t.Errorf("round trip through %s (-want +got):\n%s", b, d)
		}
	}
}

// FuzzEventCursor: any token either fails with BAD_REQUEST or decodes to
// a cursor whose token decodes to the same cursor; and any cursor a store
// can make (At > 0, Hi and Lo not negative) survives Token and back.
//
// Each made cursor is also tried tagged, for a tenant named by the token:
// it opens that tenant's streams.
func FuzzEventCursor(f *testing.F) {
	f.Add(threads.EventCursor{At: 1764054560123456, Hi: 42}.Token(), int64(1764054560123456), int64(42), int64(0))
	f.Add(threads.EventCursor{At: 1, Hi: 1 << 40, Lo: 7}.Token(), int64(1), int64(1<<40), int64(7))
	f.Add(threads.EventCursor{At: 1, Hi: 1 << 40, Lo: 7}.For("acme").Token(), int64(1), int64(1<<40), int64(7))
	f.Add("", int64(0), int64(0), int64(0))
	f.Add("e1MS4yLjM", int64(-1), int64(math.MaxInt64), int64(-7))
	f.Add("e1ISEh", int64(0), int64(5), int64(0))
	f.Add("e2MS4yLjMuMA", int64(0), int64(5), int64(0))
	f.Fuzz(func(t *testing.T, token string, at, hi, lo int64) {
		c, err := threads.ParseEventCursor(token)
		if err != nil {
			if threads.ErrorCode(err) != threads.EBADREQUEST {
				t.Fatalf("ParseEventCursor(%q): error %v is not BAD_REQUEST", token, err)
			}
		} else if again, err := threads.ParseEventCursor(c.Token()); err != nil || again != c {
			t.Fatalf("%q → %+v → %q → %+v, %v", token, c, c.Token(), again, err)
		}

		made := threads.EventCursor{At: at, Hi: hi, Lo: lo}
		if tagged := made.For(token); at > 0 && hi >= 0 && lo >= 0 {
			if got, err := threads.ParseEventCursorFor(tagged.Token(), token); err != nil || got != tagged {
				t.Fatalf("%+v → %q → %+v, %v", tagged, tagged.Token(), got, err)
			}
			if !tokenChars.MatchString(tagged.Token()) {
				t.Fatalf("%+v: token %q has characters unsafe in a header or URL", tagged, tagged.Token())
			}
		}
		got, err := threads.ParseEventCursor(made.Token())
		switch valid := at > 0 && hi >= 0 && lo >= 0; {
		case valid && (err != nil || got != made):
			t.Fatalf("%+v → %q → %+v, %v", made, made.Token(), got, err)
		case valid && !tokenChars.MatchString(made.Token()):
			t.Fatalf("%+v: token %q has characters unsafe in a header or URL", made, made.Token())
		case !valid && !made.IsZero() && threads.ErrorCode(err) != threads.EBADREQUEST:
			t.Fatalf("%+v is no cursor a store makes, yet its token %q parses as %+v, %v", made, made.Token(), got, err)
		}
	})
}
