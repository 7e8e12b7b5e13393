package storetest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/threads-server/threads"
)

// boundTests check threads.MaxAnswerBytes: lists are bounded by bytes, not
// only by count.
var boundTests = []leaf{
	{"ListMessagesPageEndsEarly", testListMessagesBytes},
	{"RecentMessagesTooLarge", testRecentMessagesBytes},
}

// createHugeMessages posts n messages of the longest text allowed, all
// tabs: each is twice its size in JSON (\t), so 130 of them pass
// MaxAnswerBytes. It returns them oldest first.
func createHugeMessages(t *testing.T, s threads.Store, tenant, conversationID string, n int) []*threads.Message {
	t.Helper()
	text := strings.Repeat("\t", threads.MaxTextBytes)
	out := make([]*threads.Message, 0, n)
	for i := range n {
		m, err := s.CreateMessage(t.Context(), tenant, &threads.Message{
			ID: fmt.Sprintf("huge-%d", i), ConversationID: conversationID, AuthorID: "a", Text: text})
		if err != nil {
			t.Fatalf("CreateMessage %d: %v", i, err)
		}
		out = append(out, m)
	}
	return out
}

func jsonSize(ms []*threads.Message) int {
	n := 0
	for _, m := range ms {
		n += m.JSONSize()
	}
	return n
}

// A page that would pass the bound ends early, and paging on with
// sent_before from its last message reads every message once, in order.
func testListMessagesBytes(t *testing.T, s threads.Store) {
	c := createConversation(t, s, tenantA, "group-1", "huge")
	all := createHugeMessages(t, s, tenantA, c.ID, 200)
	var got []*threads.Message
	var before int64
	pages := 0
	for {
		page := listMessages(t, s, tenantA, c.ID, before, threads.MaxMessageLimit)
		if len(page) == 0 {
			break
		}
		if n := jsonSize(page); n > threads.MaxAnswerBytes {
			t.Fatalf("page %d: %d messages of %d bytes of JSON, more than MaxAnswerBytes (%d)", pages, len(page), n, threads.MaxAnswerBytes)
		}
		pages++
		got = append(got, page...)
		before = threads.Micros(page[len(page)-1].SentAt)
	}
	if pages < 2 {
		t.Errorf("200 messages of %d bytes of JSON came in %d page(s); want the first page cut short", all[0].JSONSize(), pages)
	}
	diff(t, "every page together", reversed(all), got)
}

// RecentMessages has no page to end early: past the bound it is
// TOO_LARGE, and below it the whole answer.
func testRecentMessagesBytes(t *testing.T, s threads.Store) {
	c := createConversation(t, s, tenantA, "group-1", "huge")
	small := createConversation(t, s, tenantA, "group-1", "small")
	all := createHugeMessages(t, s, tenantA, c.ID, 150)
	ms := createMessages(t, s, tenantA, small.ID, 3)
	_, err := s.RecentMessages(t.Context(), tenantA, threads.RecentFilter{ConversationIDs: []string{small.ID, c.ID}, PerConversation: threads.MaxMessageLimit})
	wantCode(t, "RecentMessages of 150 huge messages", err, threads.ETOOLARGE)
	got := recentMessages(t, s, tenantA, []string{small.ID, c.ID}, 100)
	diff(t, "RecentMessages of 100 huge messages", concat(reversed(ms), newest(all, 100)), got)
}
