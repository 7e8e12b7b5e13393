package threads

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Event types: the `event:` field of the stream and the "type" of its data.
const (
	EventMessageCreated      = "message.created"
	EventConversationCreated = "conversation.created"
	EventConversationUpdated = "conversation.updated"
	EventConversationDeleted = "conversation.deleted"
	// EventResyncRequired tells a client its cursor is older than the
	// retention window: it must reload state, then follow from the cursor
	// this event carries.
	EventResyncRequired = "resync_required"
)

// DefaultEventRetention is how long events stay available for resuming.
const DefaultEventRetention = 7 * 24 * time.Hour

// EventsExpireBefore is when the events that a store may purge were made,
// now, for a retention window: before the window, with an hour's margin,
// so that a cursor just inside the window (which a stream accepts) still
// finds what follows it.
func EventsExpireBefore(now time.Time, retention time.Duration) time.Time {
	return now.Add(-retention - time.Hour)
}

// MaxEventPageBytes bounds one read of the event log by size, as
// ReadEvents' limit bounds it by count: a read stops once the stored
// payloads (the JSON of each event's object) it has read reach this many
// bytes. A count alone is no bound on memory: a message's text may be
// 64 KiB, 128 KiB of JSON when it is all tabs, so a page of 500 events
// could hold 100+ MiB between the stored JSON and the decoded events, for
// each subscriber replaying from an old cursor and for each tail, and one
// key may open 100 streams. With this bound a page holds less than
// MaxEventPageBytes plus one event of payload; it holds at least one
// event, so that reading always makes progress.
const MaxEventPageBytes = 1 << 20

// Event is one change, durable: it is written in the same transaction as
// the change it describes, so it exists exactly when the change does.
type Event struct {
	// Cursor is the event's position in its tenant's log; resuming after
	// it replays every later event of the tenant, in order.
	Cursor EventCursor
	Type   string
	// GroupID and ConversationID say which subscriptions match.
	GroupID        string
	ConversationID string
	// The object, as it was when the event happened: Conversation for
	// conversation.* events, Message for message.created.
	Conversation *Conversation
	Message      *Message
}

// EventCursor is a position in one tenant's event log. Positions are
// ordered by (Hi, Lo); what they mean is the engine's business (SQLite: a
// per-tenant counter in Hi; PostgreSQL: the writing transaction's id in Hi
// and the row's serial in Lo). At is when the position was made, in unix
// microseconds: a cursor older than the retention window is refused with
// resync_required without asking the store, whose old events may be gone.
type EventCursor struct {
	At     int64
	Hi, Lo int64
	// Tag names the tenant whose log the position is in:
	// EventCursorTag(tenant), set where cursors are handed to clients (the
	// broker's subscriptions). 0 is no tag (stores' own cursors; tokens made before tags
	// existed); ParseEventCursorFor accepts such a cursor for any tenant.
	// Tag plays no part in IsZero and Before: it is not a position.
	Tag uint32
}

// IsZero reports whether c is no position at all, tagged or not.
func (c EventCursor) IsZero() bool { return c.At == 0 && c.Hi == 0 && c.Lo == 0 }

// Before reports whether c is an earlier position than d. At and Tag play
// no part.
func (c EventCursor) Before(d EventCursor) bool {
	return c.Hi < d.Hi || c.Hi == d.Hi && c.Lo < d.Lo
}

// Time returns At as a time.
func (c EventCursor) Time() time.Time { return FromMicros(c.At) }

// EventCursorTag returns the tag of the tenant's cursors: 32 bits of a
// hash of its name, never 0. It is no secret and no proof, only a guard
// against a cursor used with another tenant's stream, where (on SQLite,
// whose positions are per tenant) it could name a position in that
// tenant's log and be followed silently from the wrong place.
func EventCursorTag(tenant string) uint32 {
	h := fnv.New32a()
	h.Write([]byte("threads.cursor\x00" + tenant))
	if t := h.Sum32(); t != 0 {
		return t
	}
	return 1
}

