package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
)

// serveEvents is GET /v1/threads/events: the subscription as Server-Sent
// Events (DESIGN §4). Filters are query parameters (conversation_id,
// repeatable; group_id); the cursor is the Last-Event-ID header, which
// browsers' EventSource sends by itself when it reconnects, or ?after=.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := r.URL.Query()
	after := r.Header.Get("Last-Event-ID")
	if after == "" {
		after = q.Get("after")
	}
	st, err := s.openStream(r.Context(), r.Header, w.Header(), q["conversation_id"], q.Get("group_id"), after)
	if e := s.finish(r.Context(), "Subscribe", "sse", start, err); e != nil {
		writeError(w, e)
		return
	}
	defer st.close()

	rc := http.NewResponseController(w)
	liftDeadlines(rc)
	defer s.lastWrite(rc)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	// First a cursor, so that a client that drops before any event still
	// resumes from here rather than from "now" at its reconnection.
	buf := make([]byte, 0, 1024)
	buf = append(buf, "retry: 2000\nid: "...)
	buf = append(buf, st.Cursor().Token()...)
	buf = append(buf, "\n\n"...)
	out := buf
	unflushed := 0
	for {
		// Events already queued go out in the same flush: one system call
		// for a burst rather than one per event. The flush waits for
		// nothing but the writing of what is queued now.
		unflushed += len(out)
		flush := !st.Ready() || unflushed >= maxUnflushed
		if err := s.writeStream(rc, func() error {
			if _, err := w.Write(out); err != nil || !flush {
				return err
			}
			return rc.Flush()
		}); err != nil {
			return
		}
		if flush {
			unflushed = 0
		}
		e, err := st.next(s.heartbeat)
		if err != nil {
			s.endStream(r.Context(), err)
			return
		}
		if e.Type == eventHeartbeat || e.Type == threads.EventResyncRequired {
			buf = appendSSE(buf[:0], e)
			out = buf
		} else {
			out = s.rendered.sse(e)
		}
	}
}

// renderCache renders each event once for every stream that sends it: the
// broker hands the same *threads.Event to all the subscribers of a tenant,
// so with thousands of them the JSON and the SSE framing are made once,
// not thousands of times. It holds the last renderCacheSize events, and
// no more than renderCacheBytes of them (4096 events of 64 KiB messages
// would pin half a gigabyte); rendered bytes are never modified after
// they are stored.
type renderCache struct {
	mu    sync.Mutex
	m     map[*threads.Event][]byte
	ring  [renderCacheSize]*threads.Event // oldest at ring[first], count of them
	first int
	count int
	bytes int
}

const (
	renderCacheSize  = 4096
	renderCacheBytes = 16 << 20
)

func (c *renderCache) sse(e *threads.Event) []byte {
	c.mu.Lock()
	b, ok := c.m[e]
	c.mu.Unlock()
	if ok {
		return b
	}
	b = appendSSE(nil, e)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[e]; ok {
		return b // rendered meanwhile by another stream
	}
	if c.m == nil {
		c.m = make(map[*threads.Event][]byte, renderCacheSize)
	}
	for c.count > 0 && (c.count == renderCacheSize || c.bytes+len(b) > renderCacheBytes) {
		old := c.ring[c.first]
		c.bytes -= len(c.m[old])
		delete(c.m, old)
		c.ring[c.first] = nil
		c.first = (c.first + 1) % renderCacheSize
		c.count--
	}
	c.ring[(c.first+c.count)%renderCacheSize], c.m[e] = e, b
	c.count++
	c.bytes += len(b)
	return b
}

// appendSSE renders one event. A heartbeat is a comment and an id with no
// data: EventSource updates its Last-Event-ID without firing an event.
func appendSSE(b []byte, e *threads.Event) []byte {
	if e.Type == eventHeartbeat {
		b = append(b, ": heartbeat\nid: "...)
		b = append(b, e.Cursor.Token()...)
		return append(b, "\n\n"...)
	}
	pe := pbEvent(e)
	b = append(b, "id: "...)
	b = append(b, pe.Cursor...)
	b = append(b, "\nevent: "...)
	b = append(b, pe.Type...)
	b = append(b, "\ndata: "...)
	b = appendEvent(b, pe) // one line: appendString escapes newlines
	return append(b, "\n\n"...)
}

