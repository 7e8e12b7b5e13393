package apitest

// The m3o JSON shapes, for decoding answers and events. Times are kept as
// the strings the wire carries; the structs are comparable with ==.

// Conversation is the m3o conversation.
type Conversation struct {
	ID        string `json:"id"`
	GroupID   string `json:"group_id"`
	Topic     string `json:"topic"`
	CreatedAt string `json:"created_at"`
}

// Message is the m3o message.
type Message struct {
	ID             string `json:"id"`
	AuthorID       string `json:"author_id"`
	ConversationID string `json:"conversation_id"`
	Text           string `json:"text"`
	SentAt         string `json:"sent_at"`
	Seq            int64  `json:"seq"`
}

// Error is the go-micro error envelope of the m3o routes.
type Error struct {
	ID     string `json:"id"`
	Code   int    `json:"code"`
	Detail string `json:"detail"`
	Status string `json:"status"`
}

// EventData is the data of one event on the stream.
type EventData struct {
	Type         string        `json:"type"`
	Cursor       string        `json:"cursor"`
	Conversation *Conversation `json:"conversation"`
	Message      *Message      `json:"message"`
}