// For returns c tagged as a position in the tenant's log.
func (c EventCursor) For(tenant string) EventCursor {
	c.Tag = EventCursorTag(tenant)
	return c
}

// Token encodes c as the opaque string clients see (SSE id:, "cursor"):
// "e2" and base64url of At, Hi, Lo and Tag in base 36; a cursor without a
// tag keeps the form of before tags, "e1" without the fourth part.
func (c EventCursor) Token() string {
	if c.IsZero() {
		return ""
	}
	var b []byte
	b = strconv.AppendInt(b, c.At, 36)
	b = append(b, '.')
	b = strconv.AppendInt(b, c.Hi, 36)
	b = append(b, '.')
	b = strconv.AppendInt(b, c.Lo, 36)
	if c.Tag == 0 {
		return "e1" + base64.RawURLEncoding.EncodeToString(b)
	}
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(c.Tag), 36)
	return "e2" + base64.RawURLEncoding.EncodeToString(b)
}

// ParseEventCursor decodes a token made by Token, of either version. An
// empty token is the zero cursor: "from now on". A stream checks the
// tenant with ParseEventCursorFor.
func ParseEventCursor(token string) (EventCursor, error) {
	if token == "" {
		return EventCursor{}, nil
	}
	bad := Errorf(EBADREQUEST, "the event cursor (Last-Event-ID or after) is not one this server made")
	if len(token) > 128 || len(token) < 2 {
		return EventCursor{}, bad
	}
	var parts int
	switch token[:2] {
	case "e1":
		parts = 3
	case "e2":
		parts = 4
	default:
		return EventCursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(token[2:])
	if err != nil {
		return EventCursor{}, bad
	}
	fields := strings.Split(string(raw), ".")
	if len(fields) != parts {
		return EventCursor{}, bad
	}
	var n [3]int64
	for i, p := range fields[:3] {
		if n[i], err = strconv.ParseInt(p, 36, 64); err != nil || n[i] < 0 {
			return EventCursor{}, bad
		}
	}
	if n[0] == 0 {
		return EventCursor{}, bad
	}
	c := EventCursor{At: n[0], Hi: n[1], Lo: n[2]}
	if parts == 4 {
		tag, err := strconv.ParseUint(fields[3], 36, 32)
		if err != nil || tag == 0 {
			return EventCursor{}, bad
		}
		c.Tag = uint32(tag)
	}
	return c, nil
}

// ParseEventCursorFor is ParseEventCursor for a stream of the tenant: a
// cursor tagged for another tenant is BAD_REQUEST. A cursor without a tag
// (an "e1" token, made before tags) is accepted.
func ParseEventCursorFor(token, tenant string) (EventCursor, error) {
	c, err := ParseEventCursor(token)
	if err != nil {
		return EventCursor{}, err
	}
	if c.Tag != 0 && c.Tag != EventCursorTag(tenant) {
		return EventCursor{}, Errorf(EBADREQUEST, "the event cursor (Last-Event-ID or after) was made for another tenant")
	}
	return c, nil
}

// EventFilter selects a tenant's events. An event matches when its
// conversation is in ConversationIDs or its group is GroupID; with both
// empty, every event of the tenant matches.
type EventFilter struct {
	ConversationIDs []string
	GroupID         string
}

// All reports whether f selects every event.
func (f *EventFilter) All() bool { return len(f.ConversationIDs) == 0 && f.GroupID == "" }

// Match reports whether e is selected by f.
func (f *EventFilter) Match(e *Event) bool {
	if f.All() {
		return true
	}
	if f.GroupID != "" && e.GroupID == f.GroupID {
		return true
	}
	for _, id := range f.ConversationIDs {
		if id == e.ConversationID {
			return true
		}
	}
	return false
}

// MaxEventConversations bounds the conversation_id filters of one stream.
const MaxEventConversations = 100

// NewEventFilter validates a subscription's filters: at least one, at most
// MaxEventConversations conversation ids, duplicates dropped.
func NewEventFilter(conversationIDs []string, groupID string) (EventFilter, error) {
	if len(conversationIDs) > MaxEventConversations {
		return EventFilter{}, Errorf(EBADREQUEST, "at most %d conversation_id filters are allowed", MaxEventConversations)
	}
	var ids []string
	for _, id := range conversationIDs {
		if err := validateID("conversation_id", id, ErrMissingConversationID); err != nil {
			return EventFilter{}, err
		}
		if !contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if err := validateID("group_id", groupID, nil); err != nil {
		return EventFilter{}, err
	}
	if len(ids) == 0 && groupID == "" {
		return EventFilter{}, Errorf(EBADREQUEST, "a conversation_id or group_id filter is required")
	}
	return EventFilter{ConversationIDs: ids, GroupID: groupID}, nil
}

func contains(ss []string, s string) bool {
	for _, v := range ss {
		if v == s {
			return true
		}
	}
	return false
}

// EventStore keeps the event log. Every mutating method of the other
// stores writes its event in the same transaction as its change.
type EventStore interface {
	// ReadEvents returns up to limit events of the tenant after the cursor
	// (exclusive), oldest first, that f selects. It stops early once the
	// stored payloads of the events it has read reach MaxEventPageBytes,
	// but returns at least one event when there is one. more reports
	// whether events may follow the page's last one: it is true when the
	// page was cut short, by limit or by bytes, and false when the page
	// holds every selected event the store could read now (the log is
	// read to its end). A short page is no sign of the end; more is.
	// Positions are final: once ReadEvents has returned an event at
	// position p, no event at a position before p can appear later (a
	// transaction that commits late is not skipped). Within one
	// conversation, events are in the order of the changes: message.created
	// events in seq order. The zero cursor reads from the start of the log.
	ReadEvents(ctx context.Context, tenant string, after EventCursor, f EventFilter, limit int) (evs []*Event, more bool, err error)
	// EventHead returns a cursor at the end of the tenant's log now: reading
	// after it returns only events that ReadEvents did not yet return to
	// anyone. Its At is the store's clock now.
	EventHead(ctx context.Context, tenant string) (EventCursor, error)
	// OnEvents registers fn, called after events of a tenant were
	// committed: by this process, or, where the engine can tell, by another
	// replica. tenant "" means "any tenant may have new events" (after a
	// lost notification channel came back). fn must not block.
	OnEvents(fn func(tenant string))
	// PurgeEvents removes events made before the given time.
	PurgeEvents(ctx context.Context, before time.Time) error
}

// NewConversationEvent describes a change to c; typ is one of the
// conversation.* types.
func NewConversationEvent(typ string, c *Conversation) *Event {
	return &Event{Type: typ, GroupID: c.GroupID, ConversationID: c.ID, Conversation: c}
}

// NewMessageEvent describes a message created in a conversation of the
// given group.
func NewMessageEvent(groupID string, m *Message) *Event {
	return &Event{Type: EventMessageCreated, GroupID: groupID, ConversationID: m.ConversationID, Message: m}
}

// MarshalData encodes the event's object for storage: the JSON of
// EventData, at EventDataVersion.
func (e *Event) MarshalData() ([]byte, error) {
	// One allocation for the payload and its object, as when the payload
	// pointed at the domain object: this runs for every event written.
	switch {
	case e.Conversation == nil && e.Message != nil:
		buf := &struct {
			d EventData
			m EventDataMessage
		}{d: EventData{Version: EventDataVersion}}
		buf.m.set(e.Message)
		buf.d.Message = &buf.m
		return json.Marshal(&buf.d)
	case e.Conversation != nil && e.Message == nil:
		buf := &struct {
			d EventData
			c EventDataConversation
		}{d: EventData{Version: EventDataVersion}}
		buf.c.set(e.Conversation)
		buf.d.Conversation = &buf.c
		return json.Marshal(&buf.d)
	}
	return json.Marshal(NewEventData(e))
}

// UnmarshalData decodes a stored object, of any version ParseEventData
// reads, into e.
func (e *Event) UnmarshalData(b []byte) error {
	d, err := ParseEventData(b)
	if err != nil {
		return err
	}
	e.Conversation, e.Message = d.Conversation.conversation(), d.Message.message()
	return nil
}
