package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
)

// timestampRE is DESIGN §1.2's timestamp: RFC 3339, UTC, six digits.
var timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

var (
	conversationShape = map[string]any{"id": "string", "group_id": "string", "topic": "string", "created_at": "string"}
	messageShape      = map[string]any{"id": "string", "author_id": "string", "conversation_id": "string", "text": "string", "sent_at": "string", "seq": "number"}
)

// shapeOf replaces every leaf of a decoded JSON value with its type name,
// so a response can be compared with the shape the seed documents.
func shapeOf(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = shapeOf(x)
		}
		return out
	case []any:
		out := []any{}
		for _, x := range v {
			out = append(out, shapeOf(x))
		}
		return out
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

// wantShape checks a response's shape and every timestamp in it.
func wantShape(want any) func(*testing.T, *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		if diff := cmp.Diff(want, shapeOf(r.Body)); diff != "" {
			t.Errorf("shape (-want +got):\n%s\n%s", diff, r.Raw)
		}
		for _, ts := range regexp.MustCompile(`"(created_at|sent_at)":"([^"]*)"`).FindAllStringSubmatch(string(r.Raw), -1) {
			if !timestampRE.MatchString(ts[2]) {
				t.Errorf("%s %q does not match %s", ts[1], ts[2], timestampRE)
			}
		}
	}
}

// detailHas checks that an error's detail mentions s (a field name).
func detailHas(s string) func(*testing.T, *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		if d, _ := r.Body["detail"].(string); !strings.Contains(strings.ToLower(d), strings.ToLower(s)) {
			t.Errorf("detail %q does not name %q", d, s)
		}
	}
}

func TestM3OEveryMethodOnBothPrefixes(t *testing.T) {
	e := newTestEnv(t)
	one := func(s any) []any { return []any{s} }
	for _, prefix := range []string{"/v1/threads/", "/threads/Threads/"} {
		c := e.createConversation(e.Key, "g"+prefix, "topic")
		e.createMessage(e.Key, c["id"].(string), "ann", "hello")
		id := c["id"]
		t.Run(prefix, func(t *testing.T) {
			e.runScenarios(t, []apiScenario{
				{name: "CreateConversation", path: prefix + "CreateConversation", key: e.Key, body: map[string]any{"group_id": "g", "topic": "t"}, check: wantShape(map[string]any{"conversation": conversationShape})},
				{name: "ReadConversation", path: prefix + "ReadConversation", key: e.Key, body: map[string]any{"id": id}, check: wantShape(map[string]any{"conversation": conversationShape})},
				{name: "UpdateConversation", path: prefix + "UpdateConversation", key: e.Key, body: map[string]any{"id": id, "topic": "new"}, check: wantShape(map[string]any{"conversation": conversationShape})},
				{name: "ListConversations", path: prefix + "ListConversations", key: e.Key, body: map[string]any{"group_id": "g" + prefix}, check: wantShape(map[string]any{"conversations": one(conversationShape), "next_page_token": "string"})},
				{name: "CreateMessage", path: prefix + "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": id, "author_id": "bob", "text": "hi"}, check: wantShape(map[string]any{"message": messageShape})},
				{name: "ListMessages", path: prefix + "ListMessages", key: e.Key, body: map[string]any{"conversation_id": id, "limit": 1}, check: wantShape(map[string]any{"messages": one(messageShape)})},
				{name: "RecentMessages", path: prefix + "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []any{id}, "limit_per_conversation": 1}, check: wantShape(map[string]any{"messages": one(messageShape)})},
				{name: "DeleteConversation", path: prefix + "DeleteConversation", key: e.Key, body: map[string]any{"id": id}, check: wantShape(map[string]any{})},
				{name: "empty lists keep their fields", path: prefix + "ListConversations", key: e.Key, body: map[string]any{"group_id": "none"}, check: func(t *testing.T, r *response) {
					if diff := cmp.Diff(`{"conversations":[],"next_page_token":""}`, string(r.Raw)); diff != "" {
						t.Errorf("body (-want +got):\n%s", diff)
					}
				}},
				{name: "empty messages keep their field", path: prefix + "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{"nope"}}, check: func(t *testing.T, r *response) {
					if diff := cmp.Diff(`{"messages":[]}`, string(r.Raw)); diff != "" {
						t.Errorf("body (-want +got):\n%s", diff)
					}
				}},
			})
		})
	}
}

