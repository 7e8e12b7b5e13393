package sqlite_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/sqlite"
)

// Store benchmarks, benchstat-friendly:
//
//	go test -run '^$' -bench . -count 6 ./internal/sqlite | tee new.txt
//
// They measure the store alone (no HTTP, no JSON), on a file in a temp dir.

const benchText = "hello there, this is a message of about a hundred bytes in length, give or take a few bytes."

func benchDB(b *testing.B, sync string) *sqlite.DB {
	b.Helper()
	db, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Synchronous: sync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func benchConversations(b *testing.B, db *sqlite.DB, n int) []string {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		c := &threads.Conversation{ID: uuid.Must(uuid.NewV7()).String(), GroupID: "g", Topic: "bench"}
		if err := db.CreateConversation(b.Context(), "bench", c); err != nil {
			b.Fatal(err)
		}
		ids[i] = c.ID
	}
	return ids
}

// BenchmarkCreateMessage: one transaction per message, 16 goroutines per
// core posting into 100 conversations, as concurrent API clients would.
func BenchmarkCreateMessage(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run("sync="+sync, func(b *testing.B) {
			db := benchDB(b, sync)
			convs := benchConversations(b, db, 100)
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					m := &threads.Message{ID: uuid.Must(uuid.NewV7()).String(), ConversationID: convs[i%100], AuthorID: "a", Text: benchText}
					if _, err := db.CreateMessage(b.Context(), "bench", m); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkCreateMessageClients: CreateMessage from exactly 1, 16 and 64
// goroutines (clients) posting into 100 conversations, at each
// synchronous level, with group commit (commit=group, what ships) and with
// one transaction per message (commit=tx, as before group commit, kept
// for this comparison only). msg/s is the throughput; msg/batch is the
// average batch group commit made.
//
//	go test -run '^$' -bench CreateMessageClients -count 3 -benchtime 2s ./internal/sqlite
func BenchmarkCreateMessageClients(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, clients := range []int{1, 16, 64} {
			for _, commit := range []string{"tx", "group"} {
				b.Run(fmt.Sprintf("sync=%s/clients=%d/commit=%s", sync, clients, commit), func(b *testing.B) {
					path := filepath.Join(b.TempDir(), "bench.db")
					opt := sqlite.Options{Synchronous: sync}
					var db *sqlite.DB
					var err error
					var batches, messages atomic.Int64
					if commit == "tx" {
						db, err = sqlite.OpenUnbatched(b.Context(), path, opt)
					} else {
						db, err = sqlite.OpenCounting(b.Context(), path, opt, &batches, &messages)
					}
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { db.Close() })
					convs := benchConversations(b, db, 100)
					batches.Store(0)
					messages.Store(0)
					benchCreate(b, db, convs, clients)
					if n := batches.Load(); n > 0 {
						b.ReportMetric(float64(messages.Load())/float64(n), "msg/batch")
					}
				})
			}
		}
	}
}

// benchCreate runs b.N CreateMessage calls spread over clients goroutines.
func benchCreate(b *testing.B, db *sqlite.DB, convs []string, clients int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				m := &threads.Message{ID: uuid.Must(uuid.NewV7()).String(), ConversationID: convs[i%int64(len(convs))], AuthorID: "a", Text: benchText}
				if _, err := db.CreateMessage(b.Context(), "bench", m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// fill puts n messages into conversation id in batches (through the store
// API, so it is slow for large n; the sizes here keep it to seconds).
func fill(b *testing.B, db *sqlite.DB, conv string, n int) {
	b.Helper()
	for i := range n {
		m := &threads.Message{ID: conv + "-" + strconv.Itoa(i), ConversationID: conv, AuthorID: "a", Text: benchText}
		if _, err := db.CreateMessage(b.Context(), "bench", m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListMessages: the newest 25, and a page deep in the history,
// of a conversation of 20,000 messages; parallel readers.
func BenchmarkListMessages(b *testing.B) {
	db := benchDB(b, "OFF")
	conv := benchConversations(b, db, 1)[0]
	fill(b, db, conv, 20000)
	// Walk back 10,000 messages to find a bound half way into the history.
	var middle int64
	for range 50 {
		page, err := db.ListMessages(b.Context(), "bench", threads.MessageFilter{ConversationID: conv, SentBefore: middle, Limit: 200})
		if err != nil || len(page) != 200 {
			b.Fatal(len(page), err)
		}
		middle = threads.Micros(page[199].SentAt)
	}
	for _, tc := range []struct {
		name   string
		before int64
	}{{"newest", 0}, {"deep", middle}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ms, err := db.ListMessages(b.Context(), "bench", threads.MessageFilter{ConversationID: conv, SentBefore: tc.before, Limit: 25})
					if err != nil || len(ms) != 25 {
						b.Fatalf("%d messages, %v", len(ms), err)
					}
				}
			})
		})
	}
}

// BenchmarkRecentMessages: 100 conversations × 25 messages in one query.
func BenchmarkRecentMessages(b *testing.B) {
	db := benchDB(b, "OFF")
	convs := benchConversations(b, db, 100)
	for _, c := range convs {
		fill(b, db, c, 30)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ms, err := db.RecentMessages(b.Context(), "bench", threads.RecentFilter{ConversationIDs: convs, PerConversation: 25})
			if err != nil || len(ms) != 2500 {
				b.Fatal(fmt.Sprint(len(ms), err))
			}
		}
	})
}

// BenchmarkListConversations: pages of 25 of a group of 100,000
// conversations, the first page, one half way down (50,000 deep) and the
// last: each is one range seek of conversations_by_group_page from the page
// token's position, so all three must cost the same.
func BenchmarkListConversations(b *testing.B) {
	db := benchDB(b, "OFF")
	const n = 100_000
	benchConversations(b, db, n)
	after := map[string]threads.ConversationCursor{"first": {}}
	var cur threads.ConversationCursor
	for seen := 0; seen < n-25; {
		page, next, err := db.ListConversations(b.Context(), "bench", threads.ConversationFilter{GroupID: "g", After: cur, Limit: 1000})
		if err != nil || len(page) == 0 {
			b.Fatal(len(page), err)
		}
		seen += len(page)
		if seen == n/2 {
			after["middle"] = next
		}
		if next.IsZero() {
			break
		}
		cur = next
	}
	page, _, err := db.ListConversations(b.Context(), "bench", threads.ConversationFilter{GroupID: "g", After: cur, Limit: 1000})
	if err != nil || len(page) < 25 {
		b.Fatal(len(page), err)
	}
	last := page[len(page)-26]
	after["last"] = threads.ConversationCursor{CreatedAt: threads.Micros(last.CreatedAt), ID: last.ID}
	for _, name := range []string{"first", "middle", "last"} {
		b.Run("page="+name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					cs, _, err := db.ListConversations(b.Context(), "bench", threads.ConversationFilter{GroupID: "g", After: after[name], Limit: 25})
					if err != nil || len(cs) != 25 {
						b.Fatalf("%d conversations, %v", len(cs), err)
					}
				}
			})
		})
	}
}
