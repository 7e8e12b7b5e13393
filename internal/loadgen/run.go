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
	Floor                   bool    // also measure the JSON echo server
	FloorURL                string  // the echo server of another process (ServeFloor); default in-process
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
	workers := newWorkers(cfg.Clients)
	ours := func(d time.Duration) *loadResult {
		return closedLoop(ctx, workers, d, func(w *worker) (string, outcome, error) {
			r := sc.next(w)
			var out any
			if r.page != nil {
				out = r.page
			}
			o, err := c.do(r.method, r.body, out)
			sc.done(w, r)
			return r.op, o, err
		})
	}
	// With --floor, our server and the echo server take turns in slices of
	// a second, so that a burst of noise from elsewhere on the machine
	// hits both alike and their ratio holds still.
	slice := cfg.Duration
	var floor *floorServer
	if cfg.Floor {
		if floor, err = startFloor(cfg.Clients, cfg.FloorURL); err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		defer floor.close()
		slice = min(time.Second, cfg.Duration)
		fmt.Fprintf(cfg.Log, "running %s and the floor (JSON echo) in turns of %s: %d clients for %s each\n",
			cfg.Scenario, slice, cfg.Clients, cfg.Duration)
	} else {
		fmt.Fprintf(cfg.Log, "running %s: %d clients for %s\n", cfg.Scenario, cfg.Clients, cfg.Duration)
	}
	before, _ := scrape(c, cfg.URL)
	res, fres := newLoadResult(), newLoadResult()
	for left := cfg.Duration; left > 0 && ctx.Err() == nil; left -= slice {
		res.merge(ours(min(slice, left)))
		if floor != nil {
			fres.merge(floor.load(ctx, min(slice, left)))
		}
	}
	after, _ := scrape(c, cfg.URL)
	res.fill(rep)
	rep.Server = serverUse(before, after, rep.Requests)
	if floor != nil {
		var f Report
		fres.fill(&f)
		rep.Floor = &FloorReport{RPS: f.RPS, Latency: f.Latency, Errors: f.Errors}
		if f.RPS > 0 {
			rep.Floor.Ratio = rep.RPS / f.RPS
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

func newWorkers(n int) []*worker {
	ws := make([]*worker, n)
	seed := uint64(time.Now().UnixNano())
	for i := range ws {
		ws[i] = &worker{id: i, rng: rnd.New(rnd.NewPCG(uint64(i), seed))}
	}
	return ws
}

func newLoadResult() *loadResult {
	return &loadResult{ops: map[string]*Histogram{}, errs: map[string]int64{}, samples: map[string]string{}}
}

// merge adds o to r; elapsed times add up, as the runs took turns.
func (r *loadResult) merge(o *loadResult) {
	for op, h := range o.ops {
		if r.ops[op] == nil {
			r.ops[op] = &Histogram{}
		}
		r.ops[op].Merge(h)
	}
	for k, n := range o.errs {
		r.errs[k] += n
		if _, ok := r.samples[k]; !ok {
			r.samples[k] = o.samples[k]
		}
	}
	r.elapsed += o.elapsed
}

// closedLoop runs one goroutine per worker, each calling call back to
// back until d has passed. Each keeps its own histograms and counts,
// merged at the end, so measuring adds no shared lock to the load. A
// request under way at the deadline is finished and counted; elapsed runs
// to the last answer, so the rate is never flattered.
func closedLoop(ctx context.Context, workers []*worker, d time.Duration, call func(*worker) (string, outcome, error)) *loadResult {
	locals := make([]*loadResult, len(workers))
	ends := make([]time.Time, len(workers))
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, w := range workers {
		l := newLoadResult()
		locals[i] = l
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				op, o, err := call(w)
				ends[i] = time.Now()
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
				h.Record(ends[i].Sub(t0))
			}
		})
	}
	wg.Wait()
	res := newLoadResult()
	end := start
	for i, l := range locals {
		res.merge(l)
		if ends[i].After(end) {
			end = ends[i]
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
