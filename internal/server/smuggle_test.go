package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
	"github.com/threads-server/threads/internal/server"
)

// framedEnv serves a fresh API as cmd/threads does: the production
// http.Server (server.HTTPServer) on a server.FramingListener.
func framedEnv(t *testing.T) (*testEnv, string) {
	t.Helper()
	st := openStore(t)
	api := server.New(server.Config{Store: st, Logger: quietLogger()})
	h := api.Handler()
	ts := httptest.NewUnstartedServer(h)
	ts.Listener = server.FramingListener(ts.Listener)
	ts.Config = server.HTTPServer("", h, quietLogger())
	ts.Start()
	t.Cleanup(ts.Close)
	e := &testEnv{t: t, URL: ts.URL, Store: st, Client: ts.Client(), api: api, ts: ts}
	e.Key = e.newKey("acme", false)
	return e, ts.Listener.Addr().String()
}

// rawConn is one TCP connection to the server, written and read by hand.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A liveness guard for a server that neither answers nor closes, not
	// a speed assertion.
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	return &rawConn{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// response reads the next final answer (skipping 100 Continue).
func (c *rawConn) response() (*response, *http.Response) {
	c.t.Helper()
	for {
		res, err := http.ReadResponse(c.br, nil)
		if err != nil {
			c.t.Fatalf("reading an answer: %v", err)
		}
		raw, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			c.t.Fatalf("reading an answer's body: %v", err)
		}
		if res.StatusCode == http.StatusContinue {
			continue
		}
		r := &response{&apitest.Response{Status: res.StatusCode, Header: res.Header, Raw: raw}}
		_ = json.Unmarshal(raw, &r.Body)
		return r, res
	}
}

// closedByServer fails unless the server closed the connection with
// nothing more to say.
func (c *rawConn) closedByServer() {
	c.t.Helper()
	rest, err := io.ReadAll(c.br)
	if err != nil {
		c.t.Fatalf("the connection was not closed cleanly after the answer: %v", err)
	}
	if len(rest) > 0 {
		c.t.Fatalf("the server answered again on the connection: %q", rest)
	}
}

func chunked(body string) string {
	return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
}

