package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
)

// Stream limits; Config overrides them.
const (
	DefaultMaxStreamsPerKey = 100
	DefaultHeartbeat        = 15 * time.Second
	DefaultStreamLifetime   = time.Hour
	// DefaultStreamWriteTimeout bounds one write to a stream: a client
	// that stops reading is cut off instead of holding a goroutine and a
	// buffer.
	DefaultStreamWriteTimeout = 15 * time.Second
)

// StopStreams ends every open event stream (their clients resume on
// another replica, or on this one after restart). Register it with
// http.Server.RegisterOnShutdown: Shutdown does not wait for streams, which
// never go idle by themselves.
func (s *Server) StopStreams() { s.streams.stop() }

// stream is one open subscription with its limits applied.
type stream struct {
	threads.Subscription
	// ctx ends with the client, at the stream's lifetime, at shutdown,
	// or with a cause (errKeyRevoked) when its key stops authenticating.
	ctx   context.Context
	close func()
}

// openStream authenticates, validates the filters and the cursor, counts
// the stream against its key and subscribes. Opening is bounded by the
// request timeout, as any call is (a database cut off without a word must
// not hold it); the stream's context then ends with the client, at the
// maximum lifetime, at shutdown, or when the key is revoked
// (streams.watch).
func (s *Server) openStream(ctx context.Context, h, limits http.Header, convIDs []string, groupID, after string) (*stream, error) {
	if s.events == nil {
		return nil, threads.Errorf(threads.EUNAVAILABLE, "live events are not enabled on this server")
	}
	octx, done := context.WithTimeout(ctx, s.requestTimeout)
	defer done()
	actx, key, err := s.admit(octx, h, limits)
	if err != nil {
		return nil, err
	}
	tenant, err := tenantFrom(actx)
	if err != nil {
		return nil, err
	}
	f, err := threads.NewEventFilter(convIDs, groupID)
	if err != nil {
		return nil, err
	}
	cursor, err := threads.ParseEventCursorFor(after, tenant)
	if err != nil {
		return nil, err
	}
	cctx, revoke := context.WithCancelCause(ctx)
	release, err := s.streams.acquire(key, revoke)
	if err != nil {
		revoke(nil)
		return nil, err
	}
	sub, err := s.events.Subscribe(octx, tenant, f, cursor)
	if err != nil {
		release()
		revoke(nil)
		return nil, err
	}
	sctx, cancel := context.WithTimeout(cctx, s.lifetime)
	unhook := context.AfterFunc(s.streams.shutdown, cancel)
	return &stream{Subscription: sub, ctx: sctx, close: func() {
		unhook()
		cancel()
		revoke(nil)
		sub.Close()
		release()
	}}, nil
}

// keyValid reports whether key still authenticates, through the key
// cache: a revocation is seen within the cache's TTL.
func (s *Server) keyValid(ctx context.Context, key *threads.Key) (bool, error) {
	k, err := s.keys.find(ctx, s.store, key.Hash)
	if threads.ErrorCode(err) == threads.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !k.Revoked(), nil
}

// next returns the stream's next event, or a heartbeat event (carrying a
// fresh cursor) when none came for a heartbeat interval. It returns an
// error when the stream must end: the cause the stream was ended with
// (a revoked key), or the context's error.
func (st *stream) next(heartbeat time.Duration) (*threads.Event, error) {
	ctx, cancel := context.WithTimeout(st.ctx, heartbeat)
	defer cancel()
	e, err := st.Next(ctx)
	if err != nil && st.ctx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &threads.Event{Type: eventHeartbeat, Cursor: st.Cursor()}, nil
	}
	if err != nil && st.ctx.Err() != nil {
		var te *threads.Error
		if cause := context.Cause(st.ctx); errors.As(cause, &te) {
			return nil, te
		}
	}
	return e, err
}

// eventHeartbeat is a stream-only type: nothing happened; here is a fresh
// cursor to resume from.
const eventHeartbeat = "heartbeat"

func pbEvent(e *threads.Event) *pb.Event {
	out := &pb.Event{Cursor: e.Cursor.Token(), Type: e.Type}
	if e.Conversation != nil {
		out.Conversation = pbConversation(e.Conversation)
	}
	if e.Message != nil {
		out.Message = pbMessage(e.Message)
	}
	return out
}

// appendEvent renders an event's data: its type, its cursor, and the
// object in the API's JSON shape under the key the API uses for it.
func appendEvent(b []byte, e *pb.Event) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, e.GetType())
	b = append(b, `,"cursor":`...)
	b = appendString(b, e.GetCursor())
	if c := e.GetConversation(); c != nil {
		b = append(b, `,"conversation":`...)
		b = appendConversation(b, c)
	}
	if m := e.GetMessage(); m != nil {
		b = append(b, `,"message":`...)
		b = appendMessage(b, m)
	}
	return append(b, '}')
}
