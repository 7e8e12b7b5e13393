package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// seeded is one conversation the scenarios use.
type seeded struct {
	ID        string
	CreatedAt time.Time
	Newest    time.Time // sent_at of its newest message, zero if none
	Count     int64     // its messages: the newest seq, since seq has no gaps
}

// seed makes sure group holds at least convs conversations of at least
// perConv messages each, through the API, and returns convs of them.
// Seeding tops up rather than starts over, so a second run on the same
// group (the default group is named after the scenario) reuses the data:
// a conversation of a million messages is seeded once, not per run.
func seed(ctx context.Context, c *client, group string, convs, perConv, workers int, log io.Writer) ([]seeded, error) {
	var have []seeded
	token := ""
	for len(have) < convs {
		body, _ := json.Marshal(map[string]any{"group_id": group, "limit": 1000, "page_token": token})
		var page conversationsAnswer
		if _, err := c.do("ListConversations", body, &page); err != nil {
			return nil, err
		}
		for _, cv := range page.Conversations {
			have = append(have, seeded{ID: cv.ID, CreatedAt: parseTime(cv.CreatedAt)})
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	have = have[:min(len(have), convs)]
	missing := convs - len(have)
	have = append(have, make([]seeded, missing)...)
	err := parallel(ctx, workers, missing, func(i int) error {
		body, _ := json.Marshal(map[string]string{"group_id": group, "topic": fmt.Sprintf("bench conversation %d", i)})
		var a conversationAnswer
		if _, err := c.do("CreateConversation", body, &a); err != nil {
			return err
		}
		have[len(have)-missing+i] = seeded{ID: a.Conversation.ID, CreatedAt: parseTime(a.Conversation.CreatedAt)}
		return nil
	})
	if err != nil || perConv == 0 {
		return have, err
	}
	if err := newest(ctx, c, have, workers); err != nil {
		return nil, err
	}
	if err := fill(ctx, c, have, int64(perConv), workers, log); err != nil {
		return nil, err
	}
	return have, newest(ctx, c, have, workers)
}

// newest reads each conversation's newest message: its seq is the count.
func newest(ctx context.Context, c *client, convs []seeded, workers int) error {
	return parallel(ctx, workers, len(convs), func(i int) error {
		body, _ := json.Marshal(map[string]any{"conversation_id": convs[i].ID, "limit": 1})
		var a messagesAnswer
		if _, err := c.do("ListMessages", body, &a); err != nil {
			return err
		}
		if len(a.Messages) > 0 {
			convs[i].Count, convs[i].Newest = a.Messages[0].Seq, parseTime(a.Messages[0].SentAt)
		}
		return nil
	})
}

// fill posts messages until every conversation has perConv, round-robin
// over the conversations so that concurrent writers rarely wait for the
// same conversation's counter.
func fill(ctx context.Context, c *client, convs []seeded, perConv int64, workers int, log io.Writer) error {
	var jobs []int
	for round := int64(0); ; round++ {
		n := len(jobs)
		for i, cv := range convs {
			if cv.Count+round < perConv {
				jobs = append(jobs, i)
			}
		}
		if len(jobs) == n {
			break
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	var done atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(log, "seeding: %d/%d messages\n", done.Load(), len(jobs))
			}
		}
	}()
	return parallel(ctx, workers, len(jobs), func(i int) error {
		body := messageBody(convs[jobs[i]].ID, "seed", i, "")
		if _, err := c.do("CreateMessage", body, nil); err != nil {
			return err
		}
		done.Add(1)
		return nil
	})
}

// messageBody is a CreateMessage request with a text of about 100 bytes,
// the size of a typical chat line.
func messageBody(conv, author string, n int, id string) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"conversation_id":"`...)
	b = append(b, conv...)
	b = append(b, `","author_id":"`...)
	b = append(b, author...)
	if id != "" {
		b = append(b, `","id":"`...)
		b = append(b, id...)
	}
	b = fmt.Appendf(b, `","text":"message %d: the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs"}`, n)
	return b
}

// parallel runs f(0..n-1) on workers goroutines and returns the first
// error, after which no new calls start.
func parallel(ctx context.Context, workers, n int, f func(i int) error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
