package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Request bodies that do not decode (Connect, gRPC, gRPC-Web).
//
// connect-go decodes a request before any interceptor runs, and answers a
// codec's failure itself: InvalidArgument, "unmarshal into *threadspb.…",
// without Threads-Error-Id, uncounted. decodeOptions puts our codecs in
// place of connect-go's "proto" and "json" ones. They decode the same way,
// but a request that does not decode is answered like every other
// BAD_REQUEST:
//
//   - a unary request is left empty with a mark (an unknown field holding
//     a per-process secret and the detail), and decodeInterceptor, the
//     innermost interceptor, refuses it after authentication, as the m3o
//     routes do; so it is counted and rendered by the one interceptor;
//   - a streaming request fails with a decodeError, which
//     decodeInterceptor's streaming half renders and counts.

// decodeOptions are the handler options that make undecodable requests
// BAD_REQUEST; they follow the server's interceptor.
func (s *Server) decodeOptions() connect.HandlerOption {
	return connect.WithHandlerOptions(
		connect.WithCodec(protoCodec{}),
		connect.WithCodec(jsonCodec{name: "json"}),
		connect.WithCodec(jsonCodec{name: "json; charset=utf-8"}),
		connect.WithInterceptors(decodeInterceptor{s}),
	)
}

// decodeError is a streaming request's decode failure.
type decodeError struct{ detail string }

func (e *decodeError) Error() string { return e.detail }

// decodeFailed handles a request that did not decode into m.
func decodeFailed(m proto.Message, detail string) error {
	if !unaryInputs[m.ProtoReflect().Descriptor().FullName()] {
		return &decodeError{detail}
	}
	proto.Reset(m)
	b := protowire.AppendTag(nil, protowire.MaxValidNumber, protowire.BytesType)
	b = protowire.AppendBytes(b, append(append([]byte(nil), decodeMark...), detail...))
	m.ProtoReflect().SetUnknown(b)
	return nil
}

// decodeFailure returns the detail marked on a unary request that did not
// decode.
func decodeFailure(m proto.Message) (string, bool) {
	u := m.ProtoReflect().GetUnknown()
	if len(u) == 0 {
		return "", false
	}
	num, typ, n := protowire.ConsumeTag(u)
	if n < 0 || num != protowire.MaxValidNumber || typ != protowire.BytesType {
		return "", false
	}
	v, k := protowire.ConsumeBytes(u[n:])
	if k < 0 || n+k != len(u) || !bytes.HasPrefix(v, decodeMark) {
		return "", false
	}
	return string(v[len(decodeMark):]), true
}

// decodeMark is the secret of the mark: a client cannot send it.
var decodeMark = func() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}()

// unaryInputs are the request types of unary methods only: for them
// decodeInterceptor's unary half is sure to see a marked request.
var unaryInputs = func() map[protoreflect.FullName]bool {
	unary, streamed := map[protoreflect.FullName]bool{}, map[protoreflect.FullName]bool{}
	ms := threadsService.Methods()
	for i := range ms.Len() {
		m := ms.Get(i)
		if m.IsStreamingClient() || m.IsStreamingServer() {
			streamed[m.Input().FullName()] = true
		} else {
			unary[m.Input().FullName()] = true
		}
	}
	for n := range streamed {
		delete(unary, n)
	}
	return unary
}()

// protoCodec is connect-go's "proto" codec, but for decode failures.
type protoCodec struct{}

func (protoCodec) Name() string { return "proto" }

func (protoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, errNotProto
	}
	return proto.Marshal(m)
}

func (protoCodec) MarshalAppend(dst []byte, v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, errNotProto
	}
	return proto.MarshalOptions{}.MarshalAppend(dst, m)
}

func (protoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return errNotProto
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return decodeFailed(m, "invalid protobuf request body: "+protoMessage(err, m))
	}
	return nil
}

// jsonCodec is connect-go's "json" codec (protojson, unknown fields
// ignored), but for decode failures, whose detail names the field as the
// m3o routes do.
type jsonCodec struct{ name string }

func (c jsonCodec) Name() string { return c.name }

func (jsonCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, errNotProto
	}
	return protojson.MarshalOptions{}.Marshal(m)
}

func (jsonCodec) MarshalAppend(dst []byte, v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, errNotProto
	}
	// Grow once to about the answer's size: protojson appends as it goes,
	// and a page of 16 MiB of JSON grown by doubling allocated 106 MiB.
	// Stored text escapes to at most twice its bytes (a tab, a quote,
	// U+2028; other control characters are refused), and the field names
	// are what the 512 bytes cover for a small answer.
	dst = slices.Grow(dst, 2*proto.Size(m)+512)
	return protojson.MarshalOptions{}.MarshalAppend(dst, m)
}

func (jsonCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return errNotProto
	}
	if len(data) == 0 {
		return decodeFailed(m, "invalid JSON request body: empty (send {} for an empty request)")
	}
	if err := jsonIn.Unmarshal(data, m); err != nil {
		return decodeFailed(m, "invalid JSON request body: "+explainDecode(data, m, err))
	}
	return nil
}

var errNotProto = errors.New("not a protobuf message")

// protoMessage is a protobuf error's text without its "proto:" mark and
// with field names relative to m.
func protoMessage(err error, m proto.Message) string {
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "proto:"), "\u00a0")
	msg = strings.ReplaceAll(msg, string(m.ProtoReflect().Descriptor().FullName())+".", "")
	return strings.TrimSpace(msg)
}

// decodeInterceptor refuses requests the codecs could not decode; it is
// the innermost interceptor, so the server's interceptor has
// authenticated, and counts and renders the refusal.
type decodeInterceptor struct{ s *Server }

func (d decodeInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if m, ok := req.Any().(proto.Message); ok {
			if detail, bad := decodeFailure(m); bad {
				return nil, threads.Errorf(threads.EBADREQUEST, "%s", detail)
			}
		}
		return next(ctx, req)
	}
}

func (decodeInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler renders a streaming request that did not decode
// (the handler never ran: no stream is open), and counts it.
func (d decodeInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		var de *decodeError
		if errors.As(err, &de) {
			proc := conn.Spec().Procedure
			return connectError(d.s.finish(ctx, proc[strings.LastIndexByte(proc, '/')+1:], conn.Peer().Protocol, start,
				threads.Errorf(threads.EBADREQUEST, "%s", de.detail)))
		}
		return err
	}
}
