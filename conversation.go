package threads

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Conversation is a thread of messages on one topic, inside a group.
// Groups are not stored on their own: a group is the set of conversations
// that share a GroupID.
type Conversation struct {
	ID        string
	GroupID   string
	Topic     string
	CreatedAt time.Time
}

// Validate checks a conversation about to be created.
func (c *Conversation) Validate() error {
	if err := validateID("group_id", c.GroupID, ErrMissingGroupID); err != nil {
		return err
	}
	if c.Topic == "" {
		return ErrMissingTopic
	}
	return validateText("topic", c.Topic, MaxTopicBytes)
}

// ValidateTopic checks a new topic for UpdateConversation.
func ValidateTopic(topic string) error {
	if topic == "" {
		return ErrMissingTopic
	}
	return validateText("topic", topic, MaxTopicBytes)
}

// ConversationUpdate is a change to a conversation (UpdateConversation):
// its topic, its metadata, or both. A field left nil keeps what is
// stored. Validate checks it.
type ConversationUpdate struct {
	// Topic, when set, replaces the topic: the rules of a new
	// conversation's topic (not empty, at most MaxTopicBytes).
	Topic *string
	// Metadata, when set (not nil), replaces the metadata: a JSON object
	// that ValidateMetadata accepts ({} clears it).
	Metadata json.RawMessage
}

// Validate checks a change: at least one of topic and metadata (neither
// is MISSING_TOPIC, UpdateConversation's required field since the seed),
// each within its bounds.
func (u *ConversationUpdate) Validate() error {
	if u.Topic == nil && u.Metadata == nil {
		return ErrMissingTopic
	}
	if u.Topic != nil {
		if err := ValidateTopic(*u.Topic); err != nil {
			return err
		}
	}
	if u.Metadata != nil {
		return ValidateMetadata(u.Metadata)
	}
	return nil
}

// InGroup reports whether c is found when looked for in groupID: any
// group when groupID is empty, else only its own. A conversation looked
// for in another group is NOT_FOUND, as if it did not exist.
func (c *Conversation) InGroup(groupID string) bool { return groupID == "" || c.GroupID == groupID }

// ValidateConversationID checks the id of a conversation to read, update
// or delete. missing is the error for an empty id, which differs by method
// in the seed (MISSING_ID or MISSING_CONVERSATION_ID).
func ValidateConversationID(field, id string, missing *Error) error {
	return validateID(field, id, missing)
}

// ConversationFilter selects a page of a group's conversations, newest
// first. After is the position to continue from (zero for the first page).
type ConversationFilter struct {
	GroupID string
	Limit   int
	After   ConversationCursor
}

// The page step of ListConversations, the same on every engine: read up
// to PageRows rows after ReadAfter, newest first (by created_at, then id),
// and hand them to Page.

// ReadAfter is the position the page starts after: f.After, or past the
// newest conversation for the first page.
func (f ConversationFilter) ReadAfter() ConversationCursor {
	if f.After.IsZero() {
		return ConversationCursor{CreatedAt: math.MaxInt64}
	}
	return f.After
}

// PageRows is how many rows to read for a page: one more than the page
// holds, which tells whether another page follows.
func (f ConversationFilter) PageRows() int { return f.Limit + 1 }

// Page cuts the rows read (at most PageRows, in list order) to the page
// and returns the next page's cursor: after the page's last conversation
// when a row was left over, zero when no more remain.
func (f ConversationFilter) Page(rows []*Conversation) ([]*Conversation, ConversationCursor) {
	if len(rows) <= f.Limit {
		return rows, ConversationCursor{}
	}
	page := rows[:f.Limit]
	last := page[len(page)-1]
	return page, ConversationCursor{CreatedAt: Micros(last.CreatedAt), ID: last.ID}
}

// ConversationCursor is a position in a group's list: the created_at and
// id of the last conversation returned. Ids break ties between
// conversations created in the same microsecond.
type ConversationCursor struct {
	CreatedAt int64 // unix microseconds; 0 means "from the start"
	ID        string
}

// IsZero reports whether c is the start of the list.
func (c ConversationCursor) IsZero() bool { return c.CreatedAt == 0 && c.ID == "" }

// Token encodes c as an opaque page token.
func (c ConversationCursor) Token() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt, 10) + ":" + c.ID))
}

// ParseConversationCursor decodes a page token made by Token.
func ParseConversationCursor(token string) (ConversationCursor, error) {
	if token == "" {
		return ConversationCursor{}, nil
	}
	bad := Errorf(EBADREQUEST, "page_token is not a token this server made")
	if len(token) > 2*MaxIDBytes {
		return ConversationCursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return ConversationCursor{}, bad
	}
	ts, id, ok := strings.Cut(string(raw), ":")
	if !ok || id == "" {
		return ConversationCursor{}, bad
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || us <= 0 || validateID("page_token", id, nil) != nil {
		return ConversationCursor{}, bad
	}
	return ConversationCursor{CreatedAt: us, ID: id}, nil
}

// NewConversationFilter validates and normalizes ListConversations input.
// limit is nil when the client sent none.
func NewConversationFilter(groupID string, limit *int32, pageToken string) (ConversationFilter, error) {
	if err := validateID("group_id", groupID, ErrMissingGroupID); err != nil {
		return ConversationFilter{}, err
	}
	n, err := clampLimit("limit", limit, DefaultConversationLimit, MaxConversationLimit)
	if err != nil {
		return ConversationFilter{}, err
	}
	after, err := ParseConversationCursor(pageToken)
	if err != nil {
		return ConversationFilter{}, err
	}
	return ConversationFilter{GroupID: groupID, Limit: n, After: after}, nil
}

// ConversationStore keeps conversations. Every method acts inside one
// tenant: another tenant's conversation is ENOTFOUND.
type ConversationStore interface {
	// CreateConversation stores c, setting its CreatedAt. c.ID is set by
	// the caller (a UUIDv7).
	CreateConversation(ctx context.Context, tenant string, c *Conversation) error
	// FindConversation returns the conversation with the given id; when
	// groupID is not empty the conversation must also be in that group.
	FindConversation(ctx context.Context, tenant, id, groupID string) (*Conversation, error)
	// UpdateConversation sets the topic and returns the updated conversation.
	UpdateConversation(ctx context.Context, tenant, id, topic string) (*Conversation, error)
	// DeleteConversation removes the conversation and all its messages,
	// in bounded batches rather than one transaction.
	DeleteConversation(ctx context.Context, tenant, id string) error
	// ListConversations returns one page, newest first, and the cursor of
	// the next page (zero when no more remain).
	ListConversations(ctx context.Context, tenant string, f ConversationFilter) ([]*Conversation, ConversationCursor, error)
}
