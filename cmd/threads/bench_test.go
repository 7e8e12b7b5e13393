package main

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/loadgen"
)

// bench runs `threads bench --json` against url and decodes the report.
func bench(t *testing.T, url, key string, args ...string) *loadgen.Report {
	t.Helper()
	code, out, errs := run(t, append([]string{"bench", "--url", url, "--key", key, "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("bench %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
	}
	var r loadgen.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench %v: report is not JSON: %v\n%s", args, err, out)
	}
	return &r
}

// checkLoad asserts what any clean closed-loop run reports. No bound on
// speed: the machine running the tests may be slow or busy.
func checkLoad(t *testing.T, r *loadgen.Report) {
	t.Helper()
	l := r.Latency
	if r.Errors != 0 || r.Requests == 0 || r.RPS <= 0 || r.Seconds <= 0 {
		t.Errorf("%s: %d requests, %d errors %v, %.0f req/s over %.2fs", r.Scenario, r.Requests, r.Errors, r.ErrorSamples, r.RPS, r.Seconds)
	}
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("%s: latency percentiles out of order: %+v", r.Scenario, l)
	}
}

// TestBenchScenarios runs every scenario briefly against a real server
// and checks the reports: no errors, sane counts, and for fan-out every
// acknowledged message delivered once to every subscriber.
func TestBenchScenarios(t *testing.T) {
	api, stdout := startServe(t, "--db", filepath.Join(t.TempDir(), "threads.db"))
	url := api.URL
	key := keyRE.FindString(stdout.String())
	short := []string{"--duration", "300ms", "--clients", "3"}

	for _, sc := range []string{"create", "list", "recent", "conversations", "mixed"} {
		t.Run(sc, func(t *testing.T) {
			r := bench(t, url, key, append(short, "--scenario", sc, "--conversations", "12", "--messages", "30", "--limit", "5")...)
			checkLoad(t, r)
			if r.Scenario != sc || r.Seed == nil || r.Seed.Conversations != 12 || r.Seed.Group != "bench-"+sc {
				t.Errorf("seed: %+v", r.Seed)
			}
			if r.Server == nil || r.Server.RSSBytes <= 0 {
				t.Errorf("server figures missing from /metrics: %+v", r.Server)
			}
			if sc == "mixed" && len(r.Ops) < 2 {
				t.Errorf("mixed reported ops %v, want several", r.Ops)
			}
		})
	}

	t.Run("reuse", func(t *testing.T) {
		// A second run tops the same group up instead of seeding anew.
		r := bench(t, url, key, append(short, "--scenario", "list", "--conversations", "12", "--messages", "40", "--deep")...)
		checkLoad(t, r)
		res := api.MustPost(t, "ListConversations", key, `{"group_id":"bench-list"}`)
		if n := strings.Count(string(res.Raw), `"topic"`); res.Status != 200 || n != 12 {
			t.Errorf("bench-list holds %d conversations after two runs, want 12 (%d)", n, res.Status)
		}
		convs := apitest.MustField[[]apitest.Conversation](t, res, "conversations")
		res = api.MustPost(t, "ListMessages", key, `{"conversation_id":"`+convs[0].ID+`","limit":1}`)
		if !strings.Contains(string(res.Raw), `"seq":40`) {
			t.Errorf("newest message after topping up to 40: %s", res.Raw)
		}
	})

	t.Run("floor", func(t *testing.T) {
		r := bench(t, url, key, append(short, "--scenario", "create", "--floor", "--client-ids")...)
		checkLoad(t, r)
		if f := r.Floor; f == nil || f.RPS <= 0 || f.Errors != 0 || f.Ratio <= 0 {
			t.Errorf("floor: %+v", r.Floor)
		}
	})

	t.Run("floor-url", func(t *testing.T) {
		// The floor in a process of its own (here a goroutine running
		// the same command), measured through --floor-url.
		ctx, cancel := context.WithCancel(context.Background())
		out, done := &syncBuffer{}, make(chan int, 1)
		go func() { done <- Main(ctx, []string{"bench", "--serve-floor", "127.0.0.1:0"}, out, io.Discard) }()
		defer func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("--serve-floor exited %d", code)
			}
		}()
		floorURL := ""
		apitest.Eventually(t, "--serve-floor to print its address", func() bool {
			floorURL = regexp.MustCompile(`http://\S+`).FindString(out.String())
			return floorURL != ""
		})
		r := bench(t, url, key, append(short, "--scenario", "list", "--conversations", "12", "--messages", "40", "--floor-url", floorURL)...)
		checkLoad(t, r)
		if f := r.Floor; f == nil || f.RPS <= 0 || f.Errors != 0 || f.Ratio <= 0 {
			t.Errorf("floor: %+v", r.Floor)
		}
	})

	t.Run("fanout", func(t *testing.T) {
		r := bench(t, url, key, "--scenario", "fanout", "--subscribers", "10", "--rate", "40",
			"--duration", "500ms", "--clients", "2", "--conversations", "2")
		f := r.Fanout
		if f == nil {
			t.Fatalf("no fanout report: %+v", r)
		}
		if f.Connected != 10 || f.Posted != 20 || f.PostErrors != 0 {
			t.Errorf("connected %d, posted %d with %d errors; want 10, 20, 0", f.Connected, f.Posted, f.PostErrors)
		}
		if f.Expected != 200 || f.Delivered != 200 || f.Missed != 0 || f.Duplicates != 0 || f.OutOfOrder != 0 {
			t.Errorf("delivered %d of %d, missed %d, duplicates %d, out of order %d",
				f.Delivered, f.Expected, f.Missed, f.Duplicates, f.OutOfOrder)
		}
		if l := f.DeliveryLatency; !(0 < l.P50 && l.P50 <= l.P99 && l.P99 <= l.Max) || f.DeliveredPerSec <= 0 {
			t.Errorf("delivery latency %+v, %.0f events/s", l, f.DeliveredPerSec)
		}
		if f.ServerSubscribers != 10 || f.Idle == nil || f.Idle.GoroutinesAfter <= f.Idle.GoroutinesBefore {
			t.Errorf("server view: %.0f subscribers, idle %+v", f.ServerSubscribers, f.Idle)
		}
		if r.Errors != 0 {
			t.Errorf("report errors %d", r.Errors)
		}
	})
}

