package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/threads-server/threads"
)

var conversationTests = []leaf{
	{"CreateSetsCreatedAt", testCreateConversation},
	{"CreateDuplicateID", testCreateDuplicateConversation},
	{"Find", testFindConversation},
	{"Update", testUpdateConversation},
	{"Delete", testDeleteConversation},
	{"Unknown", testUnknownConversation},
}

func testCreateConversation(t *testing.T, s threads.Store) {
	ctx := t.Context()
	before := time.Now()
	// A CreatedAt sent in is not trusted: the store sets its own.
	c := &threads.Conversation{ID: newID(), GroupID: "group-1", Topic: "hello", CreatedAt: time.Date(2001, 2, 3, 4, 5, 6, 7, time.Local)}
	if err := s.CreateConversation(ctx, tenantA, c); err != nil {
		t.Fatalf("CreateConversation: %v", err)
	}
	checkTime(t, "CreatedAt", c.CreatedAt, before, time.Now())

	got, err := s.FindConversation(ctx, tenantA, c.ID, "")
	if err != nil {
		t.Fatalf("FindConversation: %v", err)
	}
	diff(t, "FindConversation after create", c, got)
	if !got.CreatedAt.Equal(c.CreatedAt) || threads.FormatTime(got.CreatedAt) != threads.FormatTime(c.CreatedAt) {
		t.Errorf("stored CreatedAt %s, returned by create %s", threads.FormatTime(got.CreatedAt), threads.FormatTime(c.CreatedAt))
	}
}

func testCreateDuplicateConversation(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c := createConversation(t, s, tenantA, "group-1", "first")
	dup := &threads.Conversation{ID: c.ID, GroupID: "group-2", Topic: "second"}
	if err := s.CreateConversation(ctx, tenantA, dup); threads.ErrorCode(err) != threads.ECONFLICT {
		t.Fatalf("CreateConversation with an existing id: %v, want %s", err, threads.ECONFLICT)
	}
	got, err := s.FindConversation(ctx, tenantA, c.ID, "")
	if err != nil {
		t.Fatalf("FindConversation: %v", err)
	}
	diff(t, "conversation after a duplicate create", c, got)
}

func testFindConversation(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c := createConversation(t, s, tenantA, "group-1", "hello")
	other := createConversation(t, s, tenantA, "group-2", "other")

	for _, group := range []string{"", "group-1"} {
		got, err := s.FindConversation(ctx, tenantA, c.ID, group)
		if err != nil {
			t.Fatalf("FindConversation(group %q): %v", group, err)
		}
		diff(t, "FindConversation(group "+group+")", c, got)
	}
	got, err := s.FindConversation(ctx, tenantA, other.ID, "group-2")
	if err != nil {
		t.Fatalf("FindConversation(other): %v", err)
	}
	diff(t, "FindConversation(other)", other, got)

	_, err = s.FindConversation(ctx, tenantA, c.ID, "group-2")
	wantCode(t, "FindConversation in another group", err, threads.ENOTFOUND)
	_, err = s.FindConversation(ctx, tenantA, c.ID, "no-such-group")
	wantCode(t, "FindConversation in an unknown group", err, threads.ENOTFOUND)
}

func testUpdateConversation(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c := createConversation(t, s, tenantA, "group-1", "old topic")
	other := createConversation(t, s, tenantA, "group-1", "untouched")

	got, err := s.UpdateConversation(ctx, tenantA, c.ID, "new topic")
	if err != nil {
		t.Fatalf("UpdateConversation: %v", err)
	}
	want := *c
	want.Topic = "new topic"
	diff(t, "UpdateConversation result", &want, got)

	found, err := s.FindConversation(ctx, tenantA, c.ID, "group-1")
	if err != nil {
		t.Fatalf("FindConversation after update: %v", err)
	}
	diff(t, "FindConversation after update", &want, found)

	found, err = s.FindConversation(ctx, tenantA, other.ID, "")
	if err != nil {
		t.Fatalf("FindConversation(other): %v", err)
	}
	diff(t, "other conversation after update", other, found)

	// A listing shows the new topic too (SQLite reads it from an index).
	page, _ := listConversations(t, s, tenantA, threads.ConversationFilter{GroupID: "group-1", Limit: 10})
	diff(t, "ListConversations after update", []*threads.Conversation{other, &want}, page)
}

