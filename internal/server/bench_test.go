package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/server"
	"github.com/threads-server/threads/internal/sqlite"
)

// BenchmarkM3O measures the m3o JSON path in process: routing,
// authentication, decoding, the handler, the store (SQLite,
// synchronous=NORMAL) and rendering, without a network. Run with
//
//	go test -run '^$' -bench M3O -benchmem -count 6 ./internal/server | tee new.txt
//
// (benchstat-friendly). allocs/op here is what each call costs the
// server's heap beyond net/http's own connection handling.
func BenchmarkM3O(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Synchronous: "NORMAL", Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	k, secret, err := threads.NewKey("bench", false)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.CreateKey(ctx, k); err != nil {
		b.Fatal(err)
	}
	h := server.New(server.Config{Store: st, Logger: quietLogger(), KeyCacheTTL: 1e9}).Handler()
	call := func(b *testing.B, method string, body []byte) []byte {
		req := httptest.NewRequestWithContext(ctx, "POST", "/v1/threads/"+method, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", method, w.Code, w.Body)
		}
		return w.Body.Bytes()
	}

	// 100 conversations of 100 messages each.
	var convs []string
	for i := range 100 {
		var a struct{ Conversation struct{ ID string } }
		raw := call(b, "CreateConversation", fmt.Appendf(nil, `{"group_id":"g","topic":"t%d"}`, i))
		if err := json.Unmarshal(raw, &a); err != nil {
			b.Fatal(err)
		}
		convs = append(convs, a.Conversation.ID)
		for j := range 100 {
			_, err := st.CreateMessage(ctx, "bench", &threads.Message{ID: fmt.Sprintf("m-%d-%d", i, j), ConversationID: a.Conversation.ID,
				AuthorID: "seed", Text: fmt.Sprintf("message %d: the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs", j)})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	recent, err := json.Marshal(map[string]any{"conversation_ids": convs, "limit_per_conversation": 25})
	if err != nil {
		b.Fatal(err)
	}

	b.Run("CreateMessage", func(b *testing.B) {
		body := []byte(fmt.Sprintf(`{"conversation_id":%q,"author_id":"a","text":"message: the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs"}`, convs[0]))
		b.ReportAllocs()
		for b.Loop() {
			call(b, "CreateMessage", body)
		}
	})
	b.Run("ListMessages", func(b *testing.B) {
		body := []byte(fmt.Sprintf(`{"conversation_id":%q,"limit":25}`, convs[1]))
		b.ReportAllocs()
		for b.Loop() {
			call(b, "ListMessages", body)
		}
	})
	b.Run("RecentMessages", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			call(b, "RecentMessages", recent)
		}
	})
	b.Run("ListConversations", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			call(b, "ListConversations", []byte(`{"group_id":"g","limit":25}`))
		}
	})
}
