package threads

import (
	"context"
	"encoding/json"
	"math"
	"time"
)

// Message is one message in a conversation. Seq and SentAt are assigned by
// the store, together and under one lock per conversation: Seq counts
// 1, 2, 3, … with no gaps and SentAt strictly increases with it, so paging
// by SentAt can never skip or repeat a message.
type Message struct {
	ID             string
	ConversationID string
	AuthorID       string
	Text           string
	SentAt         time.Time
	Seq            int64
}

// Validate checks a message about to be created. ID may be empty (the
// server assigns one); when set it is the client's idempotency key.
func (m *Message) Validate() error {
	if err := validateID("author_id", m.AuthorID, ErrMissingAuthorID); err != nil {
		return err
	}
	if err := validateID("conversation_id", m.ConversationID, ErrMissingConversationID); err != nil {
		return err
	}
	if m.Text == "" {
		return ErrMissingText
	}
	if err := validateText("text", m.Text, MaxTextBytes); err != nil {
		return err
	}
	return validateID("id", m.ID, nil)
}

// SameContent reports whether a retry with m's content would be the same
// message as stored: same conversation, author and text.
func (m *Message) SameContent(stored *Message) bool {
	return m.ConversationID == stored.ConversationID && m.AuthorID == stored.AuthorID && m.Text == stored.Text
}

// ErrMessageConflict answers a client id reused for different content.
func ErrMessageConflict(id string) *Error {
	return Errorf(ECONFLICT, "message %q already exists with a different conversation, author or text", id)
}

// MessageFilter selects a page of a conversation's messages, newest first.
type MessageFilter struct {
	ConversationID string
	// SentBefore is exclusive, in unix microseconds; 0 means "newest".
	SentBefore int64
	Limit      int
}

// NewMessageFilter validates and normalizes ListMessages input. sentBefore
// is nil when the client sent none; limit is nil when the client sent none.
func NewMessageFilter(conversationID string, sentBefore *time.Time, limit *int32) (MessageFilter, error) {
	if err := validateID("conversation_id", conversationID, ErrMissingConversationID); err != nil {
		return MessageFilter{}, err
	}
	n, err := clampLimit("limit", limit, DefaultMessageLimit, MaxMessageLimit)
	if err != nil {
		return MessageFilter{}, err
	}
	f := MessageFilter{ConversationID: conversationID, Limit: n}
	if sentBefore != nil {
		f.SentBefore, err = sentBeforeMicros(*sentBefore)
		if err != nil {
			return MessageFilter{}, err
		}
	}
	return f, nil
}

// ReadBefore is the exclusive bound of the page in unix microseconds:
// SentBefore, or past every message for the newest page.
func (f MessageFilter) ReadBefore() int64 {
	if f.SentBefore == 0 {
		return math.MaxInt64
	}
	return f.SentBefore
}

// sentBeforeMicros converts an exclusive bound to microseconds, rounding
// up: a message stored at 10.123456 is before 10.1234561, so the bound
// becomes 10.123457, and no message is skipped by a finer client clock.
func sentBeforeMicros(t time.Time) (int64, error) {
	if t.Year() < 1970 || t.Year() > 9999 {
		return 0, Errorf(EBADREQUEST, "sent_before must be between 1970 and 9999")
	}
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	if us <= 0 {
		return 0, Errorf(EBADREQUEST, "sent_before must be after 1970-01-01T00:00:00Z")
	}
	return us, nil
}

// RecentFilter is the validated input of RecentMessages: which
// conversations, and how many of each one's newest messages. Make it with
// NewRecentFilter.
type RecentFilter struct {
	// ConversationIDs are 1–MaxRecentConversations valid ids, each once,
	// in the order the client sent them (the first of duplicates kept):
	// the answer follows this order.
	ConversationIDs []string
	// PerConversation is how many messages of each, 1–MaxMessageLimit
	// (DefaultMessageLimit when the client sent none or 0).
	PerConversation int
}

