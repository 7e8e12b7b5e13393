package storetest

import (
	"fmt"
	"testing"

	"github.com/threads-server/threads"
)

var recentTests = []leaf{
	{"RequestOrderAndLimit", testRecentMessages},
}

func recentMessages(t *testing.T, s threads.Store, tenant string, ids []string, per int) []*threads.Message {
	t.Helper()
	ms, err := s.RecentMessages(t.Context(), tenant, threads.RecentFilter{ConversationIDs: ids, PerConversation: per})
	if err != nil {
		t.Fatalf("RecentMessages(%s, %d ids, %d): %v", tenant, len(ids), per, err)
	}
	return ms
}

// newest returns the newest n of ms (oldest first), newest first.
func newest(ms []*threads.Message, n int) []*threads.Message {
	return reversed(ms[max(0, len(ms)-n):])
}

func concat(parts ...[]*threads.Message) []*threads.Message {
	var out []*threads.Message
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func testRecentMessages(t *testing.T, s threads.Store) {
	ctx := t.Context()
	a := createConversation(t, s, tenantA, "group-1", "a")
	b := createConversation(t, s, tenantA, "group-1", "b")
	c := createConversation(t, s, tenantA, "group-2", "c")
	empty := createConversation(t, s, tenantA, "group-1", "empty")
	deleted := createConversation(t, s, tenantA, "group-1", "deleted")
	foreign := createConversation(t, s, tenantB, "group-1", "tenant b")

	// Interleave the writes so that the store cannot rely on insertion
	// order to group its answer.
	var ma, mb, mc []*threads.Message
	createMessages(t, s, tenantA, deleted.ID, 3)
	for i := range 8 {
		if i < 5 {
			ma = append(ma, createMessages(t, s, tenantA, a.ID, 1)...)
		}
		if i < 2 {
			mb = append(mb, createMessages(t, s, tenantA, b.ID, 1)...)
		}
		mc = append(mc, createMessages(t, s, tenantA, c.ID, 1)...)
	}
	mf := createMessages(t, s, tenantB, foreign.ID, 4)
	if err := s.DeleteConversation(ctx, tenantA, deleted.ID); err != nil {
		t.Fatalf("DeleteConversation: %v", err)
	}

	ids := []string{c.ID, newID(), a.ID, foreign.ID, empty.ID, deleted.ID, b.ID}
	for _, per := range []int{1, 3, 5, 8, 200} {
		want := concat(newest(mc, per), newest(ma, per), newest(mb, per))
		diff(t, fmt.Sprintf("RecentMessages(per %d)", per), want, recentMessages(t, s, tenantA, ids, per))
	}

	// Request order, not creation order, decides the order of the parts.
	diff(t, "RecentMessages(b, a)", concat(newest(mb, 2), newest(ma, 2)),
		recentMessages(t, s, tenantA, []string{b.ID, a.ID}, 2))
	diff(t, "RecentMessages(a)", newest(ma, 4), recentMessages(t, s, tenantA, []string{a.ID}, 4))

	// Tenant B sees its own conversation and nothing of tenant A's.
	diff(t, "RecentMessages as tenant B", newest(mf, 3),
		recentMessages(t, s, tenantB, []string{a.ID, foreign.ID, c.ID}, 3))

	for name, ids := range map[string][]string{
		"unknown ids":          {newID(), newID()},
		"another tenant's ids": {foreign.ID},
		"a deleted id":         {deleted.ID},
		"an empty id":          {empty.ID},
	} {
		if got := recentMessages(t, s, tenantA, ids, 25); len(got) != 0 {
			t.Errorf("RecentMessages(%s): %d messages, want none", name, len(got))
		}
	}
}
