package main

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

var keyRE = regexp.MustCompile(`thr_[A-Za-z0-9_-]{43}`)

// syncBuffer is a bytes.Buffer safe to read while serve writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// startServe runs "threads serve" on port 0 until the test ends, and
// returns a client of it and its stdout.
func startServe(t *testing.T, args ...string) (*apitest.Client, *syncBuffer) {
	t.Helper()
	addrc := make(chan string, 1)
	onListen = func(a string) { addrc <- a }
	t.Cleanup(func() { onListen = nil })
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d after SIGTERM-like cancel; stderr:\n%s", code, stderr)
		}
		if !strings.Contains(stderr.String(), "msg=stopped") {
			t.Errorf("serve did not log a graceful stop:\n%s", stderr)
		}
	})
	select {
	case a := <-addrc:
		return apitest.NewClient(t, "http://"+a), stdout
	case code := <-done:
		t.Fatalf("serve exited %d before listening; stderr:\n%s", code, stderr)
	}
	return nil, nil
}

// TestFirstStart is the README's quickstart: serve on an empty database
// prints a key for tenant default, and that key works.
func TestFirstStart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "new", "threads.db")
	api, stdout := startServe(t, "--db", db)
	key := keyRE.FindString(stdout.String())
	if key == "" {
		t.Fatalf("no key printed on first start; stdout:\n%s", stdout)
	}
	r := api.MustDo(t, http.MethodPost, "/threads/Threads/CreateConversation", key, `{"group_id":"g","topic":"t"}`)
	if r.Status != 200 || !strings.Contains(string(r.Raw), `"group_id":"g"`) {
		t.Fatalf("CreateConversation with the printed key: %d %s", r.Status, r.Raw)
	}
	if r := api.MustDo(t, http.MethodGet, "/readyz", "", nil); r.Status != 200 {
		t.Fatalf("readyz: %d %s", r.Status, r.Raw)
	}

	// The keys CLI sees that key, as tenant default.
	code, out, _ := run(t, "keys", "list", "--db", db)
	if code != 0 || !strings.Contains(out, "default") || strings.Contains(out, key) {
		t.Fatalf("keys list: exit %d, output:\n%s", code, out)
	}
}

func TestSecondStartPrintsNoKey(t *testing.T) {
	db := filepath.Join(t.TempDir(), "threads.db")
	if code, _, errs := run(t, "keys", "create", "acme", "--db", db); code != 0 {
		t.Fatalf("keys create: %d %s", code, errs)
	}
	_, stdout := startServe(t, "--db", db)
	if keyRE.MatchString(stdout.String()) {
		t.Fatalf("serve printed a key although one exists:\n%s", stdout)
	}
}

