package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
	"github.com/threads-server/threads/internal/server"
)

// rpcProtocol is one way a client may call Subscribe.
type rpcProtocol struct {
	name string
	hc   *http.Client
	opts []connect.ClientOption
}

// rpcProtocols: Connect over HTTP/1.1 and over cleartext HTTP/2, gRPC
// (HTTP/2) and gRPC-Web.
func rpcProtocols() []rpcProtocol {
	return []rpcProtocol{
		{"connect", http.DefaultClient, nil},
		{"connect-h2c", h2cClient(), nil},
		{"grpc", h2cClient(), []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", http.DefaultClient, []connect.ClientOption{connect.WithGRPCWeb()}},
	}
}

// openRPC opens a Subscribe stream; the test's end closes it.
func openRPC(t *testing.T, hc *http.Client, url, key string, req *pb.SubscribeRequest, opts ...connect.ClientOption) *connect.ServerStreamForClient[pb.Event] {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // liveness guard
	t.Cleanup(cancel)
	r := req
	s, err := threadspbconnect.NewThreadsClient(hc, url, opts...).Subscribe(callContext(ctx, "Authorization", "Bearer "+key), r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStreamsOutliveRequestTimeouts: the server's read and write timeouts
// are for requests; a stream lives until its client leaves (or its
// lifetime ends), with heartbeats, on every protocol and HTTP version.
// The timeouts here are made short; the streams must outlive them
// several times over. Before, Subscribe was cut at the write timeout on
// every protocol, and SSE over HTTP/2 at the per-write timeout after its
// last write.
func TestStreamsOutliveRequestTimeouts(t *testing.T) {
	const timeout = 200 * time.Millisecond
	st := openStore(t)
	e := serveHTTP(t, st, func(hs *http.Server) {
		hs.ReadTimeout, hs.WriteTimeout = timeout, timeout
	}, func(c *server.Config, _ *broker.Config) {
		c.Heartbeat = 2 * timeout
		c.StreamWriteTimeout = timeout
	})
	e.Key = e.newKey("acme", false)
	// Five heartbeats: the stream lived ten times the timeouts.
	const beats = 5
	for _, p := range rpcProtocols() {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			s := openRPC(t, p.hc, e.URL, e.Key, &pb.SubscribeRequest{GroupId: "g-" + p.name}, p.opts...)
			for i := range beats + 1 {
				if !s.Receive() {
					t.Fatalf("the stream ended after %d heartbeats: %v", i, s.Err())
				}
				if s.Msg().GetType() != "heartbeat" {
					t.Fatalf("got %v, want a heartbeat", s.Msg())
				}
			}
			conv := e.createConversation(e.Key, "g-"+p.name, "late")["id"].(string)
			if !s.Receive() || s.Msg().GetConversation().GetId() != conv {
				t.Fatalf("after the heartbeats: %v, %v; want the conversation created", s.Msg(), s.Err())
			}
		})
	}
	for _, p := range []struct {
		name string
		hc   *http.Client
	}{{"sse-http1", e.Client}, {"sse-h2c", h2cClient()}} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ec := *e
			ec.Client = p.hc
			s := ec.mustSubscribe(t, e.Key, "group_id=g-"+p.name, "")
			ids := make(chan string, beats+1)
			s.r.IDOnly = func(id string) { ids <- id }
			events := make(chan error, 1)
			go func() {
				_, err := s.r.Next()
				events <- err
			}()
			for i := range beats + 1 {
				select {
				case <-ids:
				case err := <-events:
					t.Fatalf("the stream ended after %d heartbeats: %v", i, err)
				}
			}
			conv := e.createConversation(e.Key, "g-"+p.name, "late")["id"].(string)
			if err := <-events; err != nil {
				t.Fatalf("after the heartbeats: %v; want the conversation %s", err, conv)
			}
		})
	}
}

