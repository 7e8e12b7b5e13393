package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/threads-server/threads"
)

var listConversationTests = []leaf{
	{"NewestFirst", testListConversationsNewestFirst},
	{"GroupFilter", testListConversationsGroupFilter},
	{"Paging", testListConversationsPaging},
	{"PageToken", testListConversationsPageToken},
	{"CreatedTogether", testListConversationsCreatedTogether},
}

func listConversations(t *testing.T, s threads.Store, tenant string, f threads.ConversationFilter) ([]*threads.Conversation, threads.ConversationCursor) {
	t.Helper()
	cs, next, err := s.ListConversations(t.Context(), tenant, f)
	if err != nil {
		t.Fatalf("ListConversations(%s, %+v): %v", tenant, f, err)
	}
	return cs, next
}

// pageConversations walks a group's whole list, limit at a time. Every page
// but the last must be full, and only the last may have a zero cursor.
func pageConversations(t *testing.T, s threads.Store, tenant, group string, limit, total int) []*threads.Conversation {
	t.Helper()
	var all []*threads.Conversation
	f := threads.ConversationFilter{GroupID: group, Limit: limit}
	for page := 0; ; page++ {
		if page > total+1 {
			t.Fatalf("limit %d: more than %d pages for %d conversations", limit, page, total)
		}
		cs, next := listConversations(t, s, tenant, f)
		all = append(all, cs...)
		remaining := total - len(all)
		if want := min(limit, len(cs)+remaining); len(cs) != want {
			t.Fatalf("limit %d, page %d: %d conversations, want %d", limit, page, len(cs), want)
		}
		if remaining > 0 && next.IsZero() {
			t.Fatalf("limit %d, page %d: zero next cursor with %d conversations left", limit, page, remaining)
		}
		if remaining <= 0 {
			if !next.IsZero() {
				t.Fatalf("limit %d, page %d: next cursor %+v at the end, want zero", limit, page, next)
			}
			return all
		}
		f.After = next
	}
}

func testListConversationsNewestFirst(t *testing.T, s threads.Store) {
	var created []*threads.Conversation
	for i := range 5 {
		created = append(created, createConversation(t, s, tenantA, "group-a", fmt.Sprintf("topic %d", i)))
	}
	got, next := listConversations(t, s, tenantA, threads.ConversationFilter{GroupID: "group-a", Limit: 1000})
	diff(t, "ListConversations", reversed(created), got)
	if !next.IsZero() {
		t.Errorf("next cursor = %+v, want zero", next)
	}
}

func testListConversationsGroupFilter(t *testing.T, s threads.Store) {
	a1 := createConversation(t, s, tenantA, "group-a", "a1")
	b1 := createConversation(t, s, tenantA, "group-b", "b1")
	a2 := createConversation(t, s, tenantA, "group-a", "a2")
	b2 := createConversation(t, s, tenantA, "group-b", "b2")
	createConversation(t, s, tenantA, "group-a-suffix", "prefix must not match")
	createConversation(t, s, tenantB, "group-a", "other tenant")

	got, _ := listConversations(t, s, tenantA, threads.ConversationFilter{GroupID: "group-a", Limit: 100})
	diff(t, "group-a", []*threads.Conversation{a2, a1}, got)
	got, _ = listConversations(t, s, tenantA, threads.ConversationFilter{GroupID: "group-b", Limit: 100})
	diff(t, "group-b", []*threads.Conversation{b2, b1}, got)
	got, next := listConversations(t, s, tenantA, threads.ConversationFilter{GroupID: "no-such-group", Limit: 100})
	if len(got) != 0 || !next.IsZero() {
		t.Errorf("unknown group: %d conversations, cursor %+v; want none and zero", len(got), next)
	}
}

func testListConversationsPaging(t *testing.T, s threads.Store) {
	const total = 23
	var created []*threads.Conversation
	for i := range total {
		created = append(created, createConversation(t, s, tenantA, "group-a", fmt.Sprintf("topic %d", i)))
		if i%4 == 0 {
			createConversation(t, s, tenantA, "group-noise", "noise")
		}
	}
	want := reversed(created)
	for _, limit := range []int{1, 2, 5, 7, 22, 23, 24, 1000} {
		got := pageConversations(t, s, tenantA, "group-a", limit, total)
		diff(t, fmt.Sprintf("paging with limit %d", limit), want, got)
	}
}

// testListConversationsPageToken pages through the opaque token the API
// hands to clients, as the server does.
func testListConversationsPageToken(t *testing.T, s threads.Store) {
	var created []*threads.Conversation
	for i := range 10 {
		created = append(created, createConversation(t, s, tenantA, "group-a", fmt.Sprintf("topic %d", i)))
	}
	var got []*threads.Conversation
	token := ""
	limit := int32(3)
	for page := 0; page < 10; page++ {
		f, err := threads.NewConversationFilter("group-a", &limit, token)
		if err != nil {
			t.Fatalf("NewConversationFilter(token %q): %v", token, err)
		}
		cs, next := listConversations(t, s, tenantA, f)
		got = append(got, cs...)
		token = next.Token()
		if token == "" {
			break
		}
	}
	diff(t, "paging by page token", reversed(created), got)
}

// testListConversationsCreatedTogether creates conversations from several
// goroutines at once, so that some share a CreatedAt microsecond; the id
// breaks those ties and paging must still return each exactly once.
func testListConversationsCreatedTogether(t *testing.T, s threads.Store) {
	const writers, each = 6, 25
	created := make([][]*threads.Conversation, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				c := &threads.Conversation{ID: newID(), GroupID: "group-a", Topic: fmt.Sprintf("writer %d topic %d", w, i)}
				if err := s.CreateConversation(t.Context(), tenantA, c); err != nil {
					t.Errorf("CreateConversation: %v", err)
					return
				}
				created[w] = append(created[w], c)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var all []*threads.Conversation
	for _, cs := range created {
		all = append(all, cs...)
	}
	want := newestFirst(all)
	ties := 0
	for i := 1; i < len(want); i++ {
		if want[i].CreatedAt.Equal(want[i-1].CreatedAt) {
			ties++
		}
	}
	t.Logf("%d conversations, %d share a CreatedAt with their neighbour", len(want), ties)
	for _, limit := range []int{1, 7, 1000} {
		got := pageConversations(t, s, tenantA, "group-a", limit, len(want))
		diff(t, fmt.Sprintf("paging with limit %d", limit), want, got)
	}
}