func TestKeysCLI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "threads.db")
	code, out, errs := run(t, "keys", "create", "acme", "--admin", "--db", db)
	if code != 0 || !keyRE.MatchString(out) || strings.TrimSpace(out) != keyRE.FindString(out) {
		t.Fatalf("keys create must print the key alone: exit %d stdout %q stderr %q", code, out, errs)
	}
	key := strings.TrimSpace(out)

	code, out, _ = run(t, "keys", "list", "--db", db)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "acme") || !strings.Contains(lines[1], "true") {
		t.Fatalf("keys list: exit %d\n%s", code, out)
	}
	id := strings.Fields(lines[1])[0]

	// Without the key cache, a revocation is refused at once.
	api, _ := startServe(t, "--db", db, "--key-cache-ttl", "0")
	if r := api.MustPost(t, "ListConversations", key, `{"group_id":"g"}`); r.Status != 200 {
		t.Fatalf("before revoke: %d %s", r.Status, r.Raw)
	}
	if code, _, errs := run(t, "keys", "revoke", id, "--db", db); code != 0 {
		t.Fatalf("keys revoke: %d %s", code, errs)
	}
	if err := api.MustPost(t, "ListConversations", key, `{"group_id":"g"}`).Envelope(threads.EUNAUTHORIZED, http.StatusUnauthorized); err != nil {
		t.Fatalf("after revoke: %v", err)
	}
	if code, _, _ := run(t, "keys", "revoke", "key_nope", "--db", db); code != 1 {
		t.Fatalf("revoking an unknown key: exit %d, want 1", code)
	}
	for _, bad := range [][]string{{"keys"}, {"keys", "create"}, {"keys", "create", "a", "b"}, {"keys", "frob"}} {
		if code, _, _ := run(t, append(bad, "--db", db)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
	if code, _, _ := run(t, "keys", "create", "bad tenant!", "--db", db); code != 1 {
		t.Errorf("invalid tenant name: exit %d, want 1", code)
	}
}

func TestMigrate(t *testing.T) {
	db := filepath.Join(t.TempDir(), "threads.db")
	code, out, _ := run(t, "migrate", "--db", "sqlite:"+db)
	if code != 0 || !strings.Contains(out, "schema at version 3 (3 migrations applied now)") {
		t.Fatalf("first migrate: exit %d %q", code, out)
	}
	code, out, _ = run(t, "migrate", "--db", db)
	if code != 0 || !strings.Contains(out, "(0 migrations applied now)") {
		t.Fatalf("second migrate: exit %d %q", code, out)
	}
	if code, _, errs := run(t, "migrate", "--db", "mysql://x"); code != 1 || !strings.Contains(errs, "unknown database URL") {
		t.Fatalf("unknown scheme: exit %d %q", code, errs)
	}
}

// TestEnvAndFlags: a flag beats THREADS_*, which beats the default.
func TestEnvAndFlags(t *testing.T) {
	dir := t.TempDir()
	envDB, flagDB := filepath.Join(dir, "env.db"), filepath.Join(dir, "flag.db")
	t.Setenv("THREADS_DB", envDB)
	if code, _, _ := run(t, "keys", "create", "fromenv"); code != 0 {
		t.Fatal("keys create with THREADS_DB failed")
	}
	if code, _, _ := run(t, "keys", "create", "fromflag", "--db", flagDB); code != 0 {
		t.Fatal("keys create with --db failed")
	}
	_, out, _ := run(t, "keys", "list")
	if !strings.Contains(out, "fromenv") || strings.Contains(out, "fromflag") {
		t.Fatalf("THREADS_DB not honoured:\n%s", out)
	}
	_, out, _ = run(t, "keys", "list", "--db", flagDB)
	if !strings.Contains(out, "fromflag") || strings.Contains(out, "fromenv") {
		t.Fatalf("--db did not beat THREADS_DB:\n%s", out)
	}
	t.Setenv("THREADS_LOG_LEVEL", "loud")
	if code, _, errs := run(t, "serve", "--addr", "127.0.0.1:0"); code != 1 || !strings.Contains(errs, "log-level") {
		t.Fatalf("bad THREADS_LOG_LEVEL: exit %d %q", code, errs)
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := run(t); code != 2 {
		t.Errorf("no args: exit %d, want 2", code)
	}
	if code, _, _ := run(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code, out, _ := run(t, "help"); code != 0 || !strings.Contains(out, "threads serve") {
		t.Errorf("help: exit %d", code)
	}
	if code, _, _ := run(t, "serve", "--nope"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

// TestServePostgres: the same first start, on a PostgreSQL URL.
func TestServePostgres(t *testing.T) {
	url := pgtest.SchemaURL(t)
	api, stdout := startServe(t, "--db", url)
	key := keyRE.FindString(stdout.String())
	if key == "" {
		t.Fatalf("no key printed on first start; stdout:\n%s", stdout)
	}
	if r := api.MustPost(t, "CreateConversation", key, `{"group_id":"g","topic":"t"}`); r.Status != 200 {
		t.Fatalf("CreateConversation on PostgreSQL: %d %s", r.Status, r.Raw)
	}
	code, out, _ := run(t, "migrate", "--db", url)
	if code != 0 || !strings.Contains(out, "schema at version 3 (0 migrations applied now)") {
		t.Fatalf("migrate on PostgreSQL: exit %d %q", code, out)
	}
	if code, out, _ := run(t, "keys", "list", "--db", url); code != 0 || !strings.Contains(out, "default") {
		t.Fatalf("keys list on PostgreSQL: exit %d %q", code, out)
	}
}

// TestEnvValidated: a malformed THREADS_* value is an error naming the
// variable, not silently the default.
func TestEnvValidated(t *testing.T) {
	t.Setenv("THREADS_SHUTDOWN_TIMEOUT", "30")
	code, _, errs := run(t, "serve", "--db", filepath.Join(t.TempDir(), "threads.db"), "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errs, "THREADS_SHUTDOWN_TIMEOUT") {
		t.Fatalf("exit %d, stderr %q: want an error naming THREADS_SHUTDOWN_TIMEOUT", code, errs)
	}
}

// TestPasswordNotShown: a database password never reaches the output.
func TestPasswordNotShown(t *testing.T) {
	// What serve logs as the database.
	if d := (&dbFlags{db: "postgres://u:s3cret-pw@h:5432/x?sslmode=require"}).display(); strings.Contains(d, "s3cret-pw") || !strings.Contains(d, "u:xxxxx@h:5432") {
		t.Errorf("display() = %q", d)
	}
	for _, db := range []string{"postgres://u:s3cret-pw@127.0.0.1:1/x?connect_timeout=1", "mysql://u:s3cret-pw@h/x"} {
		_, out, errs := run(t, "migrate", "--db", db)
		if strings.Contains(out+errs, "s3cret-pw") {
			t.Errorf("%s: the password is shown: %s%s", db, out, errs)
		}
	}
}
