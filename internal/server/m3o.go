package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The m3o JSON routes are a thin adapter over the handlers Connect calls:
// they decode the body into the same request message, call the same
// method, and render the result (or the error envelope) in the m3o shape.

// m3oRoute serves one method on the m3o routes.
type m3oRoute struct {
	newRequest func() proto.Message
	call       func(context.Context, proto.Message) (proto.Message, error)
	// encode appends the answer in m3o's JSON; TestM3OEncodersMatchProtoJSON
	// holds it to protojson's, field by field.
	encode func(dst []byte, res proto.Message) []byte
}

// m3oAdapt builds the route of a handler and its answer's encoder.
func m3oAdapt[Req, Res proto.Message](call func(context.Context, Req) (Res, error), encode func([]byte, Res) []byte) m3oRoute {
	var zero Req
	typ := zero.ProtoReflect().Type()
	return m3oRoute{
		newRequest: func() proto.Message { return typ.New().Interface() },
		call: func(ctx context.Context, req proto.Message) (proto.Message, error) {
			return call(ctx, req.(Req))
		},
		encode: func(dst []byte, res proto.Message) []byte { return encode(dst, res.(Res)) },
	}
}

var jsonIn = protojson.UnmarshalOptions{DiscardUnknown: true}

// decodeRequest parses an m3o request body. protojson accepts snake_case
// and lowerCamelCase names, plain values for wrapper fields, quoted
// integers (as m3o's generated clients sent them) and null for "unset". An
// empty body is an empty request (curl -d "" sends one).
func decodeRequest(body []byte, m proto.Message) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if err := jsonIn.Unmarshal(body, m); err != nil {
		return threads.Errorf(threads.EBADREQUEST, "invalid JSON request body: %s", explainDecode(body, m, err))
	}
	return nil
}

// explainDecode names the field that made a body fail to decode. Only the
// error path pays for it: each top-level field is decoded on its own until
// one fails. protojson's own message names the wrapper's inner "value" or
// no field at all for wrappers and timestamps.
func explainDecode(body []byte, m proto.Message, err error) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil {
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		md := m.ProtoReflect().Descriptor()
		for _, k := range names {
			fd := md.Fields().ByJSONName(k)
			if fd == nil {
				fd = md.Fields().ByTextName(k)
			}
			if fd == nil {
				continue // unknown fields are ignored
			}
			one, _ := json.Marshal(map[string]json.RawMessage{k: fields[k]})
			if jsonIn.Unmarshal(one, m.ProtoReflect().New().Interface()) != nil {
				return fmt.Sprintf("%s: invalid value (expected %s)", fd.TextName(), kindName(fd))
			}
		}
	}
	// Not an object, or broken syntax: protojson marks its messages
	// "proto:" (with a space or a no-break space, chosen at random to keep
	// callers from parsing them); the rest gives the position.
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "proto:"), "\u00a0")
	return strings.TrimSpace(msg)
}

// kindName describes a field's JSON type for error details.
func kindName(fd protoreflect.FieldDescriptor) string {
	if fd.IsList() {
		return "a list"
	}
	if fd.Kind() == protoreflect.MessageKind {
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			return "an RFC 3339 timestamp"
		case "google.protobuf.StringValue":
			return "a string"
		case "google.protobuf.Int32Value":
			return "a 32-bit integer"
		}
		return "an object"
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		return "an integer"
	}
	return fd.Kind().String()
}

// m3oRoutes maps each method of the service to its route. The proto's
// service descriptor is the list of methods: New refuses to start when a
// unary method has no route here or a route no method (checkRoutes), and
// TestEveryMethodIsServed checks the rest (isolation matrix, fuzz target,
// docs). Server-streaming methods have the SSE route instead.
func (s *Server) m3oRoutes() map[string]m3oRoute {
	return map[string]m3oRoute{
		"CreateConversation": m3oAdapt(s.CreateConversation, func(b []byte, r *pb.CreateConversationResponse) []byte {
			return appendConversationResponse(b, r.GetConversation())
		}),
		"ReadConversation": m3oAdapt(s.ReadConversation, func(b []byte, r *pb.ReadConversationResponse) []byte {
			return appendConversationResponse(b, r.GetConversation())
		}),
		"UpdateConversation": m3oAdapt(s.UpdateConversation, func(b []byte, r *pb.UpdateConversationResponse) []byte {
			return appendConversationResponse(b, r.GetConversation())
		}),
		"DeleteConversation": m3oAdapt(s.DeleteConversation, func(b []byte, _ *pb.DeleteConversationResponse) []byte {
			return append(b, "{}"...)
		}),
		"ListConversations": m3oAdapt(s.ListConversations, func(b []byte, r *pb.ListConversationsResponse) []byte {
			b = append(b, `{"conversations":`...)
			b = appendConversations(b, r.GetConversations())
			b = append(b, `,"next_page_token":`...)
			b = appendString(b, r.GetNextPageToken())
			return append(b, '}')
		}),
		"CreateMessage": m3oAdapt(s.CreateMessage, func(b []byte, r *pb.CreateMessageResponse) []byte {
			b = append(b, `{"message":`...)
			b = appendMessage(b, r.GetMessage())
			return append(b, '}')
		}),
		"ListMessages": m3oAdapt(s.ListMessages, func(b []byte, r *pb.ListMessagesResponse) []byte {
			return appendMessagesResponse(b, r.GetMessages())
		}),
		"RecentMessages": m3oAdapt(s.RecentMessages, func(b []byte, r *pb.RecentMessagesResponse) []byte {
			return appendMessagesResponse(b, r.GetMessages())
		}),
	}
}

