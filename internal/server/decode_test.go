package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
	"github.com/threads-server/threads/internal/server"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// rawCodec sends payload as every request, whatever the message, under
// the name of a real codec; answers decode as that codec would.
type rawCodec struct {
	name    string
	payload []byte
}

func (c rawCodec) Name() string                { return c.name }
func (c rawCodec) Marshal(any) ([]byte, error) { return c.payload, nil }
func (c rawCodec) Unmarshal(b []byte, v any) error {
	if strings.HasPrefix(c.name, "json") {
		return protojson.Unmarshal(b, v.(proto.Message))
	}
	return proto.Unmarshal(b, v.(proto.Message))
}

// TestUndecodableRequests (issue 10): a Connect, gRPC or gRPC-Web request
// whose body is not valid protobuf, or Connect JSON that does not decode,
// is BAD_REQUEST like any other: InvalidArgument, Threads-Error-Id, a
// detail without Go type names that names the field when it can;
// counted; and nothing of it is executed, not even its valid part.
func TestUndecodableRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newTestEnv(t, func(c *server.Config, _ *broker.Config) { c.Registry = reg })
	garbage := []byte{0xff, 0xff, 0xff, 0xff}
	// group_id "g", topic "t", then a field whose length runs past the end.
	validThenTruncated := []byte{0x0a, 0x01, 'g', 0x12, 0x01, 't', 0x1a, 0x7f, 'x'}
	cases := []struct {
		name    string
		codec   rawCodec
		opts    []connect.ClientOption
		hc      *http.Client
		proto   string // the protocol label
		wantMsg string
		// unaryOnly: connect-go reads an empty stream message as the
		// empty request itself, without the codec.
		unaryOnly bool
	}{
		{"connect proto, garbage", rawCodec{"proto", garbage}, nil, http.DefaultClient, "connect", "invalid protobuf request body", false},
		{"connect proto, valid fields then a truncated one", rawCodec{"proto", validThenTruncated}, nil, http.DefaultClient, "connect", "invalid protobuf request body", false},
		{"connect proto, invalid UTF-8", rawCodec{"proto", []byte{0x0a, 0x01, 'g', 0x12, 0x01, 0xff}}, nil, http.DefaultClient, "connect", "invalid protobuf request body: ", false},
		{"connect JSON, wrong type", rawCodec{"json", []byte(`{"group_id":1,"topic":"t"}`)}, nil, http.DefaultClient, "connect", "invalid JSON request body: group_id: invalid value (expected a string)", false},
		{"connect JSON, truncated", rawCodec{"json", []byte(`{"group_id":"g","topic":`)}, nil, http.DefaultClient, "connect", "invalid JSON request body", false},
		{"connect JSON, empty", rawCodec{"json", nil}, nil, http.DefaultClient, "connect", "invalid JSON request body", true},
		{"gRPC, garbage", rawCodec{"proto", garbage}, []connect.ClientOption{connect.WithGRPC()}, h2cClient(), "grpc", "invalid protobuf request body", false},
		{"gRPC, valid fields then a truncated one", rawCodec{"proto", validThenTruncated}, []connect.ClientOption{connect.WithGRPC()}, h2cClient(), "grpc", "invalid protobuf request body", false},
		{"gRPC-Web, garbage", rawCodec{"proto", garbage}, []connect.ClientOption{connect.WithGRPCWeb()}, http.DefaultClient, "grpcweb", "invalid protobuf request body", false},
	}
	before := takeSnapshot(t, e, "", "acme")
	wantBadRequest := func(t *testing.T, err error, wantMsg string) {
		t.Helper()
		var ce *connect.Error
		if !errors.As(err, &ce) {
			t.Fatalf("got %v, want a refusal", err)
		}
		if ce.Code() != connect.CodeInvalidArgument {
			t.Errorf("code %v, want InvalidArgument", ce.Code())
		}
		if got := ce.Meta().Get("Threads-Error-Id"); got != threads.EBADREQUEST {
			t.Errorf("Threads-Error-Id %q, want BAD_REQUEST", got)
		}
		msg := ce.Message()
		t.Logf("message: %s", msg)
		if !strings.HasPrefix(msg, wantMsg) {
			t.Errorf("message %q, want it to start %q", msg, wantMsg)
		}
		for _, internal := range []string{"threadspb", "*", "unmarshal", "proto:", "threads.CreateConversationRequest"} {
			if strings.Contains(msg, internal) {
				t.Errorf("message %q shows %q", msg, internal)
			}
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := threadspbconnect.NewThreadsClient(c.hc, e.URL, append(c.opts, connect.WithCodec(c.codec))...)
			req := &pb.CreateConversationRequest{GroupId: "g", Topic: "t"}
			_, err := cl.CreateConversation(callContext(t.Context(), "Authorization", "Bearer "+e.Key), req)
			wantBadRequest(t, err, c.wantMsg)
			if got := requestsCounted(t, reg, "CreateConversation", c.proto, threads.EBADREQUEST); got == 0 {
				t.Errorf("not counted in threads_requests_total{method=CreateConversation,protocol=%s,code=BAD_REQUEST}", c.proto)
			}

			if c.unaryOnly {
				return
			}
			// The stream's request too (decoded before the handler, by
			// the streaming path).
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // liveness guard
			defer cancel()
			sreq := &pb.SubscribeRequest{GroupId: "g"}
			s, err := cl.Subscribe(callContext(ctx, "Authorization", "Bearer "+e.Key), sreq)
			if err == nil {
				defer s.Close()
				if s.Receive() {
					t.Fatalf("a stream opened on an undecodable request: %v", s.Msg())
				}
				err = s.Err()
			}
			wantBadRequest(t, err, c.wantMsg)
			if got := requestsCounted(t, reg, "Subscribe", c.proto, threads.EBADREQUEST); got == 0 {
				t.Errorf("not counted in threads_requests_total{method=Subscribe,protocol=%s,code=BAD_REQUEST}", c.proto)
			}
		})
	}
	before.diff(t, takeSnapshot(t, e, "", "acme"), "undecodable requests")

	t.Run("without a key it is UNAUTHORIZED, as on the m3o routes", func(t *testing.T) {
		cl := threadspbconnect.NewThreadsClient(http.DefaultClient, e.URL, connect.WithCodec(rawCodec{"proto", garbage}))
		_, err := cl.CreateConversation(t.Context(), &pb.CreateConversationRequest{})
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("got %v, want Unauthenticated", err)
		}
	})
	t.Run("valid requests still decode", func(t *testing.T) {
		for _, opts := range [][]connect.ClientOption{nil, {connect.WithProtoJSON()}} {
			cl := threadspbconnect.NewThreadsClient(http.DefaultClient, e.URL, opts...)
			req := &pb.CreateConversationRequest{GroupId: "decoded", Topic: "t"}
			res, err := cl.CreateConversation(callContext(t.Context(), "Authorization", "Bearer "+e.Key), req)
			if err != nil || res.GetConversation().GetGroupId() != "decoded" {
				t.Fatalf("got %v, %v", res, err)
			}
		}
	})
}
