package storetest

import (
	"testing"

	"github.com/threads-server/threads"
)

var tenantTests = []leaf{
	{"Isolation", testTenantIsolation},
	{"MessageIDsPerTenant", testMessageIDsPerTenant},
	{"SameConversationID", testSameConversationID},
}

// testTenantIsolation checks every method from tenant B against data of
// tenant A: nothing is visible and nothing changes.
func testTenantIsolation(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c := createConversation(t, s, tenantA, "group-1", "tenant a only")
	msgs := createMessages(t, s, tenantA, c.ID, 3)

	_, err := s.FindConversation(ctx, tenantB, c.ID, "")
	wantCode(t, "FindConversation from B", err, threads.ENOTFOUND)
	_, err = s.FindConversation(ctx, tenantB, c.ID, "group-1")
	wantCode(t, "FindConversation with group from B", err, threads.ENOTFOUND)
	_, err = s.UpdateConversation(ctx, tenantB, c.ID, "hijacked")
	wantCode(t, "UpdateConversation from B", err, threads.ENOTFOUND)
	wantCode(t, "DeleteConversation from B", s.DeleteConversation(ctx, tenantB, c.ID), threads.ENOTFOUND)
	list, next := listConversations(t, s, tenantB, threads.ConversationFilter{GroupID: "group-1", Limit: 100})
	if len(list) != 0 || !next.IsZero() {
		t.Errorf("ListConversations from B: %d conversations, cursor %+v; want none", len(list), next)
	}
	_, err = s.CreateMessage(ctx, tenantB, &threads.Message{ID: newID(), ConversationID: c.ID, AuthorID: "mallory", Text: "hi"})
	wantCode(t, "CreateMessage from B", err, threads.ENOTFOUND)
	_, err = s.ListMessages(ctx, tenantB, threads.MessageFilter{ConversationID: c.ID, Limit: 25})
	wantCode(t, "ListMessages from B", err, threads.ENOTFOUND)
	if got := recentMessages(t, s, tenantB, []string{c.ID}, 25); len(got) != 0 {
		t.Errorf("RecentMessages from B: %d messages, want none", len(got))
	}
	// A retry from B of A's message id is not A's message.
	m := msgs[0]
	_, err = s.CreateMessage(ctx, tenantB, &threads.Message{ID: m.ID, ConversationID: m.ConversationID, AuthorID: m.AuthorID, Text: m.Text})
	wantCode(t, "retry of A's message from B", err, threads.ENOTFOUND)

	// Tenant A still has everything, unchanged.
	found, err := s.FindConversation(ctx, tenantA, c.ID, "group-1")
	if err != nil {
		t.Fatalf("FindConversation from A: %v", err)
	}
	diff(t, "A's conversation", c, found)
	list, _ = listConversations(t, s, tenantA, threads.ConversationFilter{GroupID: "group-1", Limit: 100})
	diff(t, "A's list", []*threads.Conversation{c}, list)
	diff(t, "A's messages", reversed(msgs), listMessages(t, s, tenantA, c.ID, 0, 25))
}

// testMessageIDsPerTenant uses one client message id in two tenants: each
// stores its own message.
func testMessageIDsPerTenant(t *testing.T, s threads.Store) {
	ctx := t.Context()
	ca := createConversation(t, s, tenantA, "group-1", "a")
	cb := createConversation(t, s, tenantB, "group-1", "b")
	ma, err := s.CreateMessage(ctx, tenantA, &threads.Message{ID: "shared-id", ConversationID: ca.ID, AuthorID: "alice", Text: "same"})
	if err != nil {
		t.Fatalf("CreateMessage in A: %v", err)
	}
	mb, err := s.CreateMessage(ctx, tenantB, &threads.Message{ID: "shared-id", ConversationID: cb.ID, AuthorID: "alice", Text: "same"})
	if err != nil {
		t.Fatalf("CreateMessage in B with A's id: %v", err)
	}
	if mb.ConversationID != cb.ID || mb.Seq != 1 {
		t.Errorf("B's message: conversation %s seq %d, want %s seq 1", mb.ConversationID, mb.Seq, cb.ID)
	}
	// Different content under the same id in B is a conflict with B's
	// message only.
	_, err = s.CreateMessage(ctx, tenantB, &threads.Message{ID: "shared-id", ConversationID: cb.ID, AuthorID: "bob", Text: "other"})
	wantCode(t, "conflict in B", err, threads.ECONFLICT)

	diff(t, "A's messages", []*threads.Message{ma}, listMessages(t, s, tenantA, ca.ID, 0, 25))
	diff(t, "B's messages", []*threads.Message{mb}, listMessages(t, s, tenantB, cb.ID, 0, 25))
}

// testSameConversationID gives two tenants a conversation with the same id.
// Ids are server-made UUIDs, so this never happens by chance; here it
// proves that every query is scoped by tenant and not only by id (every
// table's key starts with tenant_id, DESIGN.md §3).
func testSameConversationID(t *testing.T, s threads.Store) {
	ctx := t.Context()
	id := newID()
	ca := &threads.Conversation{ID: id, GroupID: "group-a", Topic: "a"}
	cb := &threads.Conversation{ID: id, GroupID: "group-b", Topic: "b"}
	if err := s.CreateConversation(ctx, tenantA, ca); err != nil {
		t.Fatalf("CreateConversation in A: %v", err)
	}
	if err := s.CreateConversation(ctx, tenantB, cb); err != nil {
		t.Fatalf("CreateConversation in B with A's id: %v", err)
	}
	ma := createMessages(t, s, tenantA, id, 3)
	mb := createMessages(t, s, tenantB, id, 2)
	if mb[0].Seq != 1 {
		t.Errorf("B's first message has Seq %d, want 1", mb[0].Seq)
	}

	for _, tc := range []struct {
		tenant string
		conv   *threads.Conversation
		msgs   []*threads.Message
	}{{tenantA, ca, ma}, {tenantB, cb, mb}} {
		got, err := s.FindConversation(ctx, tc.tenant, id, "")
		if err != nil {
			t.Fatalf("FindConversation(%s): %v", tc.tenant, err)
		}
		diff(t, tc.tenant+" conversation", tc.conv, got)
		diff(t, tc.tenant+" messages", reversed(tc.msgs), listMessages(t, s, tc.tenant, id, 0, 25))
		diff(t, tc.tenant+" recent", reversed(tc.msgs), recentMessages(t, s, tc.tenant, []string{id}, 25))
	}
	_, err := s.FindConversation(ctx, tenantA, id, "group-b")
	wantCode(t, "FindConversation(A, B's group)", err, threads.ENOTFOUND)

	updated, err := s.UpdateConversation(ctx, tenantA, id, "a2")
	if err != nil {
		t.Fatalf("UpdateConversation(A): %v", err)
	}
	if updated.GroupID != "group-a" || updated.Topic != "a2" {
		t.Errorf("UpdateConversation(A) = %+v", updated)
	}
	if err := s.DeleteConversation(ctx, tenantA, id); err != nil {
		t.Fatalf("DeleteConversation(A): %v", err)
	}
	got, err := s.FindConversation(ctx, tenantB, id, "")
	if err != nil {
		t.Fatalf("FindConversation(B) after A deleted its own: %v", err)
	}
	diff(t, "B's conversation after A's delete", cb, got)
	diff(t, "B's messages after A's delete", reversed(mb), listMessages(t, s, tenantB, id, 0, 25))
}
