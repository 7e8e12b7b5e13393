package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wantNoSecret checks that an error's detail does not echo the key sent.
func wantNoSecret(secret string) func(*testing.T, *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		if strings.Contains(string(r.Raw), secret) {
			t.Errorf("error body echoes the key: %s", r.Raw)
		}
	}
}

// wantGroup checks the ids a ListConversations response carries.
func wantGroup(ids ...string) func(*testing.T, *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		got, _ := listIDs(t, r)
		if diff := cmp.Diff(ids, got); diff != "" {
			t.Errorf("conversations (-want +got):\n%s", diff)
		}
	}
}

func TestAuthFailures(t *testing.T) {
	e := newTestEnv(t)
	var b [32]byte
	rand.Read(b[:])
	unknown := "thr_" + base64.RawURLEncoding.EncodeToString(b[:])
	if len(unknown) != 4+43 {
		t.Fatalf("unknown key %q has %d chars", unknown, len(unknown))
	}
	body := map[string]any{"group_id": "g"}
	auth := func(v string) []string { return []string{"Authorization", v} }
	e.runScenarios(t, []apiScenario{
		{name: "no header", method: "ListConversations", body: body, wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "no header, invalid request", method: "CreateConversation", body: "{not json", wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "empty header", method: "ListConversations", body: body, headers: auth(""), wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "scheme only", method: "ListConversations", body: body, headers: auth("Bearer"), wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "wrong scheme", method: "ListConversations", body: body, headers: auth("Basic " + e.Key), wantStatus: 401, wantID: "UNAUTHORIZED", check: wantNoSecret(e.Key)},
		{name: "key without scheme", method: "ListConversations", body: body, headers: auth(e.Key), wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "malformed key", method: "ListConversations", key: "thr_short", body: body, wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "wrong prefix", method: "ListConversations", key: "sk_x" + e.Key[4:], body: body, wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "character outside base64url", method: "ListConversations", key: e.Key[:len(e.Key)-1] + "+", body: body, wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "key with a suffix", method: "ListConversations", key: e.Key + "A", body: body, wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "unknown well-formed key", method: "ListConversations", key: unknown, body: body, wantStatus: 401, wantID: "UNAUTHORIZED", check: wantNoSecret(unknown)},
		{name: "revoked key", method: "ListConversations", key: e.Revoked, body: body, wantStatus: 401, wantID: "UNAUTHORIZED", check: wantNoSecret(e.Revoked)},
		{name: "revoked key naming its tenant", method: "ListConversations", key: e.Revoked, body: body, headers: []string{"Micro-Namespace", "acme"}, wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "revoked key on seed prefix", path: "/threads/Threads/CreateMessage", key: e.Revoked, body: map[string]any{}, wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "valid key", method: "ListConversations", key: e.Key, body: body},
		{name: "scheme is case-insensitive", method: "ListConversations", body: body, headers: auth("bearer " + e.Key)},
	})
}

