package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The isolation matrix (issue 6, DESIGN §1.4): every method and both
// event streams, called by every identity that is not tenant A, against
// tenant A's data. Tenant A is acme (e.Key), tenant B is globex
// (e.OtherKey); the revoked key is one of acme's own; the admin key
// belongs to tenant ops.
//
//	identity                          answer
//	B with its own key                NOT_FOUND for A's conversation, empty lists, no events of A's
//	no key                            UNAUTHORIZED
//	a revoked key (even A's own)      UNAUTHORIZED
//	admin key, micro-namespace: A     acts as A: sees and changes A's data
//	B's key, micro-namespace: A       FORBIDDEN
//
// After every identity but the admin, A's data is exactly what it was: its
// event log (every change writes an event in its own transaction, so an
// unchanged log means nothing was changed), its conversation and its
// messages. Refused calls leave every tenant's log unchanged.

// identity is one column of the matrix.
type identity struct {
	name string
	// key and namespace to send; key is resolved from the env.
	key func(e *testEnv) string
	ns  string
	// status and id of the refusal; 0 when the call is served.
	status int
	id     string
	// asA: the call acts as tenant A (the admin); otherwise it must not
	// change anything of A's.
	asA bool
}

var identities = []identity{
	{name: "B own key", key: func(e *testEnv) string { return e.OtherKey }},
	{name: "no key", key: func(e *testEnv) string { return "" }, status: http.StatusUnauthorized, id: threads.EUNAUTHORIZED},
	{name: "revoked key", key: func(e *testEnv) string { return e.Revoked }, status: http.StatusUnauthorized, id: threads.EUNAUTHORIZED},
	{name: "B key naming A", key: func(e *testEnv) string { return e.OtherKey }, ns: "acme", status: http.StatusForbidden, id: threads.EFORBIDDEN},
	// Last: it changes A's data on purpose.
	{name: "admin naming A", key: func(e *testEnv) string { return e.AdminKey }, ns: "acme", asA: true},
}

// worldA is tenant A's data each row starts from.
type worldA struct {
	Conv     apiConversation
	Messages []apiMessage // oldest first
}

const groupA = "ga"

func seedA(t *testing.T, e *testEnv) worldA {
	t.Helper()
	w := worldA{Conv: decodeField[apiConversation](t, e.post("CreateConversation", e.Key,
		map[string]any{"group_id": groupA, "topic": "A's secret"}).withOK(t), "conversation")}
	for i := 1; i <= 2; i++ {
		r := e.post("CreateMessage", e.Key, map[string]any{"id": fmt.Sprintf("a-%d", i),
			"conversation_id": w.Conv.ID, "author_id": "alice", "text": fmt.Sprintf("A's message %d", i)}).withOK(t)
		w.Messages = append(w.Messages, decodeField[apiMessage](t, r, "message"))
	}
	return w
}

// tenantLog is a tenant's whole event log, one line per event, read from
// the store: it changes exactly when anything of the tenant changes.
func tenantLog(t *testing.T, st threads.Store, tenant string) []string {
	t.Helper()
	evs, _, err := st.ReadEvents(context.Background(), tenant, threads.EventCursor{}, threads.EventFilter{}, 1_000_000)
	if err != nil {
		t.Fatalf("ReadEvents(%s): %v", tenant, err)
	}
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		data, _ := ev.MarshalData()
		out = append(out, ev.Cursor.Token()+" "+ev.Type+" "+string(data))
	}
	return out
}

// snapshot is what a call must not change: each tenant's event log, and
// A's conversation and messages as the store returns them.
type snapshot struct {
	Logs     map[string][]string
	Conv     *threads.Conversation
	Messages []*threads.Message
}

