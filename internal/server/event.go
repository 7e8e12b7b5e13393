package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
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

// streams counts open streams per key and ends them all at shutdown.
type streams struct {
	max    int
	mu     sync.Mutex
	perKey map[string]int
	// shutdown ends with StopStreams; each stream's context follows it
	// through context.AfterFunc, with no goroutine per stream.
	shutdown context.Context
	stop     context.CancelFunc
}

func newStreams(max int) *streams {
	if max <= 0 {
		max = DefaultMaxStreamsPerKey
	}
	ctx, stop := context.WithCancel(context.Background())
	return &streams{max: max, perKey: map[string]int{}, shutdown: ctx, stop: stop}
}

func (st *streams) acquire(keyID string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.perKey[keyID] >= st.max {
		return threads.Errorf(threads.ERATELIMITED, "this key already has %d open event streams", st.max)
	}
	st.perKey[keyID]++
	return nil
}

func (st *streams) release(keyID string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.perKey[keyID]--; st.perKey[keyID] <= 0 {
		delete(st.perKey, keyID)
	}
}

// StopStreams ends every open event stream (their clients resume on
// another replica, or on this one after restart). Register it with
// http.Server.RegisterOnShutdown: Shutdown does not wait for streams, which
// never go idle by themselves.
func (s *Server) StopStreams() { s.streams.stop() }

// stream is one open subscription with its limits applied.
type stream struct {
	*broker.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	close  func()
	// stillValid is checked at each heartbeat, so a stream opened with a
	// key that is revoked since ends within one heartbeat interval.
	stillValid func(context.Context) error
}

// openStream authenticates, validates the filters and the cursor, counts
// the stream against its key and subscribes. The stream's context ends
// with the client, at the maximum lifetime, or at shutdown.
func (s *Server) openStream(ctx context.Context, h, limits http.Header, convIDs []string, groupID, after string) (*stream, error) {
	if s.broker == nil {
		return nil, threads.Errorf(threads.EUNAVAILABLE, "live events are not enabled on this server")
	}
	tenant, key, err := s.authenticate(ctx, h)
	if err != nil {
		return nil, err
	}
	if err := s.limiter.allow(key.ID, limits); err != nil {
		return nil, err
	}
	f, err := threads.NewEventFilter(convIDs, groupID)
	if err != nil {
		return nil, err
	}
	cursor, err := threads.ParseEventCursor(after)
	if err != nil {
		return nil, err
	}
	if err := s.streams.acquire(key.ID); err != nil {
		return nil, err
	}
	sub, err := s.broker.Subscribe(ctx, tenant, f, cursor)
	if err != nil {
		s.streams.release(key.ID)
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, s.lifetime)
	unhook := context.AfterFunc(s.streams.shutdown, cancel)
	return &stream{Subscription: sub, ctx: sctx, cancel: cancel, close: func() {
		unhook()
		cancel()
		sub.Close()
		s.streams.release(key.ID)
	}, stillValid: func(ctx context.Context) error {
		// A database that is away keeps the stream: it delivers nothing
		// new until the database is back anyway.
		k, err := s.store.FindKey(ctx, key.Hash)
		if threads.ErrorCode(err) == threads.ENOTFOUND || err == nil && k.Revoked() {
			return threads.Errorf(threads.EUNAUTHORIZED, "API key has been revoked")
		}
		return nil
	}}, nil
}

// next returns the stream's next event, or a heartbeat event (carrying a
// fresh cursor) when none came for a heartbeat interval. It returns an
// error when the stream must end.
func (st *stream) next(heartbeat time.Duration) (*threads.Event, error) {
	ctx, cancel := context.WithTimeout(st.ctx, heartbeat)
	defer cancel()
	e, err := st.Next(ctx)
	if err != nil && st.ctx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if err := st.stillValid(st.ctx); err != nil {
			return nil, err
		}
		return &threads.Event{Type: eventHeartbeat, Cursor: st.Cursor()}, nil
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