func TestMicroNamespace(t *testing.T) {
	e := newTestEnv(t)
	acme := e.createConversation(e.Key, "g", "acme's")["id"].(string)
	ns := func(tenant string) []string { return []string{"Micro-Namespace", tenant} }
	var ops string
	e.runScenarios(t, []apiScenario{
		{name: "tenant key naming itself", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g"}, headers: ns("acme"), check: wantGroup(acme)},
		{name: "tenant key naming another tenant", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g"}, headers: ns("globex"), wantStatus: 403, wantID: "FORBIDDEN"},
		{name: "other tenant key naming acme", method: "ReadConversation", key: e.OtherKey, body: map[string]any{"id": acme}, headers: ns("acme"), wantStatus: 403, wantID: "FORBIDDEN"},
		{name: "tenant key naming a nonexistent tenant", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g"}, headers: ns("nobody"), wantStatus: 403, wantID: "FORBIDDEN"},
		{name: "admin acting as acme lists", method: "ListConversations", key: e.AdminKey, body: map[string]any{"group_id": "g"}, headers: ns("acme"), check: wantGroup(acme)},
		{name: "admin acting as acme reads", method: "ReadConversation", key: e.AdminKey, body: map[string]any{"id": acme}, headers: ns("acme")},
		{name: "admin acting as acme posts", method: "CreateMessage", key: e.AdminKey, body: map[string]any{"conversation_id": acme, "author_id": "ops", "text": "hi"}, headers: ns("acme")},
		{name: "acme sees the admin's message", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": acme}, check: wantCount(1)},
		{name: "admin acting as globex", method: "ReadConversation", key: e.AdminKey, body: map[string]any{"id": acme}, headers: ns("globex"), wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "admin naming an invalid tenant", method: "ListConversations", key: e.AdminKey, body: map[string]any{"group_id": "g"}, headers: ns("a b"), wantStatus: 400, wantID: "BAD_REQUEST"},
		{name: "admin without header is ops", method: "ListConversations", key: e.AdminKey, body: map[string]any{"group_id": "g"}, check: wantGroup()},
		{name: "admin without header cannot read acme", method: "ReadConversation", key: e.AdminKey, body: map[string]any{"id": acme}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "admin creates in ops", method: "CreateConversation", key: e.AdminKey, body: map[string]any{"group_id": "g", "topic": "ops'"}, check: func(t *testing.T, r *response) {
			ops = decodeField[apiConversation](t, r, "conversation").ID
		}},
		{name: "admin naming ops sees it", method: "ListConversations", key: e.AdminKey, body: map[string]any{"group_id": "g"}, headers: ns("ops"), check: func(t *testing.T, r *response) { wantGroup(ops)(t, r) }},
		{name: "acme does not see ops", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g"}, check: wantGroup(acme)},
	})
}

func TestTenantIsolation(t *testing.T) {
	e := newTestEnv(t)
	conv := decodeField[apiConversation](t, e.post("CreateConversation", e.Key, map[string]any{"group_id": "shared", "topic": "secret"}).withOK(t), "conversation")
	msgs := postMessages(t, e, conv.ID, 3)
	id := conv.ID
	e.createConversation(e.OtherKey, "mine", "globex's own")
	before := e.post("ListMessages", e.Key, map[string]any{"conversation_id": id}).withOK(t).Raw
	notFound := func(name, method string, body map[string]any) apiScenario {
		return apiScenario{name: name, method: method, key: e.OtherKey, body: body, wantStatus: 404, wantID: "NOT_FOUND"}
	}
	e.runScenarios(t, []apiScenario{
		notFound("ReadConversation", "ReadConversation", map[string]any{"id": id}),
		notFound("ReadConversation in its group", "ReadConversation", map[string]any{"id": id, "group_id": "shared"}),
		notFound("UpdateConversation", "UpdateConversation", map[string]any{"id": id, "topic": "pwned"}),
		notFound("DeleteConversation", "DeleteConversation", map[string]any{"id": id}),
		notFound("CreateMessage", "CreateMessage", map[string]any{"conversation_id": id, "author_id": "eve", "text": "hi"}),
		notFound("CreateMessage reusing a message id", "CreateMessage", map[string]any{"id": msgs[0].ID, "conversation_id": id, "author_id": "ann", "text": msgs[0].Text}),
		notFound("ListMessages", "ListMessages", map[string]any{"conversation_id": id}),
		notFound("ListMessages with sent_before", "ListMessages", map[string]any{"conversation_id": id, "sent_before": msgs[2].SentAt}),
		{name: "ListConversations of acme's group", method: "ListConversations", key: e.OtherKey, body: map[string]any{"group_id": "shared"}, check: wantGroup()},
		{name: "RecentMessages of acme's ids", method: "RecentMessages", key: e.OtherKey, body: map[string]any{"conversation_ids": []string{id}}, check: wantMessages()},
		{name: "acme's conversation unchanged", method: "ReadConversation", key: e.Key, body: map[string]any{"id": id}, check: wantConversation(conv)},
		{name: "acme's group unchanged", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "shared"}, check: wantGroup(id)},
		{name: "acme's messages unchanged", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": id}, check: func(t *testing.T, r *response) {
			if diff := cmp.Diff(string(before), string(r.Raw)); diff != "" {
				t.Errorf("messages changed (-before +after):\n%s", diff)
			}
			wantMessages(msgs[2], msgs[1], msgs[0])(t, r)
		}},
		{name: "acme's recent unchanged", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{id}}, check: wantMessages(msgs[2], msgs[1], msgs[0])},
	})
}
