package threads_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threads-server/threads"
)

// Rules every store keeps the same way, tested once here; the behaviour
// suite (internal/storetest) checks that each store applies them.

func TestResolveMessageRetry(t *testing.T) {
	stored := &threads.Message{ID: "m", ConversationID: "c", AuthorID: "a", Text: "hi", SentAt: time.Unix(1, 0).UTC(), Seq: 3}
	retry := &threads.Message{ID: "m", ConversationID: "c", AuthorID: "a", Text: "hi"}
	broken := errors.New("broken")
	exists := func(ok bool, err error) func() (bool, error) { return func() (bool, error) { return ok, err } }
	never := func() (bool, error) {
		t.Error("conversationExists asked when the answer is known without it")
		return true, nil
	}
	for _, tc := range []struct {
		name    string
		attempt *threads.Message
		stored  *threads.Message
		exists  func() (bool, error)
		want    *threads.Message
		id      string
	}{
		{"a retry", retry, stored, exists(true, nil), stored, ""},
		{"a retry into a deleted conversation", retry, stored, exists(false, nil), nil, "NOT_FOUND"},
		{"the lookup fails", retry, stored, exists(false, broken), nil, "INTERNAL"},
		{"no stored message: the conversation is missing", retry, nil, never, nil, "NOT_FOUND"},
		{"other text", &threads.Message{ID: "m", ConversationID: "c", AuthorID: "a", Text: "ho"}, stored, never, nil, "CONFLICT"},
		{"other author", &threads.Message{ID: "m", ConversationID: "c", AuthorID: "b", Text: "hi"}, stored, never, nil, "CONFLICT"},
		{"other conversation", &threads.Message{ID: "m", ConversationID: "d", AuthorID: "a", Text: "hi"}, stored, never, nil, "CONFLICT"},
	} {
		got, err := threads.ResolveMessageRetry(tc.attempt, tc.stored, tc.exists)
		if errorID(err) != tc.id || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v, %q", tc.name, got, err, tc.want, tc.id)
		}
	}
}

func TestConversationPage(t *testing.T) {
	at := func(us int64) time.Time { return threads.FromMicros(us) }
	rows := []*threads.Conversation{{ID: "c", CreatedAt: at(30)}, {ID: "b", CreatedAt: at(20)}, {ID: "a", CreatedAt: at(10)}}

	first := threads.ConversationFilter{GroupID: "g", Limit: 2}
	if got, want := first.ReadAfter(), (threads.ConversationCursor{CreatedAt: math.MaxInt64}); got != want {
		t.Errorf("first page reads after %+v, want %+v", got, want)
	}
	if first.PageRows() != 3 {
		t.Errorf("PageRows = %d, want 3", first.PageRows())
	}
	page, next := first.Page(rows)
	if d := cmp.Diff(rows[:2], page); d != "" {
		t.Errorf("page (-want +got):\n%s", d)
	}
	if want := (threads.ConversationCursor{CreatedAt: 20, ID: "b"}); next != want {
		t.Errorf("next = %+v, want %+v", next, want)
	}

	second := threads.ConversationFilter{GroupID: "g", Limit: 2, After: next}
	if second.ReadAfter() != next {
		t.Errorf("second page reads after %+v, want %+v", second.ReadAfter(), next)
	}
	page, next = second.Page(rows[2:])
	if len(page) != 1 || !next.IsZero() {
		t.Errorf("last page: %d rows, next %+v; want 1 and none", len(page), next)
	}
	if page, next := second.Page(rows[:2]); len(page) != 2 || !next.IsZero() {
		t.Errorf("a full last page: %d rows, next %+v; want 2 and none", len(page), next)
	}
}

func TestMessageFilterReadBefore(t *testing.T) {
	if got := (threads.MessageFilter{}).ReadBefore(); got != math.MaxInt64 {
		t.Errorf("newest page reads before %d, want MaxInt64", got)
	}
	if got := (threads.MessageFilter{SentBefore: 42}).ReadBefore(); got != 42 {
		t.Errorf("reads before %d, want 42", got)
	}
}

func TestConversationInGroup(t *testing.T) {
	c := &threads.Conversation{ID: "c", GroupID: "g"}
	if !c.InGroup("") || !c.InGroup("g") || c.InGroup("h") {
		t.Errorf("InGroup: any %v, own %v, other %v; want true, true, false", c.InGroup(""), c.InGroup("g"), c.InGroup("h"))
	}
}

func TestEventsExpireBefore(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	if got, want := threads.EventsExpireBefore(now, 24*time.Hour), time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("EventsExpireBefore(a day) = %v, want %v: the window and an hour's margin", got, want)
	}
}