// maxUnflushed bounds what a stream writes before it flushes, when
// events keep coming.
const maxUnflushed = 32 << 10

// liftDeadlines lifts the server's read and write timeouts, which are
// for requests, from a stream that has opened, which lives longer: its
// request is read, and each write gets its own deadline (writeStream).
// Before the stream opens they stay: a client that never finishes
// sending its request is cut off like any other.
func liftDeadlines(rc *http.ResponseController) {
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
}

// lastWrite bounds what is written after a stream ends (the chunked
// terminator, Connect's end-of-stream message, gRPC's trailers): a client
// that stopped reading must not hold the connection, or Shutdown, then.
func (s *Server) lastWrite(rc *http.ResponseController) {
	rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
}

// writeStream runs write (a write and perhaps a flush) under the
// per-write deadline, so a client that stops reading is cut off, and
// clears the deadline after: a stream waiting for its next event has
// none. (On HTTP/2 a deadline left set resets the stream when it passes,
// even with nothing being written: idle streams died after 15 s.)
func (s *Server) writeStream(rc *http.ResponseController, write func() error) error {
	rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	if err := write(); err != nil {
		return err
	}
	rc.SetWriteDeadline(time.Time{})
	return nil
}

// endStream logs why a stream ended when the operator should know.
func (s *Server) endStream(ctx context.Context, err error) {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case threads.ErrorCode(err) == threads.EUNAUTHORIZED:
		logFrom(ctx, s.log).Info("event stream ended: its key was revoked")
	case errors.Is(err, threads.ErrSubscriberDropped):
		logFrom(ctx, s.log).Info("event stream dropped: subscriber too slow")
	default:
		logFrom(ctx, s.log).Warn("event stream ended", "err", err)
	}
}

// Subscribe is the same subscription as a server-streaming RPC. Streaming
// calls bypass the unary interceptor, so it authenticates through
// openStream like the SSE route.
func (s *Server) Subscribe(ctx context.Context, req *pb.SubscribeRequest, out *connect.ServerStream[pb.Event]) error {
	start := time.Now()
	call, ok := connect.CallInfoForHandlerContext(ctx)
	if !ok {
		return connectError(threads.Internal(errors.New("server: Subscribe without call info")))
	}
	st, err := s.openStream(ctx, call.RequestHeader(), out.ResponseHeader(), req.GetConversationIds(), req.GetGroupId(), req.GetAfter())
	if e := s.finish(ctx, "Subscribe", call.Peer().Protocol, start, err); e != nil {
		return connectError(e)
	}
	defer st.close()
	rc, _ := ctx.Value(streamControllerKey{}).(*http.ResponseController)
	if rc != nil {
		liftDeadlines(rc)
		defer s.lastWrite(rc)
	}
	send := func(e *threads.Event) error {
		if rc == nil {
			return out.Send(pbEvent(e))
		}
		return s.writeStream(rc, func() error { return out.Send(pbEvent(e)) })
	}
	// Like the SSE stream, start with a cursor to resume from.
	if err := send(&threads.Event{Type: eventHeartbeat, Cursor: st.Cursor()}); err != nil {
		return err
	}
	for {
		e, err := st.next(s.heartbeat)
		if err != nil {
			s.endStream(ctx, err)
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return connectError(domainError(err))
		}
		if err := send(e); err != nil {
			return err
		}
	}
}

// streamControllerKey carries a streaming RPC's response controller from
// the HTTP handler (serveStreamingRPC) to the method, which connect-go
// gives only a context.
type streamControllerKey struct{}

// serveStreamingRPC serves the server-streaming procedures: connect-go's
// handler, with the response controller handed to the method, which
// lifts the server's request timeouts once the stream is open and sets
// its per-write deadlines. Without it the server's WriteTimeout cut every
// Subscribe at 60 s.
func serveStreamingRPC(rpc http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rpc.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), streamControllerKey{}, rc)))
	}
}
