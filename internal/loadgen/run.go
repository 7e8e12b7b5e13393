// Package loadgen is the engine of `threads bench`: it seeds the data a
// scenario needs through the public API, drives the server with
// closed-loop clients (each sends its next request when the previous one
// is answered, as pgbench does), or with SSE subscribers and paced
// writers for fan-out, and reports throughput, latency percentiles and
// errors. It talks to the server only over HTTP, so it measures what a
// client sees, from another process or another machine.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	rnd "math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Config is one bench run.
type Config struct {
	URL, Key string
	Scenario string
	Clients  int
	Duration time.Duration
	// Conversations and Messages (per conversation) size the seeded data;
	// 0 takes the scenario's default (see shape).
	Conversations, Messages int
	Group                   string  // default "bench-" + scenario; fan-out always uses a fresh group
	Limit                   int     // page size for list, recent and conversations (default 25)
	Deep                    bool    // list pages before a random instant instead of the newest
	ClientIDs               bool    // create sends client message ids (the idempotency path)
	Floor                   bool    // also measure the in-process JSON echo server
	Subscribers             int     // fanout: SSE subscribers
	Rate                    float64 // fanout: messages posted per second
	Log                     io.Writer
}

func (c *Config) defaults() error {
	if _, ok := shape[c.Scenario]; !ok {
		return fmt.Errorf("unknown scenario %q (want one of %v)", c.Scenario, Scenarios)
	}
	if c.Clients <= 0 || c.Duration <= 0 {
		return fmt.Errorf("clients and duration must be positive")
	}
	if c.Conversations <= 0 {
		c.Conversations = shape[c.Scenario].convs
	}
	if c.Messages <= 0 {
		c.Messages = shape[c.Scenario].msgs
	}
	if c.Group == "" {
		c.Group = "bench-" + c.Scenario
	}
	if c.Limit <= 0 {
		c.Limit = 25
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// Run seeds, runs the scenario for cfg.Duration and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c := newClient(cfg.URL, cfg.Key, max(cfg.Clients, seedWorkers))
	defer c.close()
	rep := &Report{Scenario: cfg.Scenario, URL: cfg.URL, Clients: cfg.Clients, Date: time.Now().UTC().Format(time.RFC3339)}
	if cfg.Scenario == "fanout" {
		return rep, runFanout(ctx, c, cfg, rep)
	}
	start := time.Now()
	fmt.Fprintf(cfg.Log, "seeding group %q: %d conversations × %d messages\n", cfg.Group, cfg.Conversations, cfg.Messages)
	convs, err := seed(ctx, c, cfg.Group, cfg.Conversations, cfg.Messages, seedWorkers, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	rep.Seed = &SeedReport{Group: cfg.Group, Conversations: len(convs), MessagesPerConversation: cfg.Messages,
		Seconds: time.Since(start).Seconds()}

	sc := newScenario(cfg.Scenario, cfg.Group, runID(), convs, cfg.Limit, cfg.Deep, cfg.ClientIDs)
	before, _ := scrape(c, cfg.URL)
	fmt.Fprintf(cfg.Log, "running %s: %d clients for %s\n", cfg.Scenario, cfg.Clients, cfg.Duration)
	res := closedLoop(ctx, cfg.Clients, cfg.Duration, func(w *worker) (string, outcome, error) {
		r := sc.next(w)
		var out any
		if r.page != nil {
			out = r.page
		}
		o, err := c.do(r.method, r.body, out)
		sc.done(w, r)
		return r.op, o, err
	})
	after, _ := scrape(c, cfg.URL)
	res.fill(rep)
	rep.Server = serverUse(before, after, rep.Requests)

	if cfg.Floor {
		fmt.Fprintf(cfg.Log, "running the floor: JSON echo, %d clients for %s\n", cfg.Clients, cfg.Duration)
		f, err := runFloor(ctx, cfg.Clients, cfg.Duration)
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		rep.Floor = f
		if f.RPS > 0 {
			f.Ratio = rep.RPS / f.RPS
		}
	}
	return rep, nil
}

// seedWorkers is how many requests seeding keeps in flight.
const seedWorkers = 32

func runID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// loadResult is what the closed loop measured, merged across clients.
type loadResult struct {
	ops     map[string]*Histogram // successful calls' latency by operation
	errs    map[string]int64      // failed calls by outcome
	samples map[string]string     // one error text per outcome
	elapsed time.Duration
}

// closedLoop runs clients goroutines, each calling call back to back
// until d has passed. Each keeps its own histograms and counts, merged at
// the end, so measuring adds no shared lock to the load. A request under
// way at the deadline is finished and counted; elapsed runs to the last
// answer, so the rate is never flattered.
func closedLoop(ctx context.Context, clients int, d time.Duration, call func(*worker) (string, outcome, error)) *loadResult {
	type local struct {
		ops     map[string]*Histogram
		errs    map[string]int64
		samples map[string]string
		end     time.Time
	}
	locals := make([]local, clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range clients {
		l := &locals[i]
		l.ops, l.errs, l.samples = map[string]*Histogram{}, map[string]int64{}, map[string]string{}
		w := &worker{id: i, rng: rnd.New(rnd.NewPCG(uint64(i), uint64(start.UnixNano())))}
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				op, o, err := call(w)
				l.end = time.Now()
				if o != "" {
					l.errs[o]++
					if _, ok := l.samples[o]; !ok && err != nil {
						l.samples[o] = err.Error()
					}
					continue
				}
				h := l.ops[op]
				if h == nil {
					h = &Histogram{}
					l.ops[op] = h
				}
				h.Record(l.end.Sub(t0))
			}
		})
	}
	wg.Wait()
	res := &loadResult{ops: map[string]*Histogram{}, errs: map[string]int64{}, samples: map[string]string{}}
	end := start
	for _, l := range locals {
		for op, h := range l.ops {
			if res.ops[op] == nil {
				res.ops[op] = &Histogram{}
			}
			res.ops[op].Merge(h)
		}
		for o, n := range l.errs {
			res.errs[o] += n
			if _, ok := res.samples[o]; !ok {
				res.samples[o] = l.samples[o]
			}
		}
		if l.end.After(end) {
			end = l.end
		}
	}
	res.elapsed = end.Sub(start)
	return res
}

// fill writes the result into the report: totals, and per operation when
// the scenario mixes several.
func (r *loadResult) fill(rep *Report) {
	var all Histogram
	names := make([]string, 0, len(r.ops))
	for op, h := range r.ops {
		all.Merge(h)
		names = append(names, op)
	}
	slices.Sort(names)
	secs := r.elapsed.Seconds()
	rep.Seconds = secs
	rep.Latency = latencyOf(&all)
	rep.RPS = rate(all.Count(), secs)
	for _, n := range r.errs {
		rep.Errors += n
	}
	rep.Requests = int64(all.Count()) + rep.Errors
	if len(r.errs) > 0 {
		rep.ErrorsByKind, rep.ErrorSamples = r.errs, r.samples
	}
	if len(names) > 1 {
		rep.Ops = map[string]*OpReport{}
		for _, n := range names {
			h := r.ops[n]
			rep.Ops[n] = &OpReport{Requests: int64(h.Count()), RPS: rate(h.Count(), secs), Latency: latencyOf(h)}
		}
	}
}

func rate(n uint64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}
