package postgres_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// BenchmarkCreateMessage: CreateMessage from 32 clients into 100
// conversations of one tenant, on the store alone (no HTTP), the
// one-statement path; msg/s is the throughput.
//
//	THREADS_TEST_POSTGRES=… go test -run '^$' -bench CreateMessage -count 3 -benchtime 3s ./internal/postgres
func BenchmarkCreateMessage(b *testing.B) {
	const clients = 32
	db := pgtest.Open(b)
	convs := make([]string, 100)
	for i := range convs {
		c := &threads.Conversation{ID: uuid.Must(uuid.NewV7()).String(), GroupID: "g", Topic: fmt.Sprint("bench ", i)}
		if err := db.CreateConversation(b.Context(), "bench", c); err != nil {
			b.Fatal(err)
		}
		convs[i] = c.ID
	}
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
				m := &threads.Message{ID: uuid.Must(uuid.NewV7()).String(), ConversationID: convs[i%100], AuthorID: "a", Text: "hello there, a message of about a hundred bytes in length, give or take a few bytes here."}
				if _, err := db.CreateMessage(b.Context(), "bench", m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