// TestBenchRefusals: bench loads only this machine unless told, stays
// bounded in time, and reports misuse before sending anything.
func TestBenchRefusals(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--url", "http://example.com:8080"}, 1, "not a loopback address"},
		{[]string{"--url", "http://10.1.2.3"}, 1, "--allow-remote"},
		{[]string{"--duration", "11m"}, 1, "--long"},
		{[]string{"--scenario", "nope", "--url", "http://127.0.0.1:1"}, 1, "unknown scenario"},
		{[]string{"--url", "http://127.0.0.1:1", "--duration", "100ms"}, 1, "connection refused"},
		{[]string{"extra"}, 2, "unexpected argument"},
	} {
		code, _, errs := run(t, append([]string{"bench", "--key", "thr_x"}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("bench %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errs, c.code, c.want)
		}
	}
	if code, _, errs := run(t, "bench"); code != 2 || !strings.Contains(errs, "--key") {
		t.Errorf("bench without a key: exit %d %q", code, errs)
	}
}

// TestProfileServe is not a test but a tool: the server has no pprof
// endpoint, so to see where a `threads bench` run spends the server's CPU,
// run serve in this test process under runtime/pprof and load it from
// another process:
//
//	THREADS_PROFILE_SERVE='--db /tmp/p.db --addr 127.0.0.1:18090 --max-streams-per-key 20000' \
//	THREADS_PROFILE_OUT=/tmp/cpu.pprof THREADS_PROFILE_FOR=60s \
//	go test -run TestProfileServe -timeout 0 ./cmd/threads
//
// It serves for THREADS_PROFILE_FOR, profiling CPU throughout, and writes
// a heap profile beside it at the end (allocations) and, with
// THREADS_PROFILE_HEAP_AT=20s, one at that moment (what is in use then,
// e.g. with idle subscribers connected); `go tool pprof` reads them.
func TestProfileServe(t *testing.T) {
	args := os.Getenv("THREADS_PROFILE_SERVE")
	if args == "" {
		t.Skip("set THREADS_PROFILE_SERVE to serve under the profiler")
	}
	out := cmp.Or(os.Getenv("THREADS_PROFILE_OUT"), "cpu.pprof")
	d, err := time.ParseDuration(cmp.Or(os.Getenv("THREADS_PROFILE_FOR"), "60s"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if at, err := time.ParseDuration(os.Getenv("THREADS_PROFILE_HEAP_AT")); err == nil {
		time.AfterFunc(at, func() {
			runtime.GC()
			if h, err := os.Create(out + ".heap-at"); err == nil {
				pprof.Lookup("heap").WriteTo(h, 0)
				h.Close()
			}
		})
	}
	code := Main(ctx, append([]string{"serve"}, strings.Fields(args)...), os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	if h, err := os.Create(out + ".heap"); err == nil {
		pprof.Lookup("heap").WriteTo(h, 0)
		h.Close()
	}
	if code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}