func TestM3OTimestampsRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	c := e.createConversation(e.Key, "g", "t")
	m := e.createMessage(e.Key, c["id"].(string), "ann", "hi")
	for _, ts := range []any{c["created_at"], m["sent_at"]} {
		if s, _ := ts.(string); !timestampRE.MatchString(s) {
			t.Fatalf("timestamp %q does not match %s", s, timestampRE)
		}
	}
	read := decodeField[apiConversation](t, e.post("ReadConversation", e.Key, map[string]any{"id": c["id"]}), "conversation")
	listed := decodeField[[]apiConversation](t, e.post("ListConversations", e.Key, map[string]any{"group_id": "g"}), "conversations")
	msgs := decodeField[[]apiMessage](t, e.post("ListMessages", e.Key, map[string]any{"conversation_id": c["id"]}), "messages")
	recent := decodeField[[]apiMessage](t, e.post("RecentMessages", e.Key, map[string]any{"conversation_ids": []any{c["id"]}}), "messages")
	if len(listed) != 1 || len(msgs) != 1 || len(recent) != 1 {
		t.Fatalf("got %d conversations, %d messages, %d recent; want 1 each", len(listed), len(msgs), len(recent))
	}
	got := []string{read.CreatedAt, listed[0].CreatedAt, msgs[0].SentAt, recent[0].SentAt}
	want := []string{c["created_at"].(string), c["created_at"].(string), m["sent_at"].(string), m["sent_at"].(string)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timestamps read back differ from those returned by create (-want +got):\n%s", diff)
	}
}

func TestM3ORequestForms(t *testing.T) {
	e := newTestEnv(t)
	c := e.createConversation(e.Key, "g1", "t")
	for i := range 12 {
		e.createMessage(e.Key, c["id"].(string), "ann", "m"+string(rune('a'+i)))
	}
	count := func(field string, n int) func(*testing.T, *response) {
		return func(t *testing.T, r *response) {
			if got := len(r.Body[field].([]any)); got != n {
				t.Errorf("%d %s, want %d: %s", got, field, n, r.Raw)
			}
		}
	}
	e.runScenarios(t, []apiScenario{
		{name: "lowerCamelCase names", method: "CreateConversation", key: e.Key, body: `{"groupId":"g2","topic":"camel"}`, check: func(t *testing.T, r *response) {
			if g := r.Body["conversation"].(map[string]any)["group_id"]; g != "g2" {
				t.Errorf("group_id %v, want g2", g)
			}
		}},
		{name: "lowerCamelCase wrapper", method: "ListMessages", key: e.Key, body: `{"conversationId":"` + c["id"].(string) + `","limit":3}`, check: count("messages", 3)},
		{name: "plain wrapper group_id matches", method: "ReadConversation", key: e.Key, body: map[string]any{"id": c["id"], "group_id": "g1"}},
		{name: "plain wrapper group_id mismatches", method: "ReadConversation", key: e.Key, body: map[string]any{"id": c["id"], "group_id": "g2"}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "plain limit", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c["id"], "limit": 10}, check: count("messages", 10)},
		{name: "quoted limit", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c["id"], "limit": "10"}, check: count("messages", 10)},
		{name: "quoted limit_per_conversation", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []any{c["id"]}, "limit_per_conversation": "4"}, check: count("messages", 4)},
		{name: "null fields are unset", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": c["id"], "limit": nil, "sent_before": nil}, check: count("messages", 12)},
		{name: "null group_id reads any group", method: "ReadConversation", key: e.Key, body: map[string]any{"id": c["id"], "group_id": nil}},
		{name: "unknown fields ignored", method: "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": c["id"], "author_id": "a", "text": "x", "mood": "happy", "extra": map[string]any{"a": []int{1}}}},
		{name: "empty body is an empty request", method: "CreateConversation", key: e.Key, body: "", wantStatus: 400, wantID: "MISSING_GROUP_ID"},
		{name: "whitespace body is an empty request", method: "ListMessages", key: e.Key, body: " \n", wantStatus: 400, wantID: "MISSING_CONVERSATION_ID"},
		{name: "curl form content type", path: "/threads/Threads/CreateConversation", key: e.Key, body: `{"group_id":"g3","topic":"curl"}`, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, check: wantShape(map[string]any{"conversation": conversationShape})},
		{name: "body of exactly MaxBodyBytes", method: "CreateConversation", key: e.Key, body: `{"group_id":"g4","topic":"big"}` + strings.Repeat(" ", threads.MaxBodyBytes-len(`{"group_id":"g4","topic":"big"}`))},
	})
}