func takeSnapshot(t *testing.T, e *testEnv, convA string, tenants ...string) snapshot {
	t.Helper()
	ctx := context.Background()
	s := snapshot{Logs: map[string][]string{}}
	for _, tn := range tenants {
		s.Logs[tn] = tenantLog(t, e.Store, tn)
	}
	if convA != "" {
		c, err := e.Store.FindConversation(ctx, "acme", convA, "")
		if err != nil && threads.ErrorCode(err) != threads.ENOTFOUND {
			t.Fatal(err)
		}
		s.Conv = c
		if c != nil {
			f, err := threads.NewMessageFilter(convA, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.Limit = threads.MaxMessageLimit
			if s.Messages, err = e.Store.ListMessages(ctx, "acme", f); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

func (s snapshot) diff(t *testing.T, after snapshot, what string) {
	t.Helper()
	if d := cmp.Diff(s, after); d != "" {
		t.Errorf("%s changed stored data (-before +after):\n%s", what, d)
	}
}

// matrixRow is one method: its request against A's data, and the checks
// of each answer that is not a refusal.
type matrixRow struct {
	method string
	body   func(w worldA) map[string]any
	// asB checks B's answer (its own tenant); asA checks the admin's
	// answer and that it acted on A's data. raw is the m3o JSON answer.
	asB, asA func(t *testing.T, e *testEnv, w worldA, raw []byte)
}

func matrixRows() []matrixRow {
	noBody := func(want string) func(*testing.T, *testEnv, worldA, []byte) {
		return func(t *testing.T, _ *testEnv, _ worldA, raw []byte) {
			t.Helper()
			if string(raw) != want {
				t.Errorf("answer %s, want %s", raw, want)
			}
		}
	}
	notFound := func(t *testing.T, _ *testEnv, _ worldA, raw []byte) {
		t.Helper()
		t.Errorf("B was served %s, want NOT_FOUND", raw)
	}
	messagesOf := func(raw []byte) []apiMessage {
		var r struct{ Messages []apiMessage }
		json.Unmarshal(raw, &r)
		return r.Messages
	}
	newestFirst := func(w worldA) []apiMessage { return []apiMessage{w.Messages[1], w.Messages[0]} }
	return []matrixRow{
		{method: "CreateConversation",
			body: func(worldA) map[string]any { return map[string]any{"group_id": groupA, "topic": "made by the caller"} },
			asB: func(t *testing.T, e *testEnv, w worldA, raw []byte) {
				// Served in B's own tenant: B sees it, A does not.
				var r struct{ Conversation apiConversation }
				json.Unmarshal(raw, &r)
				bIDs, _ := listIDs(t, e.post("ListConversations", e.OtherKey, map[string]any{"group_id": groupA}))
				aIDs, _ := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": groupA}))
				if !cmp.Equal(bIDs, []string{r.Conversation.ID}) || !cmp.Equal(aIDs, []string{w.Conv.ID}) {
					t.Errorf("B's conversation: B lists %v, A lists %v; want B [%s], A [%s]", bIDs, aIDs, r.Conversation.ID, w.Conv.ID)
				}
			},
			asA: func(t *testing.T, e *testEnv, w worldA, raw []byte) {
				var r struct{ Conversation apiConversation }
				json.Unmarshal(raw, &r)
				aIDs, _ := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": groupA}))
				if !cmp.Equal(aIDs, []string{r.Conversation.ID, w.Conv.ID}) {
					t.Errorf("A lists %v after the admin created %s as A", aIDs, r.Conversation.ID)
				}
			}},
		{method: "ReadConversation",
			body: func(w worldA) map[string]any { return map[string]any{"id": w.Conv.ID} },
			asB:  notFound,
			asA: func(t *testing.T, _ *testEnv, w worldA, raw []byte) {
				var r struct{ Conversation apiConversation }
				json.Unmarshal(raw, &r)
				if r.Conversation != w.Conv {
					t.Errorf("admin read %+v, want A's %+v", r.Conversation, w.Conv)
				}
			}},
		{method: "UpdateConversation",
			body: func(w worldA) map[string]any {
				return map[string]any{"id": w.Conv.ID, "topic": "changed by the caller"}
			},
			asB: notFound,
			asA: func(t *testing.T, e *testEnv, w worldA, raw []byte) {
				want := w.Conv
				want.Topic = "changed by the caller"
				wantConversation(want)(t, e.post("ReadConversation", e.Key, map[string]any{"id": w.Conv.ID}).withOK(t))
			}},
		{method: "DeleteConversation",
			body: func(w worldA) map[string]any { return map[string]any{"id": w.Conv.ID} },
			asB:  notFound,
			asA: func(t *testing.T, e *testEnv, w worldA, raw []byte) {
				noBody("{}")(t, e, w, raw)
				e.post("ReadConversation", e.Key, map[string]any{"id": w.Conv.ID}).wantError(t, threads.ENOTFOUND, http.StatusNotFound)
			}},
		{method: "ListConversations",
			body: func(worldA) map[string]any { return map[string]any{"group_id": groupA} },
			asB:  noBody(`{"conversations":[],"next_page_token":""}`),
			asA: func(t *testing.T, e *testEnv, w worldA, raw []byte) {
				if ids, _ := listIDs(t, &response{&apitest.Response{Status: 200, Raw: raw}}); !cmp.Equal(ids, []string{w.Conv.ID}) {
					t.Errorf("admin lists %v, want A's [%s]", ids, w.Conv.ID)
				}
			}},
		{method: "CreateMessage",
			body: func(w worldA) map[string]any {
				return map[string]any{"conversation_id": w.Conv.ID, "author_id": "mallory", "text": "posted by the caller"}
			},
			asB: notFound,
			asA: func(t *testing.T, e *testEnv, w worldA, raw []byte) {
				var r struct{ Message apiMessage }
				json.Unmarshal(raw, &r)
				got := messagesOf(e.post("ListMessages", e.Key, map[string]any{"conversation_id": w.Conv.ID}).withOK(t).Raw)
				if want := append([]apiMessage{r.Message}, newestFirst(w)...); !cmp.Equal(got, want) || r.Message.Seq != 3 {
					t.Errorf("A's messages after the admin posted as A:\n got %+v\nwant %+v", got, want)
				}
			}},
		{method: "ListMessages",
			body: func(w worldA) map[string]any { return map[string]any{"conversation_id": w.Conv.ID} },
			asB:  notFound,
			asA: func(t *testing.T, _ *testEnv, w worldA, raw []byte) {
				if got := messagesOf(raw); !cmp.Equal(got, newestFirst(w)) {
					t.Errorf("admin listed %+v, want A's %+v", got, newestFirst(w))
				}
			}},
		{method: "RecentMessages",
			body: func(w worldA) map[string]any { return map[string]any{"conversation_ids": []string{w.Conv.ID}} },
			asB:  noBody(`{"messages":[]}`),
			asA: func(t *testing.T, _ *testEnv, w worldA, raw []byte) {
				if got := messagesOf(raw); !cmp.Equal(got, newestFirst(w)) {
					t.Errorf("admin got %+v, want A's %+v", got, newestFirst(w))
				}
			}},
	}
}

// bNotFound lists the methods where B, with its own key, gets NOT_FOUND.
var bNotFound = map[string]bool{"ReadConversation": true, "UpdateConversation": true, "DeleteConversation": true,
	"CreateMessage": true, "ListMessages": true}

// TestIsolationMatrix runs every unary method × identity over the m3o
// JSON route and over Connect and gRPC (whose authentication is the
// interceptor, a separate path from the m3o adapter's).
func TestIsolationMatrix(t *testing.T) {
	protocols := []string{"m3o", "connect", "grpc"}
	for _, row := range matrixRows() {
		for _, proto := range protocols {
			t.Run(row.method+"/"+proto, func(t *testing.T) {
				e := newTestEnv(t)
				w := seedA(t, e)
				call := matrixCaller(t, e, proto)
				for _, id := range identities {
					before := takeSnapshot(t, e, w.Conv.ID, "acme", "globex", "ops")
					status, errID, raw := call(id.key(e), id.ns, row.method, row.body(w))
					after := takeSnapshot(t, e, w.Conv.ID, "acme", "globex", "ops")
					cell := id.name
					wantStatus, wantID := id.status, id.id
					if id.name == "B own key" && bNotFound[row.method] {
						wantStatus, wantID = http.StatusNotFound, threads.ENOTFOUND
					}
					if status != max(wantStatus, http.StatusOK) || errID != wantID {
						t.Errorf("%s: answered %d %q (%s), want %d %q", cell, status, errID, raw, max(wantStatus, http.StatusOK), wantID)
						continue
					}
					switch {
					case wantStatus != 0:
						// A refusal changes nothing anywhere.
						before.diff(t, after, cell)
					case id.asA:
						row.asA(t, e, w, raw)
						if len(after.Logs["ops"]) != 0 {
							t.Errorf("%s: the admin's own tenant changed: it did not act as A", cell)
						}
					default:
						row.asB(t, e, w, raw)
						// B may change B's own tenant; nothing of A's.
						after.Logs["globex"] = before.Logs["globex"]
						before.diff(t, after, cell)
					}
				}
			})
		}
	}
}

// TestIsolationMessageIDs: client message ids are per tenant. B may use
// an id A already used (in B's own conversation), and reusing it tells B
// nothing about A: no CONFLICT, and A's message is untouched.
func TestIsolationMessageIDs(t *testing.T) {
	e := newTestEnv(t)
	w := seedA(t, e)
	convB := e.createConversation(e.OtherKey, "gb", "B's")["id"].(string)
	before := takeSnapshot(t, e, w.Conv.ID, "acme")
	m := w.Messages[0]
	for _, text := range []string{m.Text, "other text"} {
		e.post("CreateMessage", e.OtherKey, map[string]any{"id": m.ID, "conversation_id": w.Conv.ID, "author_id": m.AuthorID, "text": text}).
			wantError(t, threads.ENOTFOUND, http.StatusNotFound)
	}
	got := decodeField[apiMessage](t, e.post("CreateMessage", e.OtherKey,
		map[string]any{"id": m.ID, "conversation_id": convB, "author_id": "bob", "text": "B's own"}).withOK(t), "message")
	if got.ID != m.ID || got.ConversationID != convB || got.Seq != 1 {
		t.Errorf("B's message with A's id: %+v", got)
	}
	before.diff(t, takeSnapshot(t, e, w.Conv.ID, "acme"), "B reusing A's message id")
}

// matrixCaller returns a function that calls method as (key, ns) over
// proto and returns the HTTP status (200 when served), the error id, and
// the answer as m3o JSON (an RPC answer is re-rendered in that shape).
func matrixCaller(t *testing.T, e *testEnv, protocol string) func(key, ns, method string, body map[string]any) (int, string, []byte) {
	if protocol == "m3o" {
		return func(key, ns, method string, body map[string]any) (int, string, []byte) {
			var headers []string
			if ns != "" {
				headers = []string{"Micro-Namespace", ns}
			}
			r := e.post(method, key, body, headers...)
			if r.Status != http.StatusOK {
				r.wantError(t, fmt.Sprint(r.Body["id"]), r.Status)
				return r.Status, fmt.Sprint(r.Body["id"]), r.Raw
			}
			return r.Status, "", r.Raw
		}
	}
	hc, opts := http.DefaultClient, []connect.ClientOption(nil)
	if protocol == "grpc" {
		hc, opts = h2cClient(), []connect.ClientOption{connect.WithGRPC()}
	}
	return func(key, ns, method string, body map[string]any) (int, string, []byte) {
		raw, _ := json.Marshal(body)
		res, err := rpcUnary(t.Context(), hc, e.URL, method, key, ns, raw, opts...)
		if err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatalf("%s over %s: %v", method, protocol, err)
			}
			return httpStatusOf(ce.Code()), ce.Meta().Get("Threads-Error-Id"), []byte(ce.Error())
		}
		// Re-rendered in the m3o shape, so the row's checks read one shape.
		return http.StatusOK, "", m3oJSON(t, res)
	}
}

// httpStatusOf is the error table read backwards, for the codes the
// matrix expects.
func httpStatusOf(c connect.Code) int {
	switch c {
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeInvalidArgument:
		return http.StatusBadRequest
	}
	return 600 + int(c) // not an answer the matrix expects
}

// m3oJSON renders an RPC answer in the m3o route's JSON shape: snake_case
// names, every field present, timestamps with six fractional digits.
func m3oJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	json.Unmarshal(b, &v)
	v = sixDigits(v)
	out, _ := json.Marshal(v)
	return out
}

// sixDigits rewrites protojson timestamps and unquotes seq ("…:05.1234Z", "…:05Z") with
// exactly six fractional digits, as the m3o route writes them.
func sixDigits(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, vv := range x {
			if s, ok := vv.(string); ok && k == "seq" {
				x[k] = json.Number(s) // protojson quotes int64
				continue
			}
			x[k] = sixDigits(vv)
		}
	case []any:
		for i := range x {
			x[i] = sixDigits(x[i])
		}
	case string:
		if ts, err := time.Parse(time.RFC3339Nano, x); err == nil && strings.HasSuffix(x, "Z") {
			return threads.FormatTime(ts)
		}
	}
	return v
}

