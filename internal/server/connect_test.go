package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// rpcClient is one protocol's view of the Threads service, reduced to a
// generic call so the same scenarios run over every protocol.
type rpcClient struct {
	name string
	// call invokes method with req (with the bearer key) into res, and
	// returns the gRPC code and the m3o error id on failure.
	call func(ctx context.Context, key, method string, req, res proto.Message) (code connect.Code, errorID string, err error)
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// clients returns the protocols under test: Connect (proto and JSON),
// gRPC and gRPC-Web through the generated Connect client, and grpc-go.
func clients(t *testing.T, e *testEnv) []rpcClient {
	viaConnect := func(name string, hc *http.Client, opts ...connect.ClientOption) rpcClient {
		c := threadspbconnect.NewThreadsClient(hc, e.URL, opts...)
		return rpcClient{name: name, call: func(ctx context.Context, key, method string, req, res proto.Message) (connect.Code, string, error) {
			out, err := invokeConnect(ctx, c, key, method, req)
			if err != nil {
				var ce *connect.Error
				if errors.As(err, &ce) {
					return ce.Code(), ce.Meta().Get("Threads-Error-Id"), err
				}
				return connect.CodeUnknown, "", err
			}
			proto.Merge(res, out)
			return 0, "", nil
		}}
	}
	conn, err := grpc.NewClient(strings.TrimPrefix(e.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	grpcGo := rpcClient{name: "grpc-go", call: func(ctx context.Context, key, method string, req, res proto.Message) (connect.Code, string, error) {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
		var trailer metadata.MD
		err := conn.Invoke(ctx, "/threads.Threads/"+method, req, res, grpc.Trailer(&trailer))
		if err != nil {
			id := ""
			if v := trailer.Get("threads-error-id"); len(v) > 0 {
				id = v[0]
			}
			return connect.Code(status.Code(err)), id, err
		}
		return 0, "", nil
	}}
	return []rpcClient{
		viaConnect("connect-proto", http.DefaultClient),
		viaConnect("connect-json", http.DefaultClient, connect.WithProtoJSON()),
		viaConnect("grpc", h2cClient(), connect.WithGRPC()),
		viaConnect("grpc-web", http.DefaultClient, connect.WithGRPCWeb()),
		grpcGo,
	}
}

// invokeConnect dispatches a generic call to the generated client. It
// covers every unary method of the service (TestEveryMethodIsServed).
func invokeConnect(ctx context.Context, c threadspbconnect.ThreadsClient, key, method string, req proto.Message) (proto.Message, error) {
	ctx = callContext(ctx, "Authorization", "Bearer "+key)
	switch method {
	case "CreateConversation":
		return msgOf(c.CreateConversation(ctx, req.(*pb.CreateConversationRequest)))
	case "ReadConversation":
		return msgOf(c.ReadConversation(ctx, req.(*pb.ReadConversationRequest)))
	case "UpdateConversation":
		return msgOf(c.UpdateConversation(ctx, req.(*pb.UpdateConversationRequest)))
	case "DeleteConversation":
		return msgOf(c.DeleteConversation(ctx, req.(*pb.DeleteConversationRequest)))
	case "ListConversations":
		return msgOf(c.ListConversations(ctx, req.(*pb.ListConversationsRequest)))
	case "CreateMessage":
		return msgOf(c.CreateMessage(ctx, req.(*pb.CreateMessageRequest)))
	case "ListMessages":
		return msgOf(c.ListMessages(ctx, req.(*pb.ListMessagesRequest)))
	case "RecentMessages":
		return msgOf(c.RecentMessages(ctx, req.(*pb.RecentMessagesRequest)))
	}
	return nil, errors.New("no such method in test dispatcher: " + method)
}

// msgOf returns a typed answer as a proto.Message, and nil with an error.
func msgOf[M proto.Message](res M, err error) (proto.Message, error) {
	if err != nil {
		return nil, err
	}
	return res, nil
}

// callContext carries request headers (name, value pairs) to one call of
// the generated client, which takes them in the context.
func callContext(ctx context.Context, headers ...string) context.Context {
	ctx, call := connect.NewClientContext(ctx)
	for i := 0; i+1 < len(headers); i += 2 {
		call.RequestHeader().Set(headers[i], headers[i+1])
	}
	return ctx
}

// TestProtocols runs the core scenario over every RPC protocol: the same
// handlers answer them, so the same answers must come back.
func TestProtocols(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	for _, c := range clients(t, e) {
		t.Run(c.name, func(t *testing.T) {
			var created pb.CreateConversationResponse
			mustCall(t, c, e.Key, "CreateConversation", &pb.CreateConversationRequest{GroupId: "g-" + c.name, Topic: "over " + c.name}, &created)
			conv := created.GetConversation()
			if conv.GetId() == "" || conv.GetGroupId() != "g-"+c.name || conv.GetCreatedAt() == nil {
				t.Fatalf("created %v", conv)
			}

			var read pb.ReadConversationResponse
			mustCall(t, c, e.Key, "ReadConversation", &pb.ReadConversationRequest{Id: conv.GetId(), GroupId: wrapperspb.String("g-" + c.name)}, &read)
			if diff := cmp.Diff(conv, read.GetConversation(), protocmp.Transform()); diff != "" {
				t.Errorf("read differs from created (-created +read):\n%s", diff)
			}

			var sent []*pb.Message
			for i, text := range []string{"one", "two", "three"} {
				var m pb.CreateMessageResponse
				mustCall(t, c, e.Key, "CreateMessage", &pb.CreateMessageRequest{ConversationId: conv.GetId(), AuthorId: "ann", Text: text}, &m)
				if m.GetMessage().GetSeq() != int64(i+1) {
					t.Errorf("message %d has seq %d", i+1, m.GetMessage().GetSeq())
				}
				sent = append(sent, m.GetMessage())
			}
			var list pb.ListMessagesResponse
			mustCall(t, c, e.Key, "ListMessages", &pb.ListMessagesRequest{ConversationId: conv.GetId(), Limit: wrapperspb.Int32(2)}, &list)
			want := []*pb.Message{sent[2], sent[1]}
			if diff := cmp.Diff(want, list.GetMessages(), protocmp.Transform()); diff != "" {
				t.Errorf("ListMessages (-want +got):\n%s", diff)
			}
			var older pb.ListMessagesResponse
			mustCall(t, c, e.Key, "ListMessages", &pb.ListMessagesRequest{ConversationId: conv.GetId(), SentBefore: sent[1].GetSentAt()}, &older)
			if diff := cmp.Diff([]*pb.Message{sent[0]}, older.GetMessages(), protocmp.Transform()); diff != "" {
				t.Errorf("ListMessages sent_before (-want +got):\n%s", diff)
			}
			var recent pb.RecentMessagesResponse
			mustCall(t, c, e.Key, "RecentMessages", &pb.RecentMessagesRequest{ConversationIds: []string{conv.GetId()}, LimitPerConversation: wrapperspb.Int32(1)}, &recent)
			if diff := cmp.Diff([]*pb.Message{sent[2]}, recent.GetMessages(), protocmp.Transform()); diff != "" {
				t.Errorf("RecentMessages (-want +got):\n%s", diff)
			}

			errCases := []struct {
				name, key, method string
				req               proto.Message
				code              connect.Code
				id                string
			}{
				{"missing group", e.Key, "CreateConversation", &pb.CreateConversationRequest{Topic: "t"}, connect.CodeInvalidArgument, "MISSING_GROUP_ID"},
				{"other tenant", e.OtherKey, "ReadConversation", &pb.ReadConversationRequest{Id: conv.GetId()}, connect.CodeNotFound, "NOT_FOUND"},
				{"wrong group", e.Key, "ReadConversation", &pb.ReadConversationRequest{Id: conv.GetId(), GroupId: wrapperspb.String("nope")}, connect.CodeNotFound, "NOT_FOUND"},
				{"no key", "", "ReadConversation", &pb.ReadConversationRequest{Id: conv.GetId()}, connect.CodeUnauthenticated, "UNAUTHORIZED"},
				{"revoked key", e.Revoked, "ReadConversation", &pb.ReadConversationRequest{Id: conv.GetId()}, connect.CodeUnauthenticated, "UNAUTHORIZED"},
				{"conflict", e.Key, "CreateMessage", &pb.CreateMessageRequest{Id: sent[0].GetId(), ConversationId: conv.GetId(), AuthorId: "ann", Text: "changed"}, connect.CodeAlreadyExists, "CONFLICT"},
				{"negative limit", e.Key, "ListMessages", &pb.ListMessagesRequest{ConversationId: conv.GetId(), Limit: wrapperspb.Int32(-1)}, connect.CodeInvalidArgument, "BAD_REQUEST"},
				{"no ids", e.Key, "RecentMessages", &pb.RecentMessagesRequest{}, connect.CodeInvalidArgument, "MISSING_CONVERSATION_IDS"},
			}
			for _, tc := range errCases {
				res := proto.Clone(tc.req)
				proto.Reset(res)
				code, id, err := c.call(ctx, tc.key, tc.method, tc.req, res)
				if err == nil || code != tc.code || id != tc.id {
					t.Errorf("%s: got code %v id %q err %v, want code %v id %q", tc.name, code, id, err, tc.code, tc.id)
				}
			}

			var del pb.DeleteConversationResponse
			mustCall(t, c, e.Key, "DeleteConversation", &pb.DeleteConversationRequest{Id: conv.GetId()}, &del)
			code, _, _ := c.call(ctx, e.Key, "ReadConversation", &pb.ReadConversationRequest{Id: conv.GetId()}, &pb.ReadConversationResponse{})
			if code != connect.CodeNotFound {
				t.Errorf("read after delete: code %v, want NotFound", code)
			}
		})
	}
}

func mustCall(t *testing.T, c rpcClient, key, method string, req, res proto.Message) {
	t.Helper()
	if _, _, err := c.call(context.Background(), key, method, req, res); err != nil {
		t.Fatalf("%s over %s: %v", method, c.name, err)
	}
}
