package server_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
)

// TestSubscribeRPC: the same stream as a server-streaming RPC, over
// Connect, gRPC and gRPC-Web: a first cursor, live events in the API's
// shape, resume after a cursor, and errors with the table's codes.
func TestSubscribeRPC(t *testing.T) {
	e := newTestEnv(t)
	protocols := []struct {
		name string
		hc   *http.Client
		opts []connect.ClientOption
	}{
		{"connect", http.DefaultClient, nil},
		{"grpc", h2cClient(), []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", http.DefaultClient, []connect.ClientOption{connect.WithGRPCWeb()}},
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := threadspbconnect.NewThreadsClient(p.hc, e.URL, p.opts...)
			open := func(key string, req *pb.SubscribeRequest) *connect.ServerStreamForClient[pb.Event] {
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // liveness guard
				t.Cleanup(cancel)
				r := req
				s, err := c.Subscribe(callContext(ctx, "Authorization", "Bearer "+key), r)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			recv := func(s *connect.ServerStreamForClient[pb.Event]) *pb.Event {
				t.Helper()
				if !s.Receive() {
					t.Fatalf("stream ended: %v", s.Err())
				}
				return s.Msg()
			}
			group := "g-" + p.name
			s := open(e.Key, &pb.SubscribeRequest{GroupId: group})
			if first := recv(s); first.GetType() != "heartbeat" || first.GetCursor() == "" {
				t.Fatalf("first event %v, want a heartbeat with a cursor", first)
			}
			conv := e.createConversation(e.Key, group, "rpc")["id"].(string)
			created := recv(s)
			if created.GetType() != threads.EventConversationCreated || created.GetConversation().GetId() != conv || created.GetCursor() == "" {
				t.Fatalf("got %v", created)
			}
			s.Close()
			msg := e.createMessage(e.Key, conv, "ann", "missed")
			resumed := open(e.Key, &pb.SubscribeRequest{ConversationIds: []string{conv}, After: created.GetCursor()})
			recv(resumed) // its first cursor
			if ev := recv(resumed); ev.GetType() != threads.EventMessageCreated || ev.GetMessage().GetId() != msg["id"] || ev.GetMessage().GetText() != "missed" {
				t.Fatalf("resumed, got %v", ev)
			}

			bad := open(e.Key, &pb.SubscribeRequest{})
			if bad.Receive() {
				t.Fatal("a stream without filters sent an event")
			}
			var ce *connect.Error
			if !errors.As(bad.Err(), &ce) || ce.Code() != connect.CodeInvalidArgument {
				t.Errorf("no filter: %v, want InvalidArgument", bad.Err())
			}
			unauth := open(e.Revoked, &pb.SubscribeRequest{GroupId: group})
			if unauth.Receive() || !errors.As(unauth.Err(), &ce) || ce.Code() != connect.CodeUnauthenticated {
				t.Errorf("revoked key: %v, want Unauthenticated", unauth.Err())
			}
		})
	}
}