func testDeleteConversation(t *testing.T, s threads.Store) {
	ctx := t.Context()
	c := createConversation(t, s, tenantA, "group-1", "doomed")
	keep := createConversation(t, s, tenantA, "group-1", "kept")

	if err := s.DeleteConversation(ctx, tenantA, c.ID); err != nil {
		t.Fatalf("DeleteConversation: %v", err)
	}
	_, err := s.FindConversation(ctx, tenantA, c.ID, "")
	wantCode(t, "FindConversation after delete", err, threads.ENOTFOUND)
	_, err = s.FindConversation(ctx, tenantA, c.ID, "group-1")
	wantCode(t, "FindConversation with group after delete", err, threads.ENOTFOUND)
	wantCode(t, "second DeleteConversation", s.DeleteConversation(ctx, tenantA, c.ID), threads.ENOTFOUND)
	_, err = s.UpdateConversation(ctx, tenantA, c.ID, "revived?")
	wantCode(t, "UpdateConversation after delete", err, threads.ENOTFOUND)

	found, err := s.FindConversation(ctx, tenantA, keep.ID, "group-1")
	if err != nil {
		t.Fatalf("FindConversation(kept): %v", err)
	}
	diff(t, "kept conversation", keep, found)
	list, next, err := s.ListConversations(ctx, tenantA, threads.ConversationFilter{GroupID: "group-1", Limit: 10})
	if err != nil {
		t.Fatalf("ListConversations: %v", err)
	}
	diff(t, "ListConversations after delete", []*threads.Conversation{keep}, list)
	if !next.IsZero() {
		t.Errorf("next cursor = %+v, want zero", next)
	}
}

func testUnknownConversation(t *testing.T, s threads.Store) {
	ctx := t.Context()
	createConversation(t, s, tenantA, "group-1", "exists")
	id := newID()
	_, err := s.FindConversation(ctx, tenantA, id, "")
	wantCode(t, "FindConversation(unknown)", err, threads.ENOTFOUND)
	_, err = s.FindConversation(ctx, tenantA, id, "group-1")
	wantCode(t, "FindConversation(unknown, group)", err, threads.ENOTFOUND)
	_, err = s.UpdateConversation(ctx, tenantA, id, "topic")
	wantCode(t, "UpdateConversation(unknown)", err, threads.ENOTFOUND)
	wantCode(t, "DeleteConversation(unknown)", s.DeleteConversation(ctx, tenantA, id), threads.ENOTFOUND)
}

var deleteTests = []leaf{
	{"ManyMessages", testDeleteManyMessages},
}

// testDeleteManyMessages deletes a conversation holding more messages than
// one purge batch of any engine (the SQLite store removes 1000 at a time).
// Once DeleteConversation returns, none of them is visible and every one
// of their ids is free again.
func testDeleteManyMessages(t *testing.T, s threads.Store) {
	const n = 2500
	ctx := t.Context()
	doomed := createConversation(t, s, tenantA, "group-1", "doomed")
	keep := createConversation(t, s, tenantA, "group-1", "kept")
	kept := createMessages(t, s, tenantA, keep.ID, 3)

	inputs := make([]threads.Message, n)
	for i := range inputs {
		inputs[i] = threads.Message{ID: fmt.Sprintf("purged-%04d", i), ConversationID: doomed.ID, AuthorID: "alice", Text: fmt.Sprintf("message %d", i)}
		in := inputs[i]
		if _, err := s.CreateMessage(ctx, tenantA, &in); err != nil {
			t.Fatalf("CreateMessage %d: %v", i, err)
		}
	}
	if got := len(pageMessages(t, s, tenantA, doomed.ID, 200)); got != n {
		t.Fatalf("before delete: %d messages, want %d", got, n)
	}

	if err := s.DeleteConversation(ctx, tenantA, doomed.ID); err != nil {
		t.Fatalf("DeleteConversation: %v", err)
	}
	_, err := s.ListMessages(ctx, tenantA, threads.MessageFilter{ConversationID: doomed.ID, Limit: 25})
	wantCode(t, "ListMessages after delete", err, threads.ENOTFOUND)
	diff(t, "RecentMessages after delete", newest(kept, 200),
		recentMessages(t, s, tenantA, []string{doomed.ID, keep.ID}, 200))
	wantCode(t, "DeleteConversation again", s.DeleteConversation(ctx, tenantA, doomed.ID), threads.ENOTFOUND)

	// A retry of a purged message finds no conversation, like a new one.
	retry := inputs[n-1]
	_, err = s.CreateMessage(ctx, tenantA, &retry)
	wantCode(t, "retry into the deleted conversation", err, threads.ENOTFOUND)

	// The ids are free: reusing them elsewhere is neither a conflict nor a
	// retry that returns the purged message. Sample every batch boundary.
	seq := int64(len(kept))
	for i := 0; i < n; i += 37 {
		for _, j := range []int{i, min(i+36, n-1)} {
			in := inputs[j]
			in.ConversationID = keep.ID
			m, err := s.CreateMessage(ctx, tenantA, &in)
			if err != nil {
				t.Fatalf("reusing id %s after delete: %v", in.ID, err)
			}
			seq++
			if m.ConversationID != keep.ID || m.Seq != seq {
				t.Fatalf("reusing id %s: stored in %s with seq %d, want %s and %d", in.ID, m.ConversationID, m.Seq, keep.ID, seq)
			}
		}
	}
	if got := len(pageMessages(t, s, tenantA, keep.ID, 200)); int64(got) != seq {
		t.Errorf("kept conversation has %d messages, want %d", got, seq)
	}
}