// TestRevokedKeyEndsBusyStreams: revoking a key ends its streams within
// the key cache's TTL plus the check interval, on SSE and Subscribe, on
// every replica, while its group is busy. Before, only a heartbeat
// checked the key, and a busy stream never had one.
func TestRevokedKeyEndsBusyStreams(t *testing.T) {
	st := openStore(t)
	opts := func(c *server.Config, _ *broker.Config) {
		c.KeyCacheTTL = 100 * time.Millisecond
		c.StreamKeyCheck = 50 * time.Millisecond
		c.Heartbeat = time.Hour // no heartbeat will come to end them
	}
	a := newTestEnvOn(t, st, opts)
	b := serveOn(t, st, opts) // a second replica on the same database
	k, secret, err := threads.NewKey("acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	conv := a.createConversation(a.Key, "busy", "busy")["id"].(string)

	type opened struct {
		name string
		next func() (message bool, err error) // the next event, or why the stream ended
	}
	var all []opened
	for _, e := range []*testEnv{a, b} {
		s := e.mustSubscribe(t, secret, "group_id=busy", "")
		all = append(all, opened{"sse", func() (bool, error) {
			ev, err := s.r.Next()
			return err == nil && ev.Type == threads.EventMessageCreated, err
		}})
		for _, p := range rpcProtocols() {
			rs := openRPC(t, p.hc, e.URL, secret, &pb.SubscribeRequest{GroupId: "busy"}, p.opts...)
			all = append(all, opened{p.name, func() (bool, error) {
				if rs.Receive() {
					return rs.Msg().GetType() == threads.EventMessageCreated, nil
				}
				if rs.Err() == nil {
					return false, io.EOF
				}
				return false, rs.Err()
			}})
		}
	}

	// Keep the group busy: a message every few milliseconds until the end.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			a.createMessage(a.Key, conv, "ann", "busy")
			<-tick.C
		}
	})
	defer func() { stop(); wg.Wait() }()

	for _, o := range all { // every stream is live and busy
		for {
			msg, err := o.next()
			if err != nil {
				t.Fatalf("%s: %v", o.name, err)
			}
			if msg {
				break
			}
		}
	}
	if err := st.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	for i, o := range all {
		var err error
		for err == nil {
			_, err = o.next()
		}
		var ce *connect.Error
		switch {
		case o.name == "sse" && errors.Is(err, io.EOF):
		case errors.As(err, &ce) && ce.Code() == connect.CodeUnauthenticated:
		default:
			t.Errorf("stream %d (%s) ended with %v, want the server to end it (EOF, or Unauthenticated)", i, o.name, err)
		}
	}
}

// TestCursorOfAnotherTenant: a cursor names its tenant; another tenant's
// key cannot resume from it (on SQLite its position could fall inside
// this tenant's log, and it was accepted).
func TestCursorOfAnotherTenant(t *testing.T) {
	e := newTestEnv(t)
	e.createConversation(e.Key, "g", "acme's")
	cursor := idOnly(t, e.mustSubscribe(t, e.Key, "group_id=g", ""), 1)
	if c, res := e.subscribe(t, e.OtherKey, "group_id=g", cursor); c == nil {
		res.wantError(t, threads.EBADREQUEST, http.StatusBadRequest)
	} else {
		t.Fatal("another tenant's cursor opened a stream")
	}
	s := openRPC(t, http.DefaultClient, e.URL, e.OtherKey, &pb.SubscribeRequest{GroupId: "g", After: cursor})
	var ce *connect.Error
	if s.Receive() || !errors.As(s.Err(), &ce) || ce.Code() != connect.CodeInvalidArgument {
		t.Errorf("Subscribe with another tenant's cursor: %v, want InvalidArgument", s.Err())
	}
	idOnly(t, e.mustSubscribe(t, e.Key, "group_id=g", cursor), 1) // its own tenant resumes
}

// TestStreamRequestReadTimeout: a stream's request is bound by the
// server's ReadTimeout until the stream is open, like any request; only
// then are the request timeouts lifted. A client that starts a Subscribe
// and never sends its body is cut off (it held the connection for good
// when the timeouts were lifted before the request was read).
func TestStreamRequestReadTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	e := serveHTTP(t, openStore(t), func(hs *http.Server) { hs.ReadTimeout = timeout })
	for _, path := range []string{"/threads.Threads/Subscribe", "/threads.Threads/ListMessages"} {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+json\r\nContent-Length: 100\r\n\r\n{", path)
		// A liveness guard far above the timeout, not a speed bound.
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: the connection is still open with the body unsent, 30 s after a ReadTimeout of %v", path, timeout)
		}
	}
}
