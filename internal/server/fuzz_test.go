package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/sqlite"
)

// The fuzz targets feed arbitrary bodies to each method's m3o pipeline
// (decode, validate, store, encode) on a real database. Whatever the
// input, the answer must be valid JSON or a client error from the table:
// never INTERNAL, never a panic. Run one with
//
//	go test -run '^$' -fuzz '^FuzzCreateMessage$' -fuzztime 30s ./internal/server

func FuzzCreateConversation(f *testing.F) {
	fuzzMethod(f, "CreateConversation",
		`{"group_id": "string", "topic": "string"}`,
		`{"groupId": "g", "topic": "t\u0000"}`)
}

func FuzzReadConversation(f *testing.F) {
	fuzzMethod(f, "ReadConversation",
		`{"group_id": {}, "id": "string"}`,
		`{"group_id": "g1", "id": "CONV"}`,
		`{"id": "CONV", "groupId": null}`)
}

func FuzzUpdateConversation(f *testing.F) {
	fuzzMethod(f, "UpdateConversation",
		`{"id": "string", "topic": "string"}`,
		`{"id": "CONV", "topic": "new topic"}`)
}

func FuzzDeleteConversation(f *testing.F) {
	fuzzMethod(f, "DeleteConversation", `{"id": "string"}`, `{"id": "CONV"}`)
}

func FuzzListConversations(f *testing.F) {
	fuzzMethod(f, "ListConversations",
		`{"group_id": "string"}`,
		`{"group_id": "g1", "limit": 2, "page_token": "MTc2NDA1NDU2MDAwMDAwMDphYmM"}`)
}

func FuzzCreateMessage(f *testing.F) {
	fuzzMethod(f, "CreateMessage",
		`{"author_id": "string", "conversation_id": "string", "id": "string", "text": "string"}`,
		`{"author_id": "a", "conversation_id": "CONV", "id": "m1", "text": "hello"}`,
		`{"authorId": "a", "conversationId": "CONV", "text": "\u2028"}`)
}

func FuzzListMessages(f *testing.F) {
	fuzzMethod(f, "ListMessages",
		`{"conversation_id": "string", "limit": {}, "sent_before": "string"}`,
		`{"conversation_id": "CONV", "limit": "10", "sent_before": "2026-11-25T10:04:05.123456Z"}`,
		`{"conversation_id": "CONV", "limit": -1}`)
}

func FuzzRecentMessages(f *testing.F) {
	fuzzMethod(f, "RecentMessages",
		`{"conversation_ids": ["string"], "limit_per_conversation": {}}`,
		`{"conversation_ids": ["CONV", "CONV", "x"], "limit_per_conversation": 3}`)
}

// fuzzMethod runs one method's pipeline against a database holding one
// conversation (id substituted for "CONV" in the seeds) with messages.
func fuzzMethod(f *testing.F, method string, seeds ...string) {
	db, err := sqlite.Open(context.Background(), filepath.Join(f.TempDir(), "fuzz.db"),
		sqlite.Options{Synchronous: "OFF", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	s := New(Config{Store: db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := withTenant(context.Background(), "fuzz")
	conv := &threads.Conversation{ID: s.newID(), GroupID: "g1", Topic: "fuzzing"}
	if err := db.CreateConversation(ctx, "fuzz", conv); err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		if _, err := db.CreateMessage(ctx, "fuzz", &threads.Message{ID: s.newID(), ConversationID: conv.ID, AuthorID: "a", Text: string(rune('a' + i))}); err != nil {
			f.Fatal(err)
		}
	}
	for _, seed := range seeds {
		f.Add([]byte(strings.ReplaceAll(seed, "CONV", conv.ID)))
	}
	route := s.m3o[method]
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := route.serve(ctx, body, nil)
		if err != nil {
			e := domainError(err)
			switch e.Code {
			case threads.EBADREQUEST, threads.ENOTFOUND, threads.ECONFLICT:
			default:
				t.Fatalf("body %q: error %v (code %s), want a client error", body, err, e.Code)
			}
			if _, body := envelope(e); !json.Valid(body) {
				t.Fatalf("envelope is not valid JSON: %s", body)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("body %q: response is not valid JSON: %s", body, out)
		}
	})
}
