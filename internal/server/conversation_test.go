package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/threads-server/threads"
)

// wantConversation checks that a response carries exactly c.
func wantConversation(want apiConversation) func(*testing.T, *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		if diff := cmp.Diff(want, decodeField[apiConversation](t, r, "conversation")); diff != "" {
			t.Errorf("conversation (-want +got):\n%s", diff)
		}
	}
}

// listIDs returns the ids of a ListConversations page and its token.
func listIDs(t *testing.T, r *response) ([]string, string) {
	t.Helper()
	r.ok(t)
	var ids []string
	for _, c := range decodeField[[]apiConversation](t, r, "conversations") {
		ids = append(ids, c.ID)
	}
	return ids, decodeField[string](t, r, "next_page_token")
}

func TestConversationLifecycle(t *testing.T) {
	e := newTestEnv(t)
	created := decodeField[apiConversation](t, e.post("CreateConversation", e.Key, map[string]any{"group_id": "g1", "topic": "launch"}), "conversation")
	if u, err := uuid.Parse(created.ID); err != nil || u.Version() != 7 {
		t.Fatalf("id %q is not a UUIDv7 (%v)", created.ID, err)
	}
	if created.GroupID != "g1" || created.Topic != "launch" || !timestampRE.MatchString(created.CreatedAt) {
		t.Fatalf("created %+v, want group g1, topic launch and a timestamp", created)
	}
	updated := created
	updated.Topic = "relaunch"
	id := created.ID
	e.runScenarios(t, []apiScenario{
		{name: "read by id", method: "ReadConversation", key: e.Key, body: map[string]any{"id": id}, check: wantConversation(created)},
		{name: "read in its group", method: "ReadConversation", key: e.Key, body: map[string]any{"id": id, "group_id": "g1"}, check: wantConversation(created)},
		{name: "read in another group", method: "ReadConversation", key: e.Key, body: map[string]any{"id": id, "group_id": "g2"}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "read with empty group reads any", method: "ReadConversation", key: e.Key, body: map[string]any{"id": id, "group_id": ""}, check: wantConversation(created)},
		{name: "update topic only", method: "UpdateConversation", key: e.Key, body: map[string]any{"id": id, "topic": "relaunch", "group_id": "g9"}, check: wantConversation(updated)},
		{name: "read shows update", method: "ReadConversation", key: e.Key, body: map[string]any{"id": id}, check: wantConversation(updated)},
		{name: "list shows update", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g1"}, check: func(t *testing.T, r *response) {
			if diff := cmp.Diff([]apiConversation{updated}, decodeField[[]apiConversation](t, r, "conversations")); diff != "" {
				t.Errorf("conversations (-want +got):\n%s", diff)
			}
		}},
		{name: "delete", method: "DeleteConversation", key: e.Key, body: map[string]any{"id": id}, check: func(t *testing.T, r *response) {
			if string(r.Raw) != "{}" {
				t.Errorf("body %s, want {}", r.Raw)
			}
		}},
		{name: "read after delete", method: "ReadConversation", key: e.Key, body: map[string]any{"id": id}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "update after delete", method: "UpdateConversation", key: e.Key, body: map[string]any{"id": id, "topic": "x"}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "delete after delete", method: "DeleteConversation", key: e.Key, body: map[string]any{"id": id}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "list after delete", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g1"}, check: func(t *testing.T, r *response) {
			if ids, next := listIDs(t, r); len(ids) != 0 || next != "" {
				t.Errorf("got %v, %q; want nothing", ids, next)
			}
		}},
	})
}

