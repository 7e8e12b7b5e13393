package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"google.golang.org/protobuf/proto"
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
	checkAllocation(t, "m3o RecentMessages", perCall, 2*threads.MaxAnswerBytes)

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
			checkAllocation(t, c.name+" RecentMessages", perCall, 2*threads.MaxAnswerBytes)
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

// checkAllocation fails when a call allocated more than limit.
func checkAllocation(t *testing.T, what string, perCall uint64, limit int) {
	t.Helper()
	t.Logf("%s: %.1f MiB allocated per call", what, float64(perCall)/(1<<20))
	if perCall > uint64(limit) {
		t.Errorf("%s: %.1f MiB allocated per call, want at most %d MiB", what, float64(perCall)/(1<<20), limit>>20)
	}
}

// TestAnswerBoundServed: a worst-case page that is served (ListMessages,
// 127 messages of 128 KiB of JSON) costs what the page holds, eight at
// once, on the m3o route and Connect's JSON and protobuf: the rows read
// and the answer, 24 MiB for JSON and 12 MiB for protobuf (more under the
// race detector, and with pgx's row buffers), within four times the
// bound. Before its answer was sized up front, Connect's JSON codec grew
// it by doubling: 106 MiB a call. The client discards the body.
func TestAnswerBoundServed(t *testing.T) {
	e := newTestEnv(t)
	ids := seedHuge(t, e, 1, threads.MaxMessageLimit)
	jsonBody, _ := json.Marshal(map[string]any{"conversation_id": ids[0], "limit": threads.MaxMessageLimit})
	protoBody, _ := proto.Marshal(&pb.ListMessagesRequest{ConversationId: ids[0], Limit: wrapperspb.Int32(threads.MaxMessageLimit)})
	for _, c := range []struct {
		name, path, contentType string
		body                    []byte
	}{
		{"m3o", "/v1/threads/ListMessages", "application/json", jsonBody},
		{"connect-json", "/threads.Threads/ListMessages", "application/json", jsonBody},
		{"connect-proto", "/threads.Threads/ListMessages", "application/proto", protoBody},
	} {
		call := func() {
			req, _ := http.NewRequest("POST", e.URL+c.path, bytes.NewReader(c.body))
			req.Header.Set("Content-Type", c.contentType)
			req.Header.Set("Accept-Encoding", "identity")
			req.Header.Set("Authorization", "Bearer "+e.Key)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			n, _ := io.Copy(io.Discard, res.Body)
			if res.StatusCode != http.StatusOK || n < 4<<20 || n > threads.MaxAnswerBytes {
				t.Errorf("%s: status %d, %d bytes", c.name, res.StatusCode, n)
			}
		}
		call()
		checkAllocation(t, c.name+" ListMessages", allocatedPerCall(t, 8, call), 4*threads.MaxAnswerBytes)
	}
}
