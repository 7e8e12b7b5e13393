package apitest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/server"
)

// Option changes the server's or the broker's configuration before the
// server starts.
type Option func(*server.Config, *broker.Config)

// Server is a real server on 127.0.0.1:0 over a store, set up as serve
// sets it up. Its Client calls it.
type Server struct {
	*Client
	Store threads.Store
	API   *server.Server
	TS    *httptest.Server
}

// Serve starts a server (with a broker for live events) on st; it stops
// when the test ends.
func Serve(t testing.TB, st threads.Store, opts ...Option) *Server {
	t.Helper()
	return ServeHTTP(t, st, nil, opts...)
}

// ServeHTTP is Serve with the http.Server's settings changed by tweak
// (when not nil) before it starts: tests of its timeouts make them short.
func ServeHTTP(t testing.TB, st threads.Store, tweak func(*http.Server), opts ...Option) *Server {
	t.Helper()
	cfg := server.Config{Store: st, Logger: QuietLogger()}
	bcfg := broker.Config{Store: st, Logger: QuietLogger()}
	for _, o := range opts {
		o(&cfg, &bcfg)
	}
	cfg.Events = broker.New(bcfg)
	api := server.New(cfg)
	h := api.Handler()
	ts := httptest.NewUnstartedServer(h)
	ts.Config = server.HTTPServer("", h, QuietLogger()) // the production timeouts and h2c
	if tweak != nil {
		tweak(ts.Config)
	}
	ts.Config.RegisterOnShutdown(api.StopStreams)
	ts.Listener = server.FramingListener(ts.Listener) // as serve does
	ts.Start()
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64 // concurrent writers reuse their connections
	t.Cleanup(func() {
		api.StopStreams()
		tr.CloseIdleConnections()
		ts.Close()
	})
	return &Server{
		Client: &Client{URL: ts.URL, HTTP: &http.Client{Transport: tr}},
		Store:  st,
		API:    api,
		TS:     ts,
	}
}

// CreateKey stores a new key for tenant and returns it with its secret.
func CreateKey(t testing.TB, st threads.Store, tenant string, admin bool) (*threads.Key, string) {
	t.Helper()
	k, secret, err := threads.NewKey(tenant, admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return k, secret
}

// NewKey stores a new key for tenant and returns its secret.
func (s *Server) NewKey(t testing.TB, tenant string, admin bool) string {
	t.Helper()
	_, secret := CreateKey(t, s.Store, tenant, admin)
	return secret
}

// Env is a server with keys for two tenants (acme and globex), an admin
// key and a revoked key.
type Env struct {
	*Server
	Key      string // tenant acme
	OtherKey string // tenant globex
	AdminKey string // tenant ops, admin
	Revoked  string // tenant acme, revoked
}

// NewEnv serves a fresh store of the engine EnvEngine names.
func NewEnv(t testing.TB, opts ...Option) *Env {
	t.Helper()
	return NewEnvOn(t, OpenStore(t), opts...)
}

// NewEnvOn serves st, with its keys made anew.
func NewEnvOn(t testing.TB, st threads.Store, opts ...Option) *Env {
	t.Helper()
	e := &Env{Server: Serve(t, st, opts...)}
	e.Key = e.NewKey(t, "acme", false)
	e.OtherKey = e.NewKey(t, "globex", false)
	e.AdminKey = e.NewKey(t, "ops", true)
	revoked, secret := CreateKey(t, st, "acme", false)
	if err := st.RevokeKey(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	e.Revoked = secret
	return e
}
