package server

import (
	"context"

	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The handlers below are the one implementation of each method. Connect,
// gRPC and gRPC-Web reach them through connect-go; the m3o JSON routes
// through m3o.go. They return domain errors; each protocol renders them.

func (s *Server) CreateConversation(ctx context.Context, req *pb.CreateConversationRequest) (*pb.CreateConversationResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	c := &threads.Conversation{ID: s.newID(), GroupID: req.GetGroupId(), Topic: req.GetTopic()}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := s.store.CreateConversation(ctx, tenant, c); err != nil {
		return nil, err
	}
	return &pb.CreateConversationResponse{Conversation: pbConversation(c)}, nil
}

func (s *Server) ReadConversation(ctx context.Context, req *pb.ReadConversationRequest) (*pb.ReadConversationResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	id, group := req.GetId(), req.GetGroupId().GetValue()
	if err := threads.ValidateConversationID("id", id, threads.ErrMissingID); err != nil {
		return nil, err
	}
	if err := threads.ValidateConversationID("group_id", group, nil); err != nil {
		return nil, err
	}
	c, err := s.store.FindConversation(ctx, tenant, id, group)
	if err != nil {
		return nil, err
	}
	return &pb.ReadConversationResponse{Conversation: pbConversation(c)}, nil
}

func (s *Server) UpdateConversation(ctx context.Context, req *pb.UpdateConversationRequest) (*pb.UpdateConversationResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	id, topic := req.GetId(), req.GetTopic()
	if err := threads.ValidateConversationID("id", id, threads.ErrMissingID); err != nil {
		return nil, err
	}
	if err := threads.ValidateTopic(topic); err != nil {
		return nil, err
	}
	c, err := s.store.UpdateConversation(ctx, tenant, id, topic)
	if err != nil {
		return nil, err
	}
	return &pb.UpdateConversationResponse{Conversation: pbConversation(c)}, nil
}

func (s *Server) DeleteConversation(ctx context.Context, req *pb.DeleteConversationRequest) (*pb.DeleteConversationResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := threads.ValidateConversationID("id", req.GetId(), threads.ErrMissingID); err != nil {
		return nil, err
	}
	if err := s.store.DeleteConversation(ctx, tenant, req.GetId()); err != nil {
		return nil, err
	}
	return &pb.DeleteConversationResponse{}, nil
}

func (s *Server) ListConversations(ctx context.Context, req *pb.ListConversationsRequest) (*pb.ListConversationsResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	f, err := threads.NewConversationFilter(req.GetGroupId(), int32Ptr(req.GetLimit()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	cs, next, err := s.store.ListConversations(ctx, tenant, f)
	if err != nil {
		return nil, err
	}
	res := &pb.ListConversationsResponse{Conversations: make([]*pb.Conversation, len(cs)), NextPageToken: next.Token()}
	for i, c := range cs {
		res.Conversations[i] = pbConversation(c)
	}
	return res, nil
}

func pbConversation(c *threads.Conversation) *pb.Conversation {
	return &pb.Conversation{Id: c.ID, GroupId: c.GroupID, Topic: c.Topic, CreatedAt: timestamppb.New(c.CreatedAt)}
}
