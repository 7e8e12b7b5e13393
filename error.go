package threads

import (
	"errors"
	"fmt"
)

// Error codes. Each names one row of the error table in internal/server,
// which maps it to an HTTP status, a go-micro envelope and a gRPC code.
// They are the "id" values clients see when no more specific id is set.
const (
	EBADREQUEST   = "BAD_REQUEST"
	EUNAUTHORIZED = "UNAUTHORIZED"
	EFORBIDDEN    = "FORBIDDEN"
	ENOTFOUND     = "NOT_FOUND"
	ECONFLICT     = "CONFLICT"
	ETOOLARGE     = "TOO_LARGE"
	ERATELIMITED  = "RATE_LIMITED"
	EUNAVAILABLE  = "UNAVAILABLE"
	EINTERNAL     = "INTERNAL"
)

// Error is the one error type the domain returns. Code picks the row of the
// error table; ID is the m3o error id (MISSING_GROUP_ID, …) when it is more
// specific than the code; Detail is safe to show to clients. Err keeps the
// cause for logs and is never shown.
type Error struct {
	Code   string
	ID     string
	Detail string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.id(), e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.id(), e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) id() string {
	if e.ID != "" {
		return e.ID
	}
	return e.Code
}

// Errorf returns an *Error with the given code and a formatted detail.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected error. Its detail is fixed so that internal
// text (SQL, paths, driver messages) never reaches a client.
func Internal(err error) *Error {
	return &Error{Code: EINTERNAL, Detail: "internal error", Err: err}
}

// Unavailable wraps an error that means the database cannot be reached.
func Unavailable(err error) *Error {
	return &Error{Code: EUNAVAILABLE, Detail: "database unavailable, try again", Err: err}
}

// ErrorCode returns the code of err: the *Error's code, "" for nil, and
// EINTERNAL for any other error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorID returns the m3o error id of err (its ID, or else its code).
func ErrorID(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.id()
	}
	return EINTERNAL
}

// The seed's errors, with the seed's ids and details.
var (
	ErrMissingID              = &Error{Code: EBADREQUEST, ID: "MISSING_ID", Detail: "Missing ID"}
	ErrMissingGroupID         = &Error{Code: EBADREQUEST, ID: "MISSING_GROUP_ID", Detail: "Missing GroupID"}
	ErrMissingTopic           = &Error{Code: EBADREQUEST, ID: "MISSING_TOPIC", Detail: "Missing Topic"}
	ErrMissingAuthorID        = &Error{Code: EBADREQUEST, ID: "MISSING_AUTHOR_ID", Detail: "Missing Author ID"}
	ErrMissingText            = &Error{Code: EBADREQUEST, ID: "MISSING_TEXT", Detail: "Missing text"}
	ErrMissingConversationID  = &Error{Code: EBADREQUEST, ID: "MISSING_CONVERSATION_ID", Detail: "Missing Conversation ID"}
	ErrMissingConversationIDs = &Error{Code: EBADREQUEST, ID: "MISSING_CONVERSATION_IDS", Detail: "One or more Conversation IDs are required"}
	ErrConversationNotFound   = &Error{Code: ENOTFOUND, ID: "NOT_FOUND", Detail: "Conversation not found"}
	ErrKeyNotFound            = &Error{Code: ENOTFOUND, ID: "NOT_FOUND", Detail: "Key not found"}
)
