package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/threads-server/threads/internal/sse"
)

// subscriber is one SSE client of the fan-out run. It keeps a bit per
// message the run will post, so after the run it can say exactly which
// acknowledged messages it never received and which it received twice:
// the server promises neither happens, across reconnections too.
type subscriber struct {
	url, auth, runID string
	hist             *LockedHistogram // a shard shared with other subscribers

	seen       []uint64 // bit i: message i received
	received   atomic.Int64
	dups       int64
	outOfOrder int64
	reconnects int64
	lastSeq    map[string]int64 // per conversation: seq must only grow
	failure    string           // why it stopped before the run ended
	first, end time.Time        // first and last receipt
}

// streamClient is the subscribers' HTTP client: no overall timeout (a
// stream lasts the run), a bound on connecting and on the answer's
// headers, and no proxy.
func streamClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   1,
		DisableCompression:    true,
	}}
}

// run follows the stream until ctx ends, resuming from the last cursor
// (Last-Event-ID) when the stream breaks, as EventSource does. connected
// is called once, when the server's first cursor arrives: the subscriber
// is then registered and every later event must reach it. A refusal (an
// answer other than 200) ends it, with the reason kept in failure.
func (s *subscriber) run(ctx context.Context, hc *http.Client, connected func(ok bool)) {
	lastID, once := "", false
	signal := func(ok bool) {
		if !once {
			once = true
			connected(ok)
		}
	}
	defer signal(false)
	for ctx.Err() == nil {
		err := s.stream(ctx, hc, &lastID, func() { signal(true) })
		if ctx.Err() != nil {
			return
		}
		var refused *refusal
		if errors.As(err, &refused) || !once {
			s.failure = err.Error()
			if errors.As(err, &refused) {
				s.failure = refused.kind
			}
			return
		}
		s.reconnects++
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type refusal struct{ kind, body string }

func (r *refusal) Error() string { return r.kind + ": " + r.body }

func (s *subscriber) stream(ctx context.Context, hc *http.Client, lastID *string, connected func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", s.auth)
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", transportKind(err), err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		var env struct{ ID string }
		_ = json.Unmarshal(b, &env) // not JSON: the status alone names the refusal
		return &refusal{kind: strings.TrimSpace(strconv.Itoa(res.StatusCode) + " " + env.ID), body: string(b)}
	}
	r := sse.NewReader(res.Body)
	r.IDOnly = func(string) { connected() }
	for {
		e, err := r.Next()
		*lastID = r.LastID()
		if err != nil {
			return err
		}
		now := time.Now()
		connected()
		if e.Type == "message.created" {
			s.event(e.Data, now)
		}
	}
}

// event checks one message.created event of the run: its index and send
// time are in its text ("fanout RUN I UNIXNANO"), so post-to-receipt
// latency needs no shared state with the posters, only the shared clock.
func (s *subscriber) event(data string, now time.Time) {
	var ev struct {
		Message *wireMessage `json:"message"`
	}
	if json.Unmarshal([]byte(data), &ev) != nil || ev.Message == nil {
		return
	}
	f := strings.Fields(ev.Message.Text)
	if len(f) != 4 || f[0] != "fanout" || f[1] != s.runID {
		return
	}
	i, err1 := strconv.Atoi(f[2])
	sent, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || i < 0 || i >= len(s.seen)*64 {
		return
	}
	if s.seen[i/64]&(1<<(i%64)) != 0 {
		s.dups++
		return
	}
	s.seen[i/64] |= 1 << (i % 64)
	if last, ok := s.lastSeq[ev.Message.ConversationID]; ok && ev.Message.Seq <= last {
		s.outOfOrder++
	}
	s.lastSeq[ev.Message.ConversationID] = ev.Message.Seq
	s.hist.Record(now.Sub(time.Unix(0, sent)))
	if s.first.IsZero() {
		s.first = now
	}
	s.end = now
	s.received.Add(1)
}

// missed counts the acknowledged messages it never received.
func (s *subscriber) missed(acked []atomic.Bool) int64 {
	var n int64
	for i := range acked {
		if acked[i].Load() && s.seen[i/64]&(1<<(i%64)) == 0 {
			n++
		}
	}
	return n
}