// TestSmuggledRequestIsRefused (issue 10, item 7): a request with both
// Content-Length and Transfer-Encoding (or Transfer-Encoding in HTTP/1.0)
// is refused with the envelope before any handler runs, and its
// connection is closed, so the request hidden after its chunked body (the
// next request to a server that frames by Transfer-Encoding; part of the
// body to a proxy that frames by Content-Length) is never executed.
func TestSmuggledRequestIsRefused(t *testing.T) {
	e, addr := framedEnv(t)
	visible := `{"group_id":"smuggled","topic":"visible"}`
	hidden := fmt.Sprintf("POST /v1/threads/CreateConversation HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s",
		e.Key, len(`{"group_id":"smuggled","topic":"hidden"}`), `{"group_id":"smuggled","topic":"hidden"}`)
	body := chunked(visible) + hidden
	head := func(proto string, headers ...string) string {
		return "POST /v1/threads/CreateConversation " + proto + "\r\nHost: x\r\nAuthorization: Bearer " + e.Key + "\r\n" +
			strings.Join(headers, "\r\n") + "\r\n\r\n"
	}
	cl := fmt.Sprintf("Content-Length: %d", len(body))
	te := "Transfer-Encoding: chunked"
	cases := []struct {
		name, request string
		// bytewise writes the request one byte at a time.
		bytewise bool
		detail   string
	}{
		{name: "Content-Length then Transfer-Encoding", request: head("HTTP/1.1", cl, te) + body, detail: "Transfer-Encoding and Content-Length"},
		{name: "Transfer-Encoding then Content-Length", request: head("HTTP/1.1", te, cl) + body, detail: "Transfer-Encoding and Content-Length"},
		{name: "lower case names, upper case value", request: head("HTTP/1.1", "transfer-encoding: CHUNKED", strings.ToLower(cl)) + body, detail: "Transfer-Encoding and Content-Length"},
		{name: "written one byte at a time", request: head("HTTP/1.1", cl, te) + body, bytewise: true, detail: "Transfer-Encoding and Content-Length"},
		{name: "HTTP/1.0, both", request: head("HTTP/1.0", "Connection: keep-alive", te, cl) + body, detail: "Transfer-Encoding and Content-Length"},
		// net/http ignores Transfer-Encoding in HTTP/1.0 and reads no
		// body: the chunked body would be read as the next request.
		{name: "HTTP/1.0, Transfer-Encoding alone", request: head("HTTP/1.0", "Connection: keep-alive", te) + body, detail: "HTTP/1.0"},
		{name: "after a valid request on the connection", detail: "Transfer-Encoding and Content-Length",
			request: head("HTTP/1.1", fmt.Sprintf("Content-Length: %d", len(`{"group_id":"before","topic":"t"}`))) + `{"group_id":"before","topic":"t"}` +
				head("HTTP/1.1", cl, te) + body},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := takeSnapshot(t, e, "", "acme")
			conn := dialRaw(t, addr)
			go func() {
				if !c.bytewise {
					conn.conn.Write([]byte(c.request))
					return
				}
				for i := range len(c.request) {
					if _, err := conn.conn.Write([]byte{c.request[i]}); err != nil {
						return
					}
				}
			}()
			r, res := conn.response()
			if strings.HasPrefix(c.name, "after a valid request") {
				r.ok(t)
				if res.Close {
					t.Fatal("the valid request before the ambiguous one closed the connection")
				}
				e.post("ListConversations", e.Key, map[string]any{"group_id": "before"}).ok(t)
				before = takeSnapshot(t, e, "", "acme")
				r, res = conn.response()
			}
			r.wantError(t, threads.EBADREQUEST, http.StatusBadRequest)
			if detail, _ := r.Body["detail"].(string); !strings.Contains(detail, c.detail) {
				t.Errorf("detail %q does not name the problem (%q)", detail, c.detail)
			}
			if !res.Close {
				t.Fatalf("the refusal does not say Connection: close: %v", res.Header)
			}
			conn.closedByServer()
			before.diff(t, takeSnapshot(t, e, "", "acme"), "an ambiguous request and the one hidden in its body")
			if ids, _ := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": "smuggled"})); len(ids) != 0 {
				t.Errorf("stored %d conversations in group smuggled, want none", len(ids))
			}
		})
	}
}

