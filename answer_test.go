package threads_test

import (
	"strings"
	"testing"

	"github.com/threads-server/threads"
)

func TestAnswerBudget(t *testing.T) {
	var b threads.AnswerBudget
	if !b.Take(threads.MaxAnswerBytes + 1) {
		t.Fatal("the first item must fit, however large")
	}
	if b.Take(1) {
		t.Fatal("past the bound, an item fits")
	}
	b = threads.AnswerBudget{}
	if !b.Take(threads.MaxAnswerBytes-1) || !b.Take(1) || b.Take(1) {
		t.Fatal("the bound is not MaxAnswerBytes")
	}
}

// The longest message fits in a page many times over, so the bound never
// leaves a page empty; and ListConversations' largest page (1000 of the
// longest topic and ids, every byte escaped to six) stays under the
// bound, so it needs no cut (docs/api.md says so).
func TestAnswerBoundLimits(t *testing.T) {
	worst := func(n int) string { return strings.Repeat("\x01", n) }
	m := threads.Message{ID: worst(threads.MaxIDBytes), AuthorID: worst(threads.MaxIDBytes),
		ConversationID: worst(threads.MaxIDBytes), Text: worst(threads.MaxTextBytes)}
	if n := m.JSONSize(); n*10 > threads.MaxAnswerBytes {
		t.Errorf("the longest message is %d bytes of JSON at most; a page holds fewer than 10", n)
	}
	conv := 3*threads.JSONStringSize(worst(threads.MaxIDBytes)) + threads.JSONStringSize(worst(threads.MaxTopicBytes)) + 160
	if n := threads.MaxConversationLimit * conv; n > 11<<20 {
		t.Errorf("a page of %d conversations may be %d bytes of JSON, over the 11 MiB docs/api.md states", threads.MaxConversationLimit, n)
	}
}

func TestJSONStringSize(t *testing.T) {
	for s, want := range map[string]int{
		"":           2,
		"abc":        5,
		"\t\n\r\"\\": 12,
		"\x00\x1f":   14,
		"\u2028":     8,
		"é":          4,
		"\xff":       8,
		"😀":          6,
		"<&>":        5,
	} {
		if got := threads.JSONStringSize(s); got != want {
			t.Errorf("JSONStringSize(%q) = %d, want %d", s, got, want)
		}
	}
}

// BenchmarkJSONSize: the cost the answer bound adds to each message a
// page reads (a short message, as most are).
func BenchmarkJSONSize(b *testing.B) {
	m := &threads.Message{ID: "019ab3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b", ConversationID: "019ab3c4-5d6e-7f80-9a1b-2c3d4e5f6a7c",
		AuthorID: "author-42", Text: "Have you tried turning it off and on again? It usually helps."}
	for b.Loop() {
		_ = m.JSONSize()
	}
}