// NewRecentFilter validates RecentMessages input: 1–100 conversation ids,
// each valid, duplicates dropped (first one wins), and the per-conversation
// limit. limit is nil when the client sent none.
func NewRecentFilter(ids []string, limit *int32) (RecentFilter, error) {
	if len(ids) == 0 {
		return RecentFilter{}, ErrMissingConversationIDs
	}
	if len(ids) > MaxRecentConversations {
		return RecentFilter{}, Errorf(EBADREQUEST, "conversation_ids has %d ids, at most %d are allowed", len(ids), MaxRecentConversations)
	}
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := validateID("conversation_ids", id, ErrMissingConversationIDs); err != nil {
			return RecentFilter{}, err
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	n, err := clampLimit("limit_per_conversation", limit, DefaultMessageLimit, MaxMessageLimit)
	if err != nil {
		return RecentFilter{}, err
	}
	return RecentFilter{ConversationIDs: out, PerConversation: n}, nil
}

// MessageUpdate is an edit of a message (UpdateMessage): its text, its
// metadata, or both. A field left nil keeps what is stored. Validate
// checks it.
type MessageUpdate struct {
	// Text, when set, replaces the text: the rules of a new message's
	// text (not empty, at most MaxTextBytes).
	Text *string
	// Metadata, when set (not nil), replaces the metadata: a JSON object
	// that ValidateMetadata accepts ({} clears it).
	Metadata json.RawMessage
}

// Validate checks an edit: at least one of text and metadata (neither is
// MISSING_TEXT, the edit's required field since the seed), each within
// its bounds.
func (u *MessageUpdate) Validate() error {
	if u.Text == nil && u.Metadata == nil {
		return ErrMissingText
	}
	if u.Text != nil {
		if *u.Text == "" {
			return ErrMissingText
		}
		if err := validateText("text", *u.Text, MaxTextBytes); err != nil {
			return err
		}
	}
	if u.Metadata != nil {
		return ValidateMetadata(u.Metadata)
	}
	return nil
}

// ResolveMessageRetry answers a CreateMessage that stored nothing, on
// every engine alike: either attempt.ID is taken (by stored, the message
// stored under it) or attempt's conversation is missing. With no stored
// message the id is free, so the conversation is missing: NOT_FOUND.
// Stored with other content is CONFLICT. Stored with the same content is
// a retry, answered with the stored message if its conversation is still
// there (conversationExists, asked only then); a deleted one, still being
// purged, is NOT_FOUND, as for a new message.
func ResolveMessageRetry(attempt, stored *Message, conversationExists func() (bool, error)) (*Message, error) {
	if stored == nil {
		return nil, ErrConversationNotFound
	}
	if !attempt.SameContent(stored) {
		return nil, ErrMessageConflict(attempt.ID)
	}
	ok, err := conversationExists()
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, ErrConversationNotFound
	}
	return stored, nil
}

// MessageStore keeps messages. Every method acts inside one tenant.
type MessageStore interface {
	// CreateMessage stores m in its conversation, assigning Seq and SentAt,
	// and returns the stored message. When a message with m.ID already
	// exists in the tenant it returns that message if SameContent holds and
	// ECONFLICT otherwise; concurrent calls with one id store one message.
	// A missing conversation is ENOTFOUND.
	CreateMessage(ctx context.Context, tenant string, m *Message) (*Message, error)
	// ListMessages returns up to f.Limit messages sent before f.SentBefore,
	// newest first. A missing conversation is ENOTFOUND.
	ListMessages(ctx context.Context, tenant string, f MessageFilter) ([]*Message, error)
	// RecentMessages returns, for each of f.ConversationIDs in order, its
	// newest f.PerConversation messages, newest first, in one flat list,
	// using one query. Unknown ids contribute nothing.
	RecentMessages(ctx context.Context, tenant string, f RecentFilter) ([]*Message, error)
}
