package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/postgres/pgtest"
	"github.com/threads-server/threads/internal/server"
	"github.com/threads-server/threads/internal/sqlite"
)

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
const EnvEngine = "THREADS_TEST_ENGINE"

func TestMain(m *testing.M) {
	if os.Getenv(EnvEngine) == "postgres" {
		fmt.Fprintln(os.Stderr, "internal/server: API suite on PostgreSQL")
	}
	os.Exit(m.Run())
}

// openStore returns a fresh store for one test. It is the one place that
// chooses the engine, so the whole suite runs unchanged on each.
func openStore(t *testing.T) threads.Store {
	t.Helper()
	switch engine := os.Getenv(EnvEngine); engine {
	case "", "sqlite":
	case "postgres":
		return pgtest.Open(t)
	default:
		t.Fatalf("%s=%q: want sqlite or postgres", EnvEngine, engine)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "threads.db"),
		sqlite.Options{Synchronous: "NORMAL", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// envOption changes the server's or the broker's configuration.
type envOption func(*server.Config, *broker.Config)

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
	e.Revoked = e.newKey("acme", false)
	keys, err := st.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeKey(context.Background(), keys[len(keys)-1].ID); err != nil {
		t.Fatal(err)
	}
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
	cfg := server.Config{Store: st, Logger: quietLogger()}
	bcfg := broker.Config{Store: st, Logger: quietLogger()}
	for _, o := range opts {
		o(&cfg, &bcfg)
	}
	cfg.Events = broker.New(bcfg)
	api := server.New(cfg)
	h := api.Handler()
	ts := httptest.NewUnstartedServer(h)
	ts.Config = server.HTTPServer("", h, quietLogger()) // the production timeouts and h2c
	if tweak != nil {
		tweak(ts.Config)
	}
	ts.Config.RegisterOnShutdown(api.StopStreams)
	ts.Listener = server.FramingListener(ts.Listener) // as serve does
	ts.Start()
	t.Cleanup(func() {
		api.StopStreams()
		ts.Close()
	})
	return &testEnv{t: t, URL: ts.URL, Store: st, Client: ts.Client(), api: api, ts: ts}
}

func (e *testEnv) newKey(tenant string, admin bool) string {
	e.t.Helper()
	k, secret, err := threads.NewKey(tenant, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.Store.CreateKey(context.Background(), k); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// response is an HTTP answer with its body decoded as JSON (when it is).
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

// post calls an m3o JSON route: POST /v1/threads/{method}. body is sent
// as is when it is a string, else JSON-encoded. Extra headers are
// name, value pairs.
func (e *testEnv) post(method, key string, body any, headers ...string) *response {
	e.t.Helper()
	return e.do("POST", "/v1/threads/"+method, key, body, headers...)
}

func (e *testEnv) do(verb, path, key string, body any, headers ...string) *response {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(verb, e.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.Client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := &response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// ok fails the test unless the call answered 200, and returns the body.
func (r *response) ok(t *testing.T) map[string]any {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.Status, r.Raw)
	}
	return r.Body
}

// wantError fails the test unless the call answered the go-micro envelope
// with this id and status, and nothing else.
func (r *response) wantError(t *testing.T, id string, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	want := map[string]any{"id": id, "code": float64(status), "status": http.StatusText(status)}
	got := map[string]any{}
	for k, v := range r.Body {
		if k != "detail" {
			got[k] = v
		}
	}
	if len(r.Body) != 4 || r.Body["detail"] == "" || !mapsEqual(got, want) {
		t.Fatalf("error body %s, want id %s, code %d, a detail, status %q", r.Raw, id, status, http.StatusText(status))
	}
}

func mapsEqual(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
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

// apiScenario is one row of a scenario table: one HTTP call and what it
// must answer. verb defaults to POST, path to /v1/threads/{method},
// wantStatus to 200; wantID is the error id when wantStatus is not 200.
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

// runScenarios runs each scenario as a subtest.
func (e *testEnv) runScenarios(t *testing.T, scenarios []apiScenario) {
	t.Helper()
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			verb, path, status := s.verb, s.path, s.wantStatus
			if verb == "" {
				verb = http.MethodPost
			}
			if path == "" {
				path = "/v1/threads/" + s.method
			}
			if status == 0 {
				status = http.StatusOK
			}
			r := e.withT(t).do(verb, path, s.key, s.body, s.headers...)
			if status == http.StatusOK {
				r.ok(t)
			} else {
				r.wantError(t, s.wantID, status)
			}
			if s.check != nil {
				s.check(t, r)
			}
		})
	}
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
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, e.URL+"/v1/threads/"+method, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := e.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out := &response{Status: res.StatusCode, Header: res.Header}
	if out.Raw, err = io.ReadAll(res.Body); err != nil {
		return nil, err
	}
	return out, json.Unmarshal(out.Raw, &out.Body)
}

// apiConversation and apiMessage are the m3o JSON shapes, for decoding.
type apiConversation struct {
	ID        string `json:"id"`
	GroupID   string `json:"group_id"`
	Topic     string `json:"topic"`
	CreatedAt string `json:"created_at"`
}

type apiMessage struct {
	ID             string `json:"id"`
	AuthorID       string `json:"author_id"`
	ConversationID string `json:"conversation_id"`
	Text           string `json:"text"`
	SentAt         string `json:"sent_at"`
	Seq            int64  `json:"seq"`
}

// decodeField decodes the named top-level field of a response.
func decodeField[T any](t *testing.T, r *response, field string) T {
	t.Helper()
	var all map[string]json.RawMessage
	var v T
	if err := json.Unmarshal(r.Raw, &all); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.Raw)
	}
	if err := json.Unmarshal(all[field], &v); err != nil {
		t.Fatalf("field %q: %v: %s", field, err, r.Raw)
	}
	return v
}
