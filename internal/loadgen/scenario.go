package loadgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// Scenarios are what `threads bench --scenario` accepts.
var Scenarios = []string{"create", "list", "recent", "conversations", "mixed", "fanout"}

// shape is a scenario's default data: how many conversations it seeds in
// its group and how many messages each holds. The defaults are small
// enough to seed in seconds; the large figures come from --messages
// and --conversations, and the top-up in seed makes them a one-time cost.
var shape = map[string]struct{ convs, msgs int }{
	"create":        {100, 0},
	"list":          {1, 10_000},
	"recent":        {100, 100},
	"conversations": {1_000, 0},
	"mixed":         {100, 100},
	"fanout":        {1, 0},
}

// worker is one closed-loop client's state: its own random source (no
// lock shared between clients) and its place in a paged listing.
type worker struct {
	id    int
	rng   *rand.Rand
	n     int    // requests made
	token string // ListConversations: the next page
}

// request is one call a scenario makes.
type request struct {
	op, method string
	body       []byte
	page       *conversationsAnswer // decode into this when not nil
}

// scenario turns the seeded data into requests.
type scenario struct {
	name, group, runID string
	convs              []seeded
	limit              int
	deep, clientIDs    bool
	recentBody         []byte
}

func newScenario(name, group, runID string, convs []seeded, limit int, deep, clientIDs bool) *scenario {
	s := &scenario{name: name, group: group, runID: runID, convs: convs, limit: limit, deep: deep, clientIDs: clientIDs}
	ids := make([]string, 0, 100)
	for i := 0; i < len(convs) && i < 100; i++ {
		ids = append(ids, convs[i].ID)
	}
	s.recentBody, _ = json.Marshal(map[string]any{"conversation_ids": ids, "limit_per_conversation": limit})
	return s
}

// next is the worker's next request. mixed is a chat application's
// blend: mostly reading a conversation, some posting, some inbox views
// (RecentMessages of 10 conversations) and some group listings.
func (s *scenario) next(w *worker) request {
	w.n++
	switch op := s.name; op {
	case "create":
		return s.create(w)
	case "list":
		return s.list(w)
	case "recent":
		return request{op: op, method: "RecentMessages", body: s.recentBody}
	case "conversations":
		return s.conversations(w)
	}
	switch p := w.rng.IntN(100); {
	case p < 20:
		return s.create(w)
	case p < 70:
		return s.list(w)
	case p < 90:
		ids := make([]string, 0, 10)
		for range min(10, len(s.convs)) {
			ids = append(ids, s.pick(w).ID)
		}
		body, _ := json.Marshal(map[string]any{"conversation_ids": ids, "limit_per_conversation": s.limit})
		return request{op: "recent", method: "RecentMessages", body: body}
	default:
		return s.conversations(w)
	}
}

func (s *scenario) pick(w *worker) *seeded { return &s.convs[w.rng.IntN(len(s.convs))] }

func (s *scenario) create(w *worker) request {
	id := ""
	if s.clientIDs {
		id = fmt.Sprintf("bench-%s-%d-%d", s.runID, w.id, w.n)
	}
	author := fmt.Sprintf("bench-%d", w.id)
	return request{op: "create", method: "CreateMessage", body: messageBody(s.pick(w).ID, author, w.n, id)}
}

// list reads the newest page of a random conversation or, with deep, the
// page before a random instant of its history: both must cost the same.
func (s *scenario) list(w *worker) request {
	c := s.pick(w)
	body := fmt.Appendf(nil, `{"conversation_id":%q,"limit":%d`, c.ID, s.limit)
	if s.deep && !c.Newest.IsZero() {
		span := c.Newest.Sub(c.CreatedAt)
		at := c.CreatedAt.Add(time.Duration(w.rng.Int64N(int64(span) + 1)))
		body = fmt.Appendf(body, `,"sent_before":%q`, at.UTC().Format("2006-01-02T15:04:05.000000Z"))
	}
	return request{op: "list", method: "ListMessages", body: append(body, '}')}
}

// conversations pages through the group, each worker on its own walk,
// starting over after the last page.
func (s *scenario) conversations(w *worker) request {
	body := fmt.Appendf(nil, `{"group_id":%q,"limit":%d,"page_token":%q}`, s.group, s.limit, w.token)
	return request{op: "conversations", method: "ListConversations", body: body, page: &conversationsAnswer{}}
}

// done takes what the worker needs from an answer.
func (s *scenario) done(w *worker, r request) {
	if r.page != nil {
		w.token = r.page.NextPageToken
	}
}