// rpcUnary calls one unary method of the Threads service with a JSON body
// (decoded by protojson into the method's request message).
func rpcUnary(ctx context.Context, hc connect.HTTPClient, baseURL, method, key, ns string, body []byte, opts ...connect.ClientOption) (proto.Message, error) {
	switch method {
	case "CreateConversation":
		return unary[pb.CreateConversationRequest, pb.CreateConversationResponse](ctx, hc, baseURL, threadspbconnect.ThreadsCreateConversationProcedure, key, ns, body, opts)
	case "ReadConversation":
		return unary[pb.ReadConversationRequest, pb.ReadConversationResponse](ctx, hc, baseURL, threadspbconnect.ThreadsReadConversationProcedure, key, ns, body, opts)
	case "UpdateConversation":
		return unary[pb.UpdateConversationRequest, pb.UpdateConversationResponse](ctx, hc, baseURL, threadspbconnect.ThreadsUpdateConversationProcedure, key, ns, body, opts)
	case "DeleteConversation":
		return unary[pb.DeleteConversationRequest, pb.DeleteConversationResponse](ctx, hc, baseURL, threadspbconnect.ThreadsDeleteConversationProcedure, key, ns, body, opts)
	case "ListConversations":
		return unary[pb.ListConversationsRequest, pb.ListConversationsResponse](ctx, hc, baseURL, threadspbconnect.ThreadsListConversationsProcedure, key, ns, body, opts)
	case "CreateMessage":
		return unary[pb.CreateMessageRequest, pb.CreateMessageResponse](ctx, hc, baseURL, threadspbconnect.ThreadsCreateMessageProcedure, key, ns, body, opts)
	case "ListMessages":
		return unary[pb.ListMessagesRequest, pb.ListMessagesResponse](ctx, hc, baseURL, threadspbconnect.ThreadsListMessagesProcedure, key, ns, body, opts)
	case "RecentMessages":
		return unary[pb.RecentMessagesRequest, pb.RecentMessagesResponse](ctx, hc, baseURL, threadspbconnect.ThreadsRecentMessagesProcedure, key, ns, body, opts)
	}
	return nil, fmt.Errorf("no such method %q", method)
}

