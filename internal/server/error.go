package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
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
	_, _ = w.Write(body) // a failed write means the client left
}
