// Package threads holds the domain of the threads service: conversations
// grouped by topic, the messages in them, the tenants and keys that own
// them, and the rules every storage engine and protocol must keep.
//
// It depends on the standard library only. Storage engines live in
// internal/sqlite (and later internal/postgres), protocols in
// internal/server, and cmd/threads wires them together.
package threads

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Documented bounds. Anything longer is BAD_REQUEST; see docs/api.md.
const (
	MaxIDBytes     = 256       // any id: conversation, group, author, message, tenant
	MaxTopicBytes  = 1024      // a conversation's topic
	MaxTextBytes   = 64 * 1024 // a message's text
	MaxBodyBytes   = 1 << 20   // a request body
	MaxTenantBytes = 64        // a tenant name

	DefaultMessageLimit      = 25
	MaxMessageLimit          = 200
	MaxRecentConversations   = 100
	DefaultConversationLimit = 1000
	MaxConversationLimit     = 1000
)

// Store is everything a storage engine provides. One behaviour suite,
// internal/storetest, runs against every implementation.
type Store interface {
	ConversationStore
	MessageStore
	KeyStore
	EventStore
	// Ping reports whether the database answers; /readyz uses it.
	Ping(ctx context.Context) error
	Close() error
}

// Micros returns t in unix microseconds. Timestamps are kept at
// microsecond precision: it is what the API shows (six fractional digits)
// and what both engines store exactly, so a value returned by a create
// call is the value read back later.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// FromMicros is the inverse of Micros, in UTC.
func FromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// FormatTime renders t the way every JSON response does: RFC 3339, UTC,
// exactly six fractional digits.
func FormatTime(t time.Time) string { return string(AppendTime(nil, t)) }

// AppendTime appends FormatTime(t) to b, for encoders that build a
// response in one buffer.
func AppendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
}

// validateID checks an identifier supplied by a client: present (when
// required), at most MaxIDBytes, valid UTF-8, and free of control
// characters, so that it prints, logs and compares safely.
func validateID(field, v string, missing *Error) error {
	if v == "" {
		if missing != nil {
			return missing
		}
		return nil
	}
	if len(v) > MaxIDBytes {
		return Errorf(EBADREQUEST, "%s is longer than %d bytes", field, MaxIDBytes)
	}
	if !utf8.ValidString(v) {
		return Errorf(EBADREQUEST, "%s is not valid UTF-8", field)
	}
	if strings.IndexFunc(v, isControl) >= 0 {
		return Errorf(EBADREQUEST, "%s contains a control character", field)
	}
	return nil
}

// validateText checks free text (a topic or a message): at most max bytes,
// valid UTF-8, and no NUL or other control characters except tab, newline
// and carriage return.
func validateText(field, v string, max int) error {
	if len(v) > max {
		return Errorf(EBADREQUEST, "%s is longer than %d bytes", field, max)
	}
	if !utf8.ValidString(v) {
		return Errorf(EBADREQUEST, "%s is not valid UTF-8", field)
	}
	if strings.IndexFunc(v, func(r rune) bool {
		return r != '\t' && r != '\n' && r != '\r' && isControl(r)
	}) >= 0 {
		return Errorf(EBADREQUEST, "%s contains a control character", field)
	}
	return nil
}

// isControl is Unicode's Cc: C0 controls, DEL and the C1 controls
// (U+0080–U+009F, among them CSI and NEL, which terminals and log viewers
// act on).
func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }

// clampLimit applies the default and the ceiling to a page size, and
// refuses a negative one. A nil limit means "not given".
func clampLimit(field string, limit *int32, def, max int) (int, error) {
	if limit == nil {
		return def, nil
	}
	n := int(*limit)
	switch {
	case n < 0:
		return 0, Errorf(EBADREQUEST, "%s must not be negative", field)
	case n == 0:
		return def, nil
	case n > max:
		return max, nil
	}
	return n, nil
}

// CheckTenant validates a tenant name: 1–64 bytes of letters, digits, '.',
// '_' and '-'.
func CheckTenant(name string) error {
	if name == "" || len(name) > MaxTenantBytes {
		return fmt.Errorf("tenant must be 1 to %d bytes", MaxTenantBytes)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("tenant %q may use only letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}
