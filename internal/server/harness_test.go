package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/server"
)

// The API suite's harness: the server, the store, the m3o client and the
// envelope check are internal/apitest's, shared with the PostgreSQL and
// CLI tests; this file adapts them to the suite's short names.

// testEnv is a real server on a real, empty database, with keys for two
// tenants (acme and globex), an admin key, and a revoked key.
type testEnv struct {
	t        *testing.T
	URL      string
	Store    threads.Store
	Client   *http.Client
	Key      string // tenant acme
	OtherKey string // tenant globex
	AdminKey string // tenant ops, admin
	Revoked  string // tenant acme, revoked

	api *server.Server
	ts  *httptest.Server
}

// EnvEngine chooses the engine the API suite runs on: "sqlite" (default)
// or "postgres" (which needs pgtest.EnvURL).
const EnvEngine = apitest.EnvEngine

func TestMain(m *testing.M) {
	if os.Getenv(EnvEngine) == "postgres" {
		fmt.Fprintln(os.Stderr, "internal/server: API suite on PostgreSQL")
	}
	os.Exit(m.Run())
}

// openStore returns a fresh store for one test, on the engine EnvEngine
// names.
func openStore(t *testing.T) threads.Store { return apitest.OpenStore(t) }

func quietLogger() *slog.Logger { return apitest.QuietLogger() }

// envOption changes the server's or the broker's configuration.
type envOption = apitest.Option

func newTestEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	return newTestEnvOn(t, openStore(t), opts...)
}

// newTestEnvOn serves st; its keys are made anew.
func newTestEnvOn(t *testing.T, st threads.Store, opts ...envOption) *testEnv {
	t.Helper()
	e := serveOn(t, st, opts...)
	e.Key = e.newKey("acme", false)
	e.OtherKey = e.newKey("globex", false)
	e.AdminKey = e.newKey("ops", true)
	k, revoked := apitest.CreateKey(t, st, "acme", false)
	if err := st.RevokeKey(context.Background(), k.ID); err != nil {
		t.Fatal(err)
	}
	e.Revoked = revoked
	return e
}

// serveOn starts a server (with a broker for live events) on st.
func serveOn(t *testing.T, st threads.Store, opts ...envOption) *testEnv {
	t.Helper()
	return serveHTTP(t, st, nil, opts...)
}

// serveHTTP is serveOn with the http.Server's settings changed by tweak
// (when not nil) before it starts: tests of its timeouts make them short.
func serveHTTP(t *testing.T, st threads.Store, tweak func(*http.Server), opts ...envOption) *testEnv {
	t.Helper()
	s := apitest.ServeHTTP(t, st, tweak, opts...)
	return &testEnv{t: t, URL: s.URL, Store: st, Client: s.HTTP, api: s.API, ts: s.TS}
}

func (e *testEnv) newKey(tenant string, admin bool) string {
	e.t.Helper()
	_, secret := apitest.CreateKey(e.t, e.Store, tenant, admin)
	return secret
}

// client is the m3o client over e's HTTP client (which a test may swap,
// for HTTP/2).
func (e *testEnv) client() *apitest.Client { return &apitest.Client{URL: e.URL, HTTP: e.Client} }

// response is an HTTP answer with its body decoded as JSON (when it is).
type response struct{ *apitest.Response }

// post calls an m3o JSON route: POST /v1/threads/{method}. body is sent
// as is when it is a string, else JSON-encoded. Extra headers are
// name, value pairs.
func (e *testEnv) post(method, key string, body any, headers ...string) *response {
	e.t.Helper()
	return &response{e.client().MustPost(e.t, method, key, body, headers...)}
}

func (e *testEnv) do(verb, path, key string, body any, headers ...string) *response {
	e.t.Helper()
	return &response{e.client().MustDo(e.t, verb, path, key, body, headers...)}
}

// ok fails the test unless the call answered 200, and returns the body.
func (r *response) ok(t *testing.T) map[string]any {
	t.Helper()
	r.OK(t)
	return r.Body
}

// wantError fails the test unless the call answered the go-micro envelope
// with this id and status, and nothing else.
func (r *response) wantError(t *testing.T, id string, status int) {
	t.Helper()
	r.WantError(t, id, status)
}

// createConversation makes a conversation through the API and returns it.
func (e *testEnv) createConversation(key, group, topic string) map[string]any {
	e.t.Helper()
	body := e.post("CreateConversation", key, map[string]any{"group_id": group, "topic": topic}).ok(e.t)
	return body["conversation"].(map[string]any)
}

// createMessage posts a message through the API and returns it.
func (e *testEnv) createMessage(key, conversation, author, text string) map[string]any {
	e.t.Helper()
	body := e.post("CreateMessage", key, map[string]any{"conversation_id": conversation, "author_id": author, "text": text}).ok(e.t)
	return body["message"].(map[string]any)
}

// apiScenario is one row of a scenario table (apitest.Scenario, with the
// suite's response in check).
type apiScenario struct {
	name       string
	verb       string
	path       string
	method     string
	key        string
	body       any
	headers    []string
	wantStatus int
	wantID     string
	check      func(t *testing.T, r *response)
}

// runScenarios runs each scenario as a subtest (apitest.RunScenarios).
func (e *testEnv) runScenarios(t *testing.T, scenarios []apiScenario) {
	t.Helper()
	out := make([]apitest.Scenario, len(scenarios))
	for i, s := range scenarios {
		out[i] = apitest.Scenario{Name: s.name, Verb: s.verb, Path: s.path, Method: s.method, Key: s.key,
			Body: s.body, Headers: s.headers, WantStatus: s.wantStatus, WantID: s.wantID}
		if check := s.check; check != nil {
			out[i].Check = func(t *testing.T, r *apitest.Response) { check(t, &response{r}) }
		}
	}
	e.client().RunScenarios(t, out)
}

// withT returns a copy of e that reports to t (a subtest).
func (e *testEnv) withT(t *testing.T) *testEnv {
	c := *e
	c.t = t
	return &c
}

// tryPost is post for goroutines other than the test's: it reports
// failures as errors instead of failing the test.
func (e *testEnv) tryPost(method, key string, body any) (*response, error) {
	r, err := e.client().Post(method, key, body)
	if err != nil {
		return nil, err
	}
	return &response{r}, nil
}

// apiConversation and apiMessage are the m3o JSON shapes, for decoding.
type (
	apiConversation = apitest.Conversation
	apiMessage      = apitest.Message
)

// decodeField decodes the named top-level field of a response.
func decodeField[T any](t *testing.T, r *response, field string) T {
	t.Helper()
	return apitest.MustField[T](t, r.Response, field)
}