// checkRoutes holds the routes to the service descriptor: every unary
// method has a route, and every route a method.
func checkRoutes(routes map[string]m3oRoute) error {
	methods := pb.File_threads_proto.Services().ByName("Threads").Methods()
	for i := range methods.Len() {
		m := methods.Get(i)
		if _, ok := routes[string(m.Name())]; !ok && !m.IsStreamingServer() {
			return fmt.Errorf("server: method %s has no m3o route", m.Name())
		}
	}
	for name := range routes {
		if m := methods.ByName(protoreflect.Name(name)); m == nil || m.IsStreamingServer() {
			return fmt.Errorf("server: m3o route %s is no unary method of the service", name)
		}
	}
	return nil
}

func appendConversationResponse(b []byte, c *pb.Conversation) []byte {
	b = append(b, `{"conversation":`...)
	b = appendConversation(b, c)
	return append(b, '}')
}

func appendMessagesResponse(b []byte, ms []*pb.Message) []byte {
	b = append(b, `{"messages":`...)
	b = appendMessages(b, ms)
	return append(b, '}')
}

// serve decodes body, calls the handler and appends the answer to dst
// (serveM3O passes the rest of the body's buffer).
func (r m3oRoute) serve(ctx context.Context, body, dst []byte) ([]byte, error) {
	req := r.newRequest()
	if err := decodeRequest(body, req); err != nil {
		return nil, err
	}
	res, err := r.call(ctx, req)
	if err != nil {
		return nil, err
	}
	return r.encode(dst, res), nil
}

// serveM3O serves POST /v1/threads/{method} and /threads/Threads/{method}.
func (s *Server) serveM3O(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("method")
	route, ok := s.m3o[name]
	if !ok {
		// Counted as "unknown": the caller's name is no label.
		writeError(w, s.finish(r.Context(), methodUnknown, "m3o", start,
			threads.Errorf(threads.ENOTFOUND, "unknown method %q", truncate(name, 64))))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, s.finish(r.Context(), name, "m3o", start, threads.Errorf(threads.EBADREQUEST, "use POST for %s", name)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
	defer cancel()
	ctx, _, err := s.admit(ctx, r.Header, w.Header())
	buf := getBuffer()
	defer putBuffer(buf)
	var body, out []byte
	if err == nil {
		body, err = readBody(w, r, *buf)
		var tooLarge *http.MaxBytesError
		if err != nil && !errors.As(err, &tooLarge) {
			// Cut off or too slow (the server's ReadTimeout): the client's
			// failure, not ours.
			err = &threads.Error{Code: threads.EBADREQUEST, Detail: "the request body was incomplete or too slow to arrive", Err: err}
		}
		if err == nil {
			// The answer goes after the body in the same buffer.
			out, err = route.serve(ctx, body, body[len(body):])
		}
	}
	if e := s.finish(ctx, name, "m3o", start, err); e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, out)
	// Keep the larger array for the next request: the body's (the answer
	// follows it there), or a new one the answer grew into.
	if cap(out) > cap(body) {
		*buf = out[:0]
	} else {
		*buf = body[:0]
	}
}

// buffers hold a request's body and its answer, reused across requests:
// a page of 25 messages is about 6 KiB, and growing a fresh slice to that
// size, then collecting it, was a tenth of ListMessages' CPU under load.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

// putBuffer keeps buffers of up to 256 KiB; a rare huge answer (100
// conversations' recent messages) is left to the collector rather than
// pinned for good.
func putBuffer(b *[]byte) {
	if cap(*b) <= 256<<10 {
		*b = (*b)[:0]
		buffers.Put(b)
	}
}

// readBody reads the request body, at most threads.MaxBodyBytes of it,
// into dst.
func readBody(w http.ResponseWriter, r *http.Request, dst []byte) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, threads.MaxBodyBytes)
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := rd.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
