package server

import (
	"context"
	"time"

	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func (s *Server) CreateMessage(ctx context.Context, req *pb.CreateMessageRequest) (*pb.CreateMessageResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	m := &threads.Message{
		ID:             req.GetId(),
		ConversationID: req.GetConversationId(),
		AuthorID:       req.GetAuthorId(),
		Text:           req.GetText(),
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.ID == "" {
		m.ID = s.newID()
	}
	stored, err := s.store.CreateMessage(ctx, tenant, m)
	if err != nil {
		return nil, err
	}
	return &pb.CreateMessageResponse{Message: pbMessage(stored)}, nil
}

func (s *Server) ListMessages(ctx context.Context, req *pb.ListMessagesRequest) (*pb.ListMessagesResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	var before *time.Time
	if ts := req.GetSentBefore(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return nil, threads.Errorf(threads.EBADREQUEST, "sent_before is not a valid timestamp")
		}
		t := ts.AsTime()
		before = &t
	}
	f, err := threads.NewMessageFilter(req.GetConversationId(), before, int32Ptr(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	ms, err := s.store.ListMessages(ctx, tenant, f)
	if err != nil {
		return nil, err
	}
	return &pb.ListMessagesResponse{Messages: pbMessages(ms)}, nil
}

func (s *Server) RecentMessages(ctx context.Context, req *pb.RecentMessagesRequest) (*pb.RecentMessagesResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	f, err := threads.NewRecentFilter(req.GetConversationIds(), int32Ptr(req.GetLimitPerConversation()))
	if err != nil {
		return nil, err
	}
	ms, err := s.store.RecentMessages(ctx, tenant, f)
	if err != nil {
		return nil, err
	}
	return &pb.RecentMessagesResponse{Messages: pbMessages(ms)}, nil
}

func pbMessage(m *threads.Message) *pb.Message {
	return &pb.Message{
		Id:             m.ID,
		AuthorId:       m.AuthorID,
		ConversationId: m.ConversationID,
		Text:           m.Text,
		SentAt:         timestamppb.New(m.SentAt),
		Seq:            m.Seq,
	}
}

func pbMessages(ms []*threads.Message) []*pb.Message {
	out := make([]*pb.Message, len(ms))
	for i, m := range ms {
		out[i] = pbMessage(m)
	}
	return out
}

// int32Ptr turns an optional wrapper into an optional value.
func int32Ptr(v *wrapperspb.Int32Value) *int32 {
	if v == nil {
		return nil
	}
	n := v.GetValue()
	return &n
}