// TestFramingKeepsValidConnections: FramingListener follows every valid
// framing without a false alarm, whatever the order of requests, how
// they are pipelined and how the bytes are cut into reads: bodies that
// contain header-like lines, chunk extensions and trailers, HTTP/1.0
// keep-alive, 100-continue, blank lines after a POST, OPTIONS *; and
// HTTP/2 (h2c) and Go's own clients pass through.
func TestFramingKeepsValidConnections(t *testing.T) {
	e, addr := framedEnv(t)
	auth := "Authorization: Bearer " + e.Key + "\r\n"
	create := func(group string) string { return `{"group_id":"` + group + `","topic":"t"}` }
	holder := "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n\r\n0123"
	type shape struct {
		name, request string
		status        int
		creates       bool
	}
	shapes := []shape{
		{"Content-Length body", "POST /v1/threads/CreateConversation HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(create("ok")), create("ok")), 200, true},
		{"chunked body with extensions and a trailer", "POST /v1/threads/CreateConversation HTTP/1.1\r\nHost: x\r\n" + auth +
			"Transfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%X;name=value\r\n%s\r\n", 10, create("ok")[:10]) +
			fmt.Sprintf("%03x \r\n%s\r\n", len(create("ok"))-10, create("ok")[10:]) +
			"0\r\nX-Trailer: Content-Length: 5\r\n\r\n", 200, true},
		{"GET without a body", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"chunked body with header-like lines", "POST /v1/threads/CreateConversation HTTP/1.1\r\nHost: x\r\n" + auth +
			"Transfer-Encoding: chunked\r\n\r\n" +
			chunked("{\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 400, false},
		{"Content-Length body holding a request", "POST /v1/threads/CreateConversation HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(holder), holder), 400, false},
		{"HTTP/1.0 keep-alive", "POST /v1/threads/CreateConversation HTTP/1.0\r\nConnection: keep-alive\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(create("ok")), create("ok")), 200, true},
		{"100-continue", "POST /v1/threads/CreateConversation HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(create("ok")), create("ok")), 200, true},
		{"blank line after a POST", "POST /v1/threads/CreateConversation HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s\r\n", len(create("ok")), create("ok")), 200, true},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 200, false},
		{"bare LF line ends", "POST /v1/threads/CreateConversation HTTP/1.1\nHost: x\n" + strings.TrimSuffix(auth, "\r\n") + "\n" +
			fmt.Sprintf("Content-Length: %d\n\n%s", len(create("ok")), create("ok")), 200, true},
		{"duplicate equal Content-Length", "POST /v1/threads/CreateConversation HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s", len(create("ok")), len(create("ok")), create("ok")), 200, true},
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	creates := 0
	for round := range 20 {
		// Every shape twice, in a random order, on one connection, all
		// written at once in pieces of random size.
		order := append(rng.Perm(len(shapes)), rng.Perm(len(shapes))...)
		var all strings.Builder
		for _, i := range order {
			all.WriteString(shapes[i].request)
		}
		// Blank lines after a POST are the next request's: end with a
		// request that is not one.
		all.WriteString("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		conn := dialRaw(t, addr)
		go func(b []byte, rng *rand.Rand) {
			for len(b) > 0 {
				n := min(len(b), 1+rng.IntN(64))
				if _, err := conn.conn.Write(b[:n]); err != nil {
					return
				}
				b = b[n:]
			}
		}([]byte(all.String()), rand.New(rand.NewPCG(seed, uint64(round)+1)))
		for _, i := range order {
			r, res := conn.response()
			if r.Status != shapes[i].status {
				t.Fatalf("round %d, %s: status %d, want %d: %s", round, shapes[i].name, r.Status, shapes[i].status, r.Raw)
			}
			if r.Status == http.StatusBadRequest && strings.Contains(string(r.Raw), "framing") {
				t.Fatalf("round %d, %s: refused for its framing: %s", round, shapes[i].name, r.Raw)
			}
			if res.Close {
				t.Fatalf("round %d, %s: the connection is closed after it", round, shapes[i].name)
			}
			if shapes[i].creates {
				creates++
			}
		}
		conn.response()
		conn.conn.Close()
	}
	// Many small requests pipelined at once: the heads read ahead of
	// their handlers pile up.
	conn := dialRaw(t, addr)
	go conn.conn.Write([]byte(strings.Repeat("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 500)))
	for i := range 500 {
		if r, res := conn.response(); r.Status != http.StatusOK || res.Close {
			t.Fatalf("pipelined request %d: status %d, close %v: %s", i, r.Status, res.Close, r.Raw)
		}
	}
	conn.conn.Close()

	ids, _ := listIDs(t, e.post("ListConversations", e.Key, map[string]any{"group_id": "ok"}))
	if len(ids) != creates {
		t.Errorf("stored %d conversations, want %d (one per create sent)", len(ids), creates)
	}

	// Go's clients: HTTP/1.1 and HTTP/2 with prior knowledge.
	for _, hc := range []struct {
		name string
		c    *http.Client
		opts []connect.ClientOption
	}{
		{"connect over HTTP/1.1", http.DefaultClient, nil},
		{"gRPC over h2c", h2cClient(), []connect.ClientOption{connect.WithGRPC()}},
	} {
		t.Run(hc.name, func(t *testing.T) {
			c := threadspbconnect.NewThreadsClient(hc.c, e.URL, hc.opts...)
			for range 3 {
				req := &pb.CreateConversationRequest{GroupId: "go", Topic: "t"}
				if _, err := c.CreateConversation(callContext(context.Background(), "Authorization", "Bearer "+e.Key), req); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
