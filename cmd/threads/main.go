// Command threads runs the threads service and administers its database.
//
//	threads serve   [--addr localhost:8080] [--db threads.db | sqlite:PATH]
//	threads keys create TENANT [--admin]
//	threads keys list
//	threads keys revoke KEY_ID
//	threads migrate
//	threads watch --key KEY (--group G | --conversation C ...) [--url URL] [--after CURSOR]
//	threads bench --key KEY [--url URL] [--scenario S] [--clients N] [--duration D] [--floor] [--json]
//
// Every flag has a THREADS_* environment variable; a flag beats the
// environment, which beats the default. This is the only package where
// concrete types meet: it opens a store and hands it to the server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `threads: threaded conversations grouped by topic (m3o Threads API).

Usage:
  threads serve   [--addr localhost:8080] [--db threads.db]   run the service
  threads keys create TENANT [--admin]                        make an API key (printed once)
  threads keys list                                           list keys (never their secrets)
  threads keys revoke KEY_ID                                  revoke a key
  threads migrate                                             apply database migrations
  threads watch --key KEY (--group G | --conversation C ...)  follow events live, one JSON line each
  threads bench --key KEY [--scenario S] [--floor]            load a server, report req/s and latency

Run "threads COMMAND -h" for a command's flags.
`

// Main runs one command and returns the process exit code. Tests call it
// directly, with their own context, arguments and output.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "keys":
		err = runKeys(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], stdout, stderr)
	case "watch":
		err = runWatch(ctx, args[1:], stdout, stderr)
	case "bench":
		err = runBench(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "threads: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "threads: %v\n", err)
	return 1
}

// errUsage marks a command-line mistake already reported by the flag set.
var errUsage = errors.New("usage")

// newFlags returns a flag set that reports errors to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("threads "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// env returns THREADS_<NAME> or def: flag defaults come from here, so an
// explicit flag still wins.
func env(name, def string) string {
	if v, ok := os.LookupEnv("THREADS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

// checkEnv applies THREADS_* variables to the flags not given on the
// command line through the flags' own parsers, so that a malformed value
// (THREADS_SHUTDOWN_TIMEOUT=30) is an error rather than silently the
// default.
func checkEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "THREADS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if given[f.Name] || !ok || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s=%q: %v", name, v, e)
		}
	})
	return err
}

// parse parses flags that may come before or after positional arguments
// ("keys create acme --admin") and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, checkEnv(fs)
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), checkEnv(fs)
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