func TestM3OErrors(t *testing.T) {
	e := newTestEnv(t)
	id := e.createConversation(e.Key, "g", "t")["id"].(string)
	long := func(n int) string { return strings.Repeat("x", n) }
	ids := make([]string, threads.MaxRecentConversations+1)
	for i := range ids {
		ids[i] = id
	}
	e.runScenarios(t, []apiScenario{
		{name: "MISSING_ID read", method: "ReadConversation", key: e.Key, body: map[string]any{}, wantStatus: 400, wantID: "MISSING_ID"},
		{name: "MISSING_ID update", method: "UpdateConversation", key: e.Key, body: map[string]any{"topic": "t"}, wantStatus: 400, wantID: "MISSING_ID"},
		{name: "MISSING_ID delete", method: "DeleteConversation", key: e.Key, body: map[string]any{}, wantStatus: 400, wantID: "MISSING_ID"},
		{name: "MISSING_GROUP_ID create", method: "CreateConversation", key: e.Key, body: map[string]any{"topic": "t"}, wantStatus: 400, wantID: "MISSING_GROUP_ID"},
		{name: "MISSING_GROUP_ID list", method: "ListConversations", key: e.Key, body: map[string]any{}, wantStatus: 400, wantID: "MISSING_GROUP_ID"},
		{name: "MISSING_TOPIC create", method: "CreateConversation", key: e.Key, body: map[string]any{"group_id": "g"}, wantStatus: 400, wantID: "MISSING_TOPIC"},
		{name: "MISSING_TOPIC update", method: "UpdateConversation", key: e.Key, body: map[string]any{"id": id}, wantStatus: 400, wantID: "MISSING_TOPIC"},
		{name: "MISSING_AUTHOR_ID", method: "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": id, "text": "x"}, wantStatus: 400, wantID: "MISSING_AUTHOR_ID"},
		{name: "MISSING_TEXT", method: "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": id, "author_id": "a"}, wantStatus: 400, wantID: "MISSING_TEXT"},
		{name: "MISSING_CONVERSATION_ID create", method: "CreateMessage", key: e.Key, body: map[string]any{"author_id": "a", "text": "x"}, wantStatus: 400, wantID: "MISSING_CONVERSATION_ID"},
		{name: "MISSING_CONVERSATION_ID list", method: "ListMessages", key: e.Key, body: map[string]any{}, wantStatus: 400, wantID: "MISSING_CONVERSATION_ID"},
		{name: "MISSING_CONVERSATION_IDS none", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{}}, wantStatus: 400, wantID: "MISSING_CONVERSATION_IDS"},
		{name: "MISSING_CONVERSATION_IDS empty id", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{id, ""}}, wantStatus: 400, wantID: "MISSING_CONVERSATION_IDS"},
		{name: "NOT_FOUND read", method: "ReadConversation", key: e.Key, body: map[string]any{"id": "nope"}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "NOT_FOUND update", method: "UpdateConversation", key: e.Key, body: map[string]any{"id": "nope", "topic": "t"}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "NOT_FOUND delete", method: "DeleteConversation", key: e.Key, body: map[string]any{"id": "nope"}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "NOT_FOUND create message", method: "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": "nope", "author_id": "a", "text": "x"}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "NOT_FOUND list messages", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": "nope"}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "UNAUTHORIZED", method: "ListConversations", body: map[string]any{"group_id": "g"}, wantStatus: 401, wantID: "UNAUTHORIZED"},
		{name: "FORBIDDEN", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g"}, headers: []string{"Micro-Namespace", "globex"}, wantStatus: 403, wantID: "FORBIDDEN"},
		{name: "BAD_REQUEST malformed JSON", method: "CreateConversation", key: e.Key, body: `{"group_id":`, wantStatus: 400, wantID: "BAD_REQUEST"},
		{name: "BAD_REQUEST not an object", method: "CreateConversation", key: e.Key, body: `["g","t"]`, wantStatus: 400, wantID: "BAD_REQUEST"},
		{name: "BAD_REQUEST string field as number", method: "CreateConversation", key: e.Key, body: `{"group_id":1,"topic":"t"}`, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("group")},
		{name: "BAD_REQUEST limit as word", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": id, "limit": "ten"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("limit")},
		{name: "BAD_REQUEST ids as string", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": id}, wantStatus: 400, wantID: "BAD_REQUEST"},
		{name: "BAD_REQUEST sent_before not a time", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": id, "sent_before": "yesterday"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("sent")},
		{name: "BAD_REQUEST negative limit", method: "ListMessages", key: e.Key, body: map[string]any{"conversation_id": id, "limit": -1}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("limit")},
		{name: "BAD_REQUEST negative conversations limit", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g", "limit": -5}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("limit")},
		{name: "BAD_REQUEST negative limit_per_conversation", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": []string{id}, "limit_per_conversation": -1}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("limit_per_conversation")},
		{name: "BAD_REQUEST text too long", method: "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": id, "author_id": "a", "text": long(threads.MaxTextBytes + 1)}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("text")},
		{name: "text at max length", method: "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": id, "author_id": "a", "text": long(threads.MaxTextBytes)}},
		{name: "BAD_REQUEST topic too long", method: "CreateConversation", key: e.Key, body: map[string]any{"group_id": "g", "topic": long(threads.MaxTopicBytes + 1)}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("topic")},
		{name: "BAD_REQUEST updated topic too long", method: "UpdateConversation", key: e.Key, body: map[string]any{"id": id, "topic": long(threads.MaxTopicBytes + 1)}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("topic")},
		{name: "BAD_REQUEST group_id too long", method: "CreateConversation", key: e.Key, body: map[string]any{"group_id": long(threads.MaxIDBytes + 1), "topic": "t"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("group_id")},
		{name: "BAD_REQUEST message id too long", method: "CreateMessage", key: e.Key, body: map[string]any{"id": long(threads.MaxIDBytes + 1), "conversation_id": id, "author_id": "a", "text": "x"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("id")},
		{name: "BAD_REQUEST invalid page_token", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g", "page_token": "not a token!"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("page_token")},
		{name: "BAD_REQUEST forged page_token", method: "ListConversations", key: e.Key, body: map[string]any{"group_id": "g", "page_token": "eHl6"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("page_token")},
		{name: "BAD_REQUEST 101 conversation ids", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": ids}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("conversation_ids")},
		{name: "100 conversation ids", method: "RecentMessages", key: e.Key, body: map[string]any{"conversation_ids": ids[1:]}},
		{name: "BAD_REQUEST control character in group_id", method: "CreateConversation", key: e.Key, body: map[string]any{"group_id": "g\x01", "topic": "t"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("group_id")},
		{name: "BAD_REQUEST control character in author_id", method: "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": id, "author_id": "a\nb", "text": "x"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("author_id")},
		{name: "BAD_REQUEST control character in conversation id", method: "ReadConversation", key: e.Key, body: map[string]any{"id": id + "\x7f"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("id")},
		{name: "BAD_REQUEST NUL in text", method: "CreateMessage", key: e.Key, body: map[string]any{"conversation_id": id, "author_id": "a", "text": "a\x00b"}, wantStatus: 400, wantID: "BAD_REQUEST", check: detailHas("text")},
		{name: "client id first use", method: "CreateMessage", key: e.Key, body: map[string]any{"id": "m-1", "conversation_id": id, "author_id": "a", "text": "one"}},
		{name: "CONFLICT same id, other text", method: "CreateMessage", key: e.Key, body: map[string]any{"id": "m-1", "conversation_id": id, "author_id": "a", "text": "two"}, wantStatus: 409, wantID: "CONFLICT"},
		{name: "TOO_LARGE", method: "CreateConversation", key: e.Key, body: `{"group_id":"g","topic":"t"}` + strings.Repeat(" ", threads.MaxBodyBytes), wantStatus: 413, wantID: "TOO_LARGE"},
		{name: "unknown method", method: "DropTables", key: e.Key, body: map[string]any{}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "unknown method on seed prefix", path: "/threads/Threads/Nope", key: e.Key, body: map[string]any{}, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "GET on a method route", verb: "GET", method: "ListConversations", key: e.Key, wantStatus: 400, wantID: "BAD_REQUEST", check: func(t *testing.T, r *response) {
			if a := r.Header.Get("Allow"); a != http.MethodPost {
				t.Errorf("Allow %q, want POST", a)
			}
		}},
		{name: "unknown path", verb: "GET", path: "/v2/nothing/here", key: e.Key, wantStatus: 404, wantID: "NOT_FOUND"},
		{name: "unknown path POST", path: "/v1/threads/CreateConversation/extra", key: e.Key, body: map[string]any{}, wantStatus: 404, wantID: "NOT_FOUND"},
	})
}

func TestM3OOperationalEndpoints(t *testing.T) {
	e := newTestEnv(t)
	e.createConversation(e.Key, "g", "t")
	e.post("CreateConversation", e.Key, map[string]any{"topic": "t"}).wantError(t, "MISSING_GROUP_ID", 400)
	e.post("NoSuchMethod", e.Key, map[string]any{}).wantError(t, "NOT_FOUND", 404)
	e.runScenarios(t, []apiScenario{
		{name: "healthz", verb: "GET", path: "/healthz"},
		{name: "readyz", verb: "GET", path: "/readyz"},
		{name: "metrics", verb: "GET", path: "/metrics", check: func(t *testing.T, r *response) {
			body := string(r.Raw)
			for _, want := range []string{
				`threads_requests_total{code="OK",method="CreateConversation",protocol="m3o"} 1`,
				`threads_requests_total{code="BAD_REQUEST",method="CreateConversation",protocol="m3o"} 1`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			if strings.Contains(body, "NoSuchMethod") {
				t.Error("/metrics has a label for an unknown method: labels must stay bounded")
			}
		}},
	})
}