func unary[Req, Res any, PReq interface {
	*Req
	proto.Message
}, PRes interface {
	*Res
	proto.Message
}](ctx context.Context, hc connect.HTTPClient, baseURL, procedure, key, ns string, body []byte, opts []connect.ClientOption) (proto.Message, error) {
	req := PReq(new(Req))
	if err := protojson.Unmarshal(body, req); err != nil {
		return nil, err
	}
	c := connect.NewClient[Req, Res](hc, baseURL+procedure, opts...)
	r := connect.NewRequest((*Req)(req))
	if key != "" {
		r.Header().Set("Authorization", "Bearer "+key)
	}
	if ns != "" {
		r.Header().Set("Micro-Namespace", ns)
	}
	res, err := c.CallUnary(ctx, r)
	if err != nil {
		return nil, err
	}
	return PRes(res.Msg), nil
}

// TestIsolationStreams: the same identities on the SSE stream and the
// Subscribe RPC (Connect and gRPC), following A's conversation and A's
// group. B's stream opens but carries only B's events, live and on
// replay; the refused identities get their error before any event; the
// admin naming A follows A.
func TestIsolationStreams(t *testing.T) {
	for _, transport := range []string{"sse", "connect", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			e := newTestEnv(t)
			w := seedA(t, e)
			query := url.Values{"conversation_id": {w.Conv.ID}, "group_id": {groupA}}
			for _, id := range identities {
				t.Run(id.name, func(t *testing.T) {
					before := takeSnapshot(t, e, w.Conv.ID, "acme", "globex", "ops")
					open := streamOpener(t, e, transport, id.key(e), id.ns, query)
					s, status, errID := open("")
					if id.status != 0 {
						if s != nil || status != id.status || errID != id.id {
							t.Fatalf("stream: opened %v, status %d, id %q; want refused with %d %q", s != nil, status, errID, id.status, id.id)
						}
						before.diff(t, takeSnapshot(t, e, w.Conv.ID, "acme", "globex", "ops"), id.name)
						return
					}
					if s == nil {
						t.Fatalf("stream refused: %d %q", status, errID)
					}
					defer s.close()
					if id.asA {
						aMsg := e.createMessage(e.Key, w.Conv.ID, "alice", "A after subscribe")["id"].(string)
						aConv := e.createConversation(e.Key, groupA, "A's new")["id"].(string)
						for _, want := range []string{"message " + aMsg, "conversation " + aConv} {
							if got, _ := s.next(t); got != want {
								t.Fatalf("admin naming A received %s, want A's %s", got, want)
							}
						}
						return
					}
					// B's own conversation in a group of the same name is
					// B's first event; its cursor is where B resumes.
					b1 := e.createConversation(e.OtherKey, groupA, "B's first")["id"].(string)
					got, cursor := s.next(t)
					if got != "conversation "+b1 {
						t.Fatalf("B received %s, want its own conversation %s", got, b1)
					}
					// A writes in the followed conversation and group; then
					// B writes again. B's next event must be its own.
					e.createMessage(e.Key, w.Conv.ID, "alice", "A after subscribe")
					e.createConversation(e.Key, groupA, "A's new")
					b2 := e.createConversation(e.OtherKey, groupA, "B's second")["id"].(string)
					if got, _ := s.next(t); got != "conversation "+b2 {
						t.Fatalf("B received %s before its own conversation %s: A's events leaked", got, b2)
					}
					s.close()
					// Replay from B's first event: again only B's.
					r, status, errID := open(cursor)
					if r == nil {
						t.Fatalf("resume refused: %d %q", status, errID)
					}
					defer r.close()
					if got, _ := r.next(t); got != "conversation "+b2 {
						t.Fatalf("B's replay gave %s, want only its own conversation %s", got, b2)
					}
				})
			}
		})
	}
}

