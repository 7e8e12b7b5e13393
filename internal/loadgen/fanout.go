package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runFanout measures live delivery: cfg.Subscribers SSE streams follow one
// fresh group, then cfg.Clients writers post cfg.Rate messages a second
// into it for cfg.Duration (open loop: the schedule does not wait for the
// answers, as real users do not), and every subscriber checks that it got
// each acknowledged message exactly once. Server memory is read before the
// subscribers connect and once they sit idle, for the cost of one idle
// subscriber.
func runFanout(ctx context.Context, c *client, cfg Config, rep *Report) error {
	if cfg.Subscribers <= 0 || cfg.Rate <= 0 {
		return fmt.Errorf("fanout needs --subscribers and --rate above 0")
	}
	id := runID()
	group := cfg.Group + "-" + id
	convs, err := seed(ctx, c, group, cfg.Conversations, 0, seedWorkers, cfg.Log)
	if err != nil {
		return fmt.Errorf("creating conversations: %w", err)
	}
	total := int(math.Ceil(cfg.Rate * cfg.Duration.Seconds()))
	f := &FanoutReport{Group: group, Subscribers: cfg.Subscribers, Conversations: len(convs), TargetRate: cfg.Rate}
	rep.Fanout = f

	before, _ := scrape(c, cfg.URL)
	fmt.Fprintf(cfg.Log, "connecting %d subscribers to group %q\n", cfg.Subscribers, group)
	sctx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	subs, wg, err := connect(sctx, c, cfg, group, id, total, f)
	if err != nil {
		return err
	}
	defer wg.Wait()
	defer stopSubs()
	time.Sleep(2 * time.Second) // let the server settle before reading its memory
	idle, _ := scrape(c, cfg.URL)
	f.Idle = idleMemory(before, idle, f.Connected)

	fmt.Fprintf(cfg.Log, "posting %.1f messages/s for %s with %d writers\n", cfg.Rate, cfg.Duration, cfg.Clients)
	acked := make([]atomic.Bool, total)
	postStart := time.Now()
	post := postPaced(ctx, c, cfg, convs, id, acked)
	f.Posted, f.PostErrors, f.PostLatency = post.ok, post.failed, latencyOf(&post.hist)
	f.PostRate = rate(uint64(post.ok), post.end.Sub(postStart).Seconds())
	if post.sample != "" {
		rep.ErrorSamples = map[string]string{"post": post.sample}
	}

	// Wait until every live subscriber has everything, or delivery stalls.
	var live int64
	for _, s := range subs {
		if s.failure == "" {
			live++
		}
	}
	f.Expected = live * post.ok
	drainStart, progress, lastN := time.Now(), time.Now(), int64(-1)
	for ctx.Err() == nil && time.Since(progress) < 5*time.Second {
		var n int64
		for _, s := range subs {
			n += s.received.Load()
		}
		if n >= f.Expected {
			break
		}
		if n != lastN {
			lastN, progress = n, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.DrainSeconds = time.Since(drainStart).Seconds()
	after, _ := scrape(c, cfg.URL)
	stopSubs()
	wg.Wait()

	var hist Histogram
	var last time.Time
	shards := map[*LockedHistogram]bool{}
	failures := map[string]int64{}
	for _, s := range subs {
		if !shards[s.hist] {
			shards[s.hist] = true
			s.hist.MergeInto(&hist)
		}
		if s.failure != "" {
			failures[s.failure]++
		}
		f.Delivered += s.received.Load()
		f.Duplicates += s.dups
		f.OutOfOrder += s.outOfOrder
		f.Reconnects += s.reconnects
		if m := s.missed(acked); m > 0 && s.failure == "" {
			f.Missed += m
			f.SubscribersMissing++
		}
		if s.end.After(last) {
			last = s.end
		}
	}
	if len(failures) > 0 {
		f.SubscriberFailures = failures
	}
	f.DeliveryLatency = latencyOf(&hist)
	f.DeliveredPerSec = rate(uint64(f.Delivered), last.Sub(postStart).Seconds())
	if idle != nil && after != nil && f.Delivered > 0 {
		// From idle to drained: what posting and delivering cost the server.
		cpu := after["process_cpu_seconds_total"] - idle["process_cpu_seconds_total"]
		f.ServerCPUSeconds, f.ServerCPUMicrosPerEvent = cpu, cpu*1e6/float64(f.Delivered)
	}
	if before != nil && after != nil {
		f.ServerDropped = after["threads_event_subscribers_dropped_total"] - before["threads_event_subscribers_dropped_total"]
		f.ServerDelivered = after["threads_events_delivered_total"] - before["threads_events_delivered_total"]
	}
	rep.Seconds = cfg.Duration.Seconds()
	rep.Requests, rep.Errors, rep.RPS, rep.Latency = post.ok+post.failed, post.failed, f.PostRate, f.PostLatency
	rep.Errors += int64(len(subs)) - int64(f.Connected) + f.Missed + f.Duplicates + f.OutOfOrder
	return nil
}

// connect starts every subscriber, at most 64 connecting at once (a
// burst of thousands of SYNs overflows the listen backlog), and returns
// once each has its first cursor or has failed.
func connect(ctx context.Context, c *client, cfg Config, group, id string, total int, f *FanoutReport) ([]*subscriber, *sync.WaitGroup, error) {
	hc := streamClient()
	u := strings.TrimRight(cfg.URL, "/") + "/v1/threads/events?" + url.Values{"group_id": {group}}.Encode()
	shards := make([]*LockedHistogram, 64)
	for i := range shards {
		shards[i] = &LockedHistogram{}
	}
	subs := make([]*subscriber, cfg.Subscribers)
	gate := make(chan struct{}, 64)
	var ready sync.WaitGroup
	var connected atomic.Int64
	wg := &sync.WaitGroup{}
	start := time.Now()
	for i := range subs {
		s := &subscriber{url: u, auth: c.auth, runID: id, hist: shards[i%len(shards)],
			seen: make([]uint64, (total+63)/64), lastSeq: map[string]int64{}}
		subs[i] = s
		ready.Add(1)
		gate <- struct{}{}
		wg.Go(func() {
			s.run(ctx, hc, func(ok bool) {
				if ok {
					connected.Add(1)
				}
				<-gate
				ready.Done()
			})
		})
		if i > 0 && i%1000 == 0 {
			fmt.Fprintf(cfg.Log, "  %d subscribers connecting, %d connected\n", i, connected.Load())
		}
	}
	ready.Wait()
	f.Connected = int(connected.Load())
	f.ConnectSeconds = time.Since(start).Seconds()
	if m, err := scrape(c, cfg.URL); err == nil {
		f.ServerSubscribers = m["threads_event_subscribers"]
	}
	if f.Connected == 0 {
		wg.Wait()
		return nil, nil, fmt.Errorf("no subscriber could connect: %s", subs[0].failure)
	}
	return subs, wg, nil
}

type postResult struct {
	ok, failed int64
	hist       Histogram
	end        time.Time
	sample     string
}

// postPaced posts message i at start + i/rate, handing each to one of
// cfg.Clients writers. The send time written into the text is taken just
// before the request goes out, so a writer that falls behind the schedule
// lowers the achieved rate but does not inflate delivery latency.
func postPaced(ctx context.Context, c *client, cfg Config, convs []seeded, id string, acked []atomic.Bool) *postResult {
	jobs := make(chan int, len(acked))
	go func() {
		defer close(jobs)
		start := time.Now()
		for i := range acked {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))))
			if ctx.Err() != nil {
				return
			}
			jobs <- i
		}
	}()
	var mu sync.Mutex
	res := &postResult{}
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			var h Histogram
			var ok, failed int64
			sample := ""
			for i := range jobs {
				conv := convs[i%len(convs)].ID
				t0 := time.Now()
				body := fmt.Appendf(nil, `{"conversation_id":%q,"author_id":"bench","id":"fanout-%s-%d","text":"fanout %s %d %d"}`,
					conv, id, i, id, i, t0.UnixNano())
				if _, err := c.do("CreateMessage", body, nil); err != nil {
					failed++
					sample = err.Error()
					continue
				}
				h.Record(time.Since(t0))
				acked[i].Store(true)
				ok++
			}
			mu.Lock()
			defer mu.Unlock()
			res.ok, res.failed = res.ok+ok, res.failed+failed
			res.hist.Merge(&h)
			if sample != "" {
				res.sample = sample
			}
			res.end = time.Now()
		})
	}
	wg.Wait()
	return res
}
