package server_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// seedHuge fills convs conversations of tenant acme with per messages of
// the longest text allowed, all tabs (twice their size in JSON), and
// returns the conversations' ids.
func seedHuge(t *testing.T, e *testEnv, convs, per int) []string {
	t.Helper()
	ctx := context.Background()
	text := strings.Repeat("\t", threads.MaxTextBytes)
	var ids []string
	for i := range convs {
		c := &threads.Conversation{ID: fmt.Sprintf("huge-%d", i), GroupID: "huge", Topic: "huge"}
		if err := e.Store.CreateConversation(ctx, "acme", c); err != nil {
			t.Fatal(err)
		}
		for j := range per {
			m := &threads.Message{ID: fmt.Sprintf("huge-%d-%d", i, j), ConversationID: c.ID, AuthorID: "a", Text: text}
			if _, err := e.Store.CreateMessage(ctx, "acme", m); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, c.ID)
	}
	return ids
}

// TestAnswerBound is issue 10's amplification: a small request for many
// huge messages. Each protocol's answer stays within MaxAnswerBytes (a
// page ends early; RecentMessages, which cannot be cut, is TOO_LARGE), and
// eight such calls at once allocate a bounded amount each: about what one
// answer holds, not what the request names (5 × 200 messages of 128 KiB
// of JSON is 128 MiB per call).
func TestAnswerBound(t *testing.T) {
	e := newTestEnv(t)
	ids := seedHuge(t, e, 5, threads.MaxMessageLimit)
	recent := &pb.RecentMessagesRequest{ConversationIds: ids, LimitPerConversation: wrapperspb.Int32(threads.MaxMessageLimit)}
	list := &pb.ListMessagesRequest{ConversationId: ids[0], Limit: wrapperspb.Int32(threads.MaxMessageLimit)}

	// The m3o JSON route: a page cut short within the bound, and TOO_LARGE.
	r := e.post("ListMessages", e.Key, map[string]any{"conversation_id": ids[0], "limit": threads.MaxMessageLimit})
	page := len(decodeField[[]any](t, r, "messages"))
	if len(r.Raw) > threads.MaxAnswerBytes || page == 0 || page >= threads.MaxMessageLimit {
		t.Errorf("m3o ListMessages: %d messages in %d bytes; want fewer than %d in at most %d", page, len(r.Raw), threads.MaxMessageLimit, threads.MaxAnswerBytes)
	}
	e.post("RecentMessages", e.Key, map[string]any{"conversation_ids": ids, "limit_per_conversation": threads.MaxMessageLimit}).
		wantError(t, "TOO_LARGE", 413)
	perCall := allocatedPerCall(t, 8, func() {
		e.post("RecentMessages", e.Key, map[string]any{"conversation_ids": ids, "limit_per_conversation": threads.MaxMessageLimit})
	})
	checkAllocation(t, "m3o", perCall)

	for _, c := range clients(t, e) {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			// grpc-go refuses answers over 4 MiB unless told otherwise
			// (grpc.MaxCallRecvMsgSize); docs/api.md says so.
			if c.name != "grpc-go" {
				var res pb.ListMessagesResponse
				if _, _, err := c.call(ctx, e.Key, "ListMessages", list, &res); err != nil {
					t.Fatal(err)
				}
				if n := len(res.GetMessages()); n != page {
					t.Errorf("ListMessages: %d messages, want the m3o route's %d", n, page)
				}
			}
			code, id, err := c.call(ctx, e.Key, "RecentMessages", recent, &pb.RecentMessagesResponse{})
			if code != connect.CodeResourceExhausted || id != threads.ETOOLARGE {
				t.Fatalf("RecentMessages: code %v, id %q (%v); want resource_exhausted, TOO_LARGE", code, id, err)
			}
			perCall := allocatedPerCall(t, 8, func() {
				c.call(ctx, e.Key, "RecentMessages", recent, &pb.RecentMessagesResponse{})
			})
			checkAllocation(t, c.name, perCall)
		})
	}
}

// allocatedPerCall runs call n times at once and returns the bytes the
// process allocated, divided by n. It measures allocation, not time.
func allocatedPerCall(t *testing.T, n int, call func()) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for range n {
		wg.Go(call)
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(n)
}

// checkAllocation fails when a call allocated more than twice what one
// answer may hold: the rows read before the bound was passed, and their
// encoding.
func checkAllocation(t *testing.T, what string, perCall uint64) {
	t.Helper()
	t.Logf("%s: %.1f MiB allocated per call", what, float64(perCall)/(1<<20))
	if perCall > 2*threads.MaxAnswerBytes {
		t.Errorf("%s: %.1f MiB allocated per call, want at most %d MiB", what, float64(perCall)/(1<<20), 2*threads.MaxAnswerBytes>>20)
	}
}