func TestListConversationsPaging(t *testing.T) {
	e := newTestEnv(t)
	var want []string // newest first
	for i := range 12 {
		c := e.createConversation(e.Key, "g", fmt.Sprint("topic ", i))
		want = append([]string{c["id"].(string)}, want...)
		e.createConversation(e.Key, "other", "noise") // another group, never listed
	}
	var got []string
	var pages []int
	token, firstToken := "", ""
	for range 10 {
		ids, next := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": "g", "limit": 5, "page_token": token}))
		got = append(got, ids...)
		pages = append(pages, len(ids))
		if firstToken == "" {
			firstToken = next
		}
		if token = next; token == "" {
			break
		}
	}
	if diff := cmp.Diff([]int{5, 5, 2}, pages); diff != "" {
		t.Errorf("page sizes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged ids, newest first, each once (-want +got):\n%s", diff)
	}
	all, next := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": "g"}))
	if diff := cmp.Diff(want, all); diff != "" || next != "" {
		t.Errorf("unpaged list (-want +got):\n%s\nnext_page_token %q, want empty", diff, next)
	}
	exact, next := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": "g", "limit": 12}))
	if len(exact) != 12 || next != "" {
		t.Errorf("limit equal to the count: %d conversations, next %q; want 12 and no token", len(exact), next)
	}
	e.runScenarios(t, []apiScenario{
		{name: "token from another group is harmless", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "nothing", "page_token": firstToken}, check: func(t *testing.T, r *response) {
			if ids, _ := listIDs(t, r); len(ids) != 0 {
				t.Errorf("got %v, want none", ids)
			}
		}},
		{name: "limit 0 is the default", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g", "limit": 0}, check: func(t *testing.T, r *response) {
			if ids, _ := listIDs(t, r); len(ids) != 12 {
				t.Errorf("got %d, want 12", len(ids))
			}
		}},
	})
}

func TestListConversationsDefaultCap(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	const n = threads.DefaultConversationLimit + 5
	for i := range n {
		c := &threads.Conversation{ID: uuid.Must(uuid.NewV7()).String(), GroupID: "big", Topic: fmt.Sprint(i)}
		if err := e.Store.CreateConversation(ctx, "acme", c); err != nil {
			t.Fatal(err)
		}
	}
	first, next := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": "big"}))
	if len(first) != threads.DefaultConversationLimit || next == "" {
		t.Fatalf("first page without limit: %d conversations, next %q; want %d and a token", len(first), next, threads.DefaultConversationLimit)
	}
	clamped, _ := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": "big", "limit": 5000}))
	if diff := cmp.Diff(first, clamped); diff != "" {
		t.Errorf("limit 5000 is clamped to %d (-want +got):\n%s", threads.MaxConversationLimit, diff)
	}
	rest, last := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": "big", "page_token": next}))
	if len(rest) != 5 || last != "" {
		t.Fatalf("second page: %d conversations, next %q; want 5 and no token", len(rest), last)
	}
	seen := map[string]bool{}
	for _, id := range append(first, rest...) {
		if seen[id] {
			t.Fatalf("conversation %s listed twice", id)
		}
		seen[id] = true
	}
}

func TestDeleteConversationRemovesMessages(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	doomed := e.createConversation(e.Key, "g", "doomed")["id"].(string)
	kept := e.createConversation(e.Key, "g", "kept")["id"].(string)
	for i := range 60 { // stored directly, for speed

		if _, err := e.Store.CreateMessage(ctx, "acme", &threads.Message{ID: fmt.Sprint("d", i), ConversationID: doomed, AuthorID: "a", Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	keptMsg := decodeField[apiMessage](t, e.post("CreateMessage", e.Key, map[string]any{"conversation_id": kept, "author_id": "b", "text": "stay"}), "message")
	e.runScenarios(t, []apiScenario{
		{name: "delete", method: "DeleteConversation", key: e.Key, body: map[string]any{"id": doomed}},
		{name: "list messages", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": doomed}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "post into deleted", method: "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": doomed, "author_id": "a", "text": "late"}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "recent skips deleted", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{doomed, kept}}, check: func(t *testing.T, r *response) {
			if diff := cmp.Diff([]apiMessage{keptMsg}, decodeField[[]apiMessage](t, r, "messages")); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		}},
		{name: "group lists the rest", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g"}, check: func(t *testing.T, r *response) {
			if ids, _ := listIDs(t, r); !cmp.Equal(ids, []string{kept}) {
				t.Errorf("got %v, want [%s]", ids, kept)
			}
		}},
	})
	if ms, err := e.Store.RecentMessages(ctx, "acme", threads.RecentFilter{ConversationIDs: []string{doomed}, PerConversation: threads.MaxMessageLimit}); err != nil || len(ms) != 0 {
		t.Errorf("store still returns %d messages of the deleted conversation (err %v)", len(ms), err)
	}
}
