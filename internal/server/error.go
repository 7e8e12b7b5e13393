package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// errorRow is one row of the error table: how a domain error code is
// answered on each protocol.
type errorRow struct {
	status int          // HTTP status on the m3o JSON routes
	code   connect.Code // gRPC / Connect code
	// retryAfter, when not 0, is the Retry-After (seconds) of every
	// answer with this code on every protocol, unless the error names its
	// own wait (a retryAfter in its Err).
	retryAfter int
}

// errorTable is the one place where domain errors meet protocols.
var errorTable = map[string]errorRow{
	threads.EBADREQUEST:   {http.StatusBadRequest, connect.CodeInvalidArgument, 0},
	threads.EUNAUTHORIZED: {http.StatusUnauthorized, connect.CodeUnauthenticated, 0},
	threads.EFORBIDDEN:    {http.StatusForbidden, connect.CodePermissionDenied, 0},
	threads.ENOTFOUND:     {http.StatusNotFound, connect.CodeNotFound, 0},
	threads.ECONFLICT:     {http.StatusConflict, connect.CodeAlreadyExists, 0},
	threads.ETOOLARGE:     {http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted, 0},
	// The rate limiter names its own wait; the open-stream limit waits
	// for streams to end.
	threads.ERATELIMITED: {http.StatusTooManyRequests, connect.CodeResourceExhausted, RetryAfterRateLimited},
	threads.EUNAVAILABLE: {http.StatusServiceUnavailable, connect.CodeUnavailable, RetryAfterUnavailable},
	threads.EINTERNAL:    {http.StatusInternalServerError, connect.CodeInternal, 0},
}

// The Retry-After, in seconds, of RATE_LIMITED (when the rate limiter
// does not name its own wait: the open-stream limit) and of UNAVAILABLE.
const (
	RetryAfterRateLimited = 5
	RetryAfterUnavailable = 1
)

// retryAfter is a wait, in seconds, that an error names for itself: a
// *threads.Error carries it in Err (the rate limiter's: until a token is
// back).
type retryAfter int

func (r retryAfter) Error() string { return fmt.Sprintf("retry after %ds", int(r)) }

// retryAfterOf returns the Retry-After of e in seconds, or 0 for none.
func retryAfterOf(e *threads.Error) int {
	var ra retryAfter
	if errors.As(e.Err, &ra) {
		return int(ra)
	}
	return rowFor(e).retryAfter
}

// errorIDHeader carries the m3o error id (MISSING_GROUP_ID, …) to gRPC and
// Connect clients, whose status codes are coarser.
const errorIDHeader = "Threads-Error-Id"

// domainError turns any error a handler can meet into a *threads.Error.
func domainError(err error) *threads.Error {
	var te *threads.Error
	var mbe *http.MaxBytesError
	var ce *connect.Error
	switch {
	case errors.As(err, &te):
		return te
	case errors.As(err, &mbe):
		return threads.Errorf(threads.ETOOLARGE, "request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &threads.Error{Code: threads.EUNAVAILABLE, Detail: "request canceled or timed out", Err: err}
	case errors.As(err, &ce) && ce.Code() == connect.CodeResourceExhausted:
		return threads.Errorf(threads.ETOOLARGE, "request is larger than %d bytes", threads.MaxBodyBytes)
	}
	return threads.Internal(err)
}

func rowFor(e *threads.Error) errorRow {
	if row, ok := errorTable[e.Code]; ok {
		return row
	}
	return errorTable[threads.EINTERNAL]
}

// connectError renders a domain error for gRPC and Connect clients.
func connectError(e *threads.Error) *connect.Error {
	ce := connect.NewError(rowFor(e).code, errors.New(e.Detail))
	ce.Meta().Set(errorIDHeader, threads.ErrorID(e))
	if ra := retryAfterOf(e); ra > 0 {
		ce.Meta().Set("Retry-After", strconv.Itoa(ra))
	}
	return ce
}

// envelope is the go-micro error body of the m3o routes.
func envelope(e *threads.Error) (status int, body []byte) {
	status = rowFor(e).status
	b := make([]byte, 0, 128)
	b = append(b, `{"id":`...)
	b = appendString(b, threads.ErrorID(e))
	b = append(b, `,"code":`...)
	b = appendInt(b, int64(status))
	b = append(b, `,"detail":`...)
	b = appendString(b, e.Detail)
	b = append(b, `,"status":`...)
	b = appendString(b, http.StatusText(status))
	b = append(b, '}')
	return status, b
}

// writeError answers an m3o route with the envelope.
func writeError(w http.ResponseWriter, e *threads.Error) {
	status, body := envelope(e)
	if ra := retryAfterOf(e); ra > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ra))
	}
	writeJSON(w, status, body)
}

// writeJSON writes a whole JSON answer. Its Content-Length is set, so
// that an answer larger than net/http's 2 KiB buffer (a page of messages)
// is not sent in chunked encoding.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

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
