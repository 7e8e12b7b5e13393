package threads

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventDataVersion is the version of EventData that this binary writes.
//
// Version 0 is what stores wrote before the payload had a version: Go's
// JSON of Conversation and Message with no tags, so its names were the Go
// field names ({"conversation":{"ID":…,"GroupID":…,"Topic":…,"CreatedAt":…}},
// {"message":{"ID":…,"ConversationID":…,"AuthorID":…,"Text":…,"SentAt":…,"Seq":…}}),
// and renaming a field would have turned old rows into zero values.
// Version 1 has the names of EventData's tags, which nothing else
// depends on.
//
// A new field needs no new version (older readers skip what they do not
// know, and read it as its zero value from older rows). Renaming a field,
// or changing what a value means, does: ParseEventData must go on reading
// every older version.
const EventDataVersion = 1

// EventData is the stored form of an event's object: the JSON in the
// events table's data column, the same on every engine, so that new event
// types need no schema change. Its names are fixed by its tags, not by
// the domain types: Conversation and Message may change their Go fields
// freely, and NewEventData and ParseEventData convert.
type EventData struct {
	// Version is EventDataVersion when written; 0 (absent) in rows
	// written before versions.
	Version      int                    `json:"version"`
	Conversation *EventDataConversation `json:"conversation,omitempty"`
	Message      *EventDataMessage      `json:"message,omitempty"`
}

// EventDataConversation is a Conversation as an event stores it.
type EventDataConversation struct {
	ID        string    `json:"id"`
	GroupID   string    `json:"group_id"`
	Topic     string    `json:"topic"`
	CreatedAt time.Time `json:"created_at"`
}

// EventDataMessage is a Message as an event stores it.
type EventDataMessage struct {
	ID             string    `json:"id"`
	ConversationID string    `json:"conversation_id"`
	AuthorID       string    `json:"author_id"`
	Text           string    `json:"text"`
	SentAt         time.Time `json:"sent_at"`
	Seq            int64     `json:"seq"`
}

// NewEventData is what a store keeps of e's object, at EventDataVersion.
func NewEventData(e *Event) EventData {
	d := EventData{Version: EventDataVersion}
	if e.Conversation != nil {
		d.Conversation = new(EventDataConversation)
		d.Conversation.set(e.Conversation)
	}
	if e.Message != nil {
		d.Message = new(EventDataMessage)
		d.Message.set(e.Message)
	}
	return d
}

func (d *EventDataConversation) set(c *Conversation) {
	*d = EventDataConversation{ID: c.ID, GroupID: c.GroupID, Topic: c.Topic, CreatedAt: c.CreatedAt}
}

func (d *EventDataMessage) set(m *Message) {
	*d = EventDataMessage{ID: m.ID, ConversationID: m.ConversationID, AuthorID: m.AuthorID, Text: m.Text, SentAt: m.SentAt, Seq: m.Seq}
}

func (d *EventDataConversation) conversation() *Conversation {
	if d == nil {
		return nil
	}
	return &Conversation{ID: d.ID, GroupID: d.GroupID, Topic: d.Topic, CreatedAt: d.CreatedAt}
}

func (d *EventDataMessage) message() *Message {
	if d == nil {
		return nil
	}
	return &Message{ID: d.ID, ConversationID: d.ConversationID, AuthorID: d.AuthorID, Text: d.Text, SentAt: d.SentAt, Seq: d.Seq}
}

// ParseEventData decodes a stored payload of any version up to
// EventDataVersion into the current form (Version is then
// EventDataVersion). A newer version is an error: this binary cannot know
// what its names mean, and reading it as its own would show zero values.
func ParseEventData(b []byte) (EventData, error) {
	var a anyEventData
	if err := json.Unmarshal(b, &a); err != nil {
		return EventData{}, err
	}
	d := EventData{Version: EventDataVersion}
	switch a.Version {
	case 0:
		if c := a.Conversation; c != nil {
			d.Conversation = &EventDataConversation{ID: c.ID, GroupID: c.GroupID0, Topic: c.Topic, CreatedAt: c.CreatedAt0}
		}
		if m := a.Message; m != nil {
			d.Message = &EventDataMessage{ID: m.ID, ConversationID: m.ConversationID0, AuthorID: m.AuthorID0,
				Text: m.Text, SentAt: m.SentAt0, Seq: m.Seq}
		}
	case 1:
		if c := a.Conversation; c != nil {
			d.Conversation = &c.EventDataConversation
		}
		if m := a.Message; m != nil {
			d.Message = &m.EventDataMessage
		}
	default:
		return EventData{}, fmt.Errorf("event data version %d is newer than this binary's (%d)", a.Version, EventDataVersion)
	}
	return d, nil
}

// anyEventData reads every version in one pass (events are decoded on
// every read of the log): each field that version 0 named otherwise has a
// second field under the old name. The names that only differ in case
// ("ID", "Topic", "Text", "Seq") need none: encoding/json matches names
// ignoring case. Which fields count is decided by Version.
type anyEventData struct {
	Version      int                   `json:"version"`
	Conversation *anyEventConversation `json:"conversation"`
	Message      *anyEventMessage      `json:"message"`
}

type anyEventConversation struct {
	EventDataConversation
	GroupID0   string    `json:"GroupID"`
	CreatedAt0 time.Time `json:"CreatedAt"`
}

type anyEventMessage struct {
	EventDataMessage
	ConversationID0 string    `json:"ConversationID"`
	AuthorID0       string    `json:"AuthorID"`
	SentAt0         time.Time `json:"SentAt"`
}
