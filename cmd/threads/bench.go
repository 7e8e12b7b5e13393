package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/threads-server/threads/internal/loadgen"
)

// maxBenchDuration bounds a run unless --long is given: a load generator
// left running by mistake should stop by itself.
const maxBenchDuration = 10 * time.Minute

// runBench is `threads bench`, a load generator in the binary like pgbench
// or nats bench: it seeds what a scenario needs through the API, loads the
// server at --url for --duration and prints what it measured. The engine
// is internal/loadgen; this is flags and wiring only.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	var cfg loadgen.Config
	fs.StringVar(&cfg.URL, "url", env("url", "http://localhost:8080"), "server URL (env THREADS_URL)")
	fs.StringVar(&cfg.Key, "key", env("key", ""), "API key (env THREADS_KEY)")
	fs.StringVar(&cfg.Scenario, "scenario", "create", "one of "+strings.Join(loadgen.Scenarios, ", "))
	fs.IntVar(&cfg.Clients, "clients", 16, "concurrent closed-loop clients (fanout: concurrent writers)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to load the server (fanout: how long to post)")
	long := fs.Bool("long", false, "allow --duration above "+maxBenchDuration.String())
	fs.IntVar(&cfg.Messages, "messages", 0, "messages per seeded conversation (list, recent, mixed; 0: scenario default)")
	fs.IntVar(&cfg.Conversations, "conversations", 0, "conversations to seed in the group (0: scenario default)")
	fs.StringVar(&cfg.Group, "group", "", "group to seed and use (default bench-SCENARIO; reruns reuse and top it up)")
	fs.IntVar(&cfg.Limit, "limit", 25, "page size of list, recent (per conversation) and conversations")
	fs.BoolVar(&cfg.Deep, "deep", false, "list: read the page before a random instant, not the newest page")
	fs.BoolVar(&cfg.ClientIDs, "client-ids", false, "create: send a client message id (the idempotent path)")
	fs.IntVar(&cfg.Subscribers, "subscribers", 100, "fanout: SSE subscribers to the group (a server allows --max-streams-per-key, default 100)")
	fs.Float64Var(&cfg.Rate, "rate", 20, "fanout: messages posted per second")
	fs.BoolVar(&cfg.Floor, "floor", false, "also measure an in-process net/http JSON echo server under the same load, in turns with the server, and print the ratio")
	fs.StringVar(&cfg.FloorURL, "floor-url", "", "with --floor: measure the echo server at this URL (threads bench --serve-floor) instead of one in this process")
	serveFloor := fs.String("serve-floor", "", "serve the floor's JSON echo on this address until interrupted, and do nothing else")
	allowRemote := fs.Bool("allow-remote", false, "allow a --url that is not a loopback address")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		fmt.Fprintf(stderr, "threads bench: unexpected argument %q\n", pos[0])
		return errUsage
	}
	if *serveFloor != "" {
		return loadgen.ServeFloor(ctx, *serveFloor, func(addr string) {
			fmt.Fprintf(stdout, "floor (JSON echo) listening on http://%s\n", addr)
		})
	}
	if cfg.Key == "" {
		fmt.Fprintln(stderr, "usage: threads bench --key KEY [--url URL] [--scenario S] [--clients N] [--duration D] …  (threads bench -h)")
		return errUsage
	}
	if err := loadgen.CheckTarget(cfg.URL, *allowRemote); err != nil {
		return err
	}
	if cfg.FloorURL != "" {
		cfg.Floor = true
		if err := loadgen.CheckTarget(cfg.FloorURL, *allowRemote); err != nil {
			return err
		}
	}
	if cfg.Duration > maxBenchDuration && !*long {
		return fmt.Errorf("--duration %s is above %s; pass --long to mean it", cfg.Duration, maxBenchDuration)
	}
	cfg.Log = stderr
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.Print(stdout)
	}
	// A run with errors still prints its figures, and exits 1 so that a
	// script cannot mistake it for a clean one.
	if rep.Errors > 0 {
		return fmt.Errorf("%d errors during the run", rep.Errors)
	}
	return nil
}