// testStream is an open stream of either transport. next returns the
// next event that is not a heartbeat, as "message ID" or "conversation
// ID", and its cursor.
type testStream struct {
	next  func(t *testing.T) (string, string)
	close func()
}

func describeEvent(typ, conv, msg string) string {
	if strings.HasPrefix(typ, "message.") {
		return "message " + msg
	}
	return "conversation " + conv
}

// streamOpener returns a function that opens the stream (after a cursor,
// or from now) as (key, ns) over transport: the stream, or the refusal's
// status and error id.
func streamOpener(t *testing.T, e *testEnv, transport, key, ns string, q url.Values) func(after string) (*testStream, int, string) {
	if transport == "sse" {
		return func(after string) (*testStream, int, string) {
			var headers []string
			if ns != "" {
				headers = []string{"Micro-Namespace", ns}
			}
			c, res := e.subscribe(t, key, q.Encode(), after, headers...)
			if c == nil {
				res.wantError(t, fmt.Sprint(res.Body["id"]), res.Status)
				return nil, res.Status, fmt.Sprint(res.Body["id"])
			}
			return &testStream{close: c.close, next: func(t *testing.T) (string, string) {
				t.Helper()
				ev := c.next()
				var conv, msg string
				if ev.Data.Conversation != nil {
					conv = ev.Data.Conversation.ID
				}
				if ev.Data.Message != nil {
					msg = ev.Data.Message.ID
				}
				return describeEvent(ev.Type, conv, msg), ev.ID
			}}, http.StatusOK, ""
		}
	}
	hc, opts := http.DefaultClient, []connect.ClientOption(nil)
	if transport == "grpc" {
		hc, opts = h2cClient(), []connect.ClientOption{connect.WithGRPC()}
	}
	client := threadspbconnect.NewThreadsClient(hc, e.URL, opts...)
	return func(after string) (*testStream, int, string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // liveness guard
		req := &pb.SubscribeRequest{ConversationIds: q["conversation_id"], GroupId: q.Get("group_id"), After: after}
		var headers []string
		if key != "" {
			headers = append(headers, "Authorization", "Bearer "+key)
		}
		if ns != "" {
			headers = append(headers, "Micro-Namespace", ns)
		}
		s, err := client.Subscribe(callContext(ctx, headers...), req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		stop := func() { s.Close(); cancel() }
		if !s.Receive() {
			defer stop()
			var ce *connect.Error
			if !errors.As(s.Err(), &ce) {
				t.Fatalf("stream ended without a status: %v", s.Err())
			}
			return nil, httpStatusOf(ce.Code()), ce.Meta().Get("Threads-Error-Id")
		}
		if s.Msg().GetType() != "heartbeat" {
			t.Fatalf("first message %v, want a heartbeat with a cursor", s.Msg())
		}
		t.Cleanup(stop)
		return &testStream{close: stop, next: func(t *testing.T) (string, string) {
			t.Helper()
			for s.Receive() {
				ev := s.Msg()
				if ev.GetType() == "heartbeat" {
					continue
				}
				return describeEvent(ev.GetType(), ev.GetConversation().GetId(), ev.GetMessage().GetId()), ev.GetCursor()
			}
			t.Fatalf("stream ended: %v", s.Err())
			return "", ""
		}}, http.StatusOK, ""
	}
}
