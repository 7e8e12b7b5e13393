package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/threads-server/threads/internal/sse"
)

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// runWatch follows a group or conversations live through the server's
// event stream (GET /v1/threads/events), printing each event's data as
// one JSON line. When the connection drops it reconnects with the last
// cursor, as a browser's EventSource does, so nothing is missed or
// printed twice; on exit it prints the cursor to resume from on stderr.
func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("watch", stderr)
	base := fs.String("url", env("url", "http://localhost:8080"), "server URL (env THREADS_URL)")
	key := fs.String("key", env("key", ""), "API key (env THREADS_KEY)")
	ns := fs.String("namespace", env("namespace", ""), "tenant to act for, with an admin key (env THREADS_NAMESPACE)")
	group := fs.String("group", "", "follow this group")
	var convs stringsFlag
	fs.Var(&convs, "conversation", "follow this conversation (repeatable)")
	after := fs.String("after", "", "resume after this cursor")
	count := fs.Int("count", 0, "exit after this many events (0: follow until interrupted)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *key == "" || *group == "" && len(convs) == 0 {
		fmt.Fprintln(stderr, "usage: threads watch --key KEY (--group G | --conversation C ...) [--url URL] [--after CURSOR] [--count N]")
		return errUsage
	}
	q := url.Values{"conversation_id": convs}
	if *group != "" {
		q.Set("group_id", *group)
	}
	w := &watcher{url: strings.TrimRight(*base, "/") + "/v1/threads/events?" + q.Encode(),
		key: *key, ns: *ns, cursor: *after, left: *count, out: json.NewEncoder(stdout), stderr: stderr}
	err := w.run(ctx)
	if w.cursor != "" {
		fmt.Fprintf(stderr, "resume with: --after %s\n", w.cursor)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, errDone) {
		return nil
	}
	return err
}

var errDone = errors.New("done")

type watcher struct {
	url, key, ns, cursor string
	left                 int
	out                  *json.Encoder
	stderr               io.Writer
}

// run connects, and reconnects after a dropped stream or a server that
// is unavailable, until ctx ends, --count is reached or the server
// refuses the request for good (a 4xx answer).
func (w *watcher) run(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for {
		err := w.stream(ctx)
		var refused *refusedError
		switch {
		case errors.Is(err, errDone), ctx.Err() != nil:
			return err
		case errors.As(err, &refused) && refused.status < 500 && refused.status != http.StatusTooManyRequests:
			return err
		}
		fmt.Fprintf(w.stderr, "stream interrupted (%v); reconnecting in %s\n", err, backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// refusedError is an answer other than 200: the go-micro envelope.
type refusedError struct {
	status int
	body   string
}

func (e *refusedError) Error() string { return fmt.Sprintf("%d %s", e.status, e.body) }

func (w *watcher) stream(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+w.key)
	req.Header.Set("Accept", "text/event-stream")
	if w.ns != "" {
		req.Header.Set("Micro-Namespace", w.ns)
	}
	if w.cursor != "" {
		req.Header.Set("Last-Event-ID", w.cursor)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return &refusedError{status: res.StatusCode, body: strings.TrimSpace(string(body))}
	}
	r := sse.NewReader(res.Body)
	r.IDOnly = func(id string) { w.cursor = id }
	for {
		e, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		w.cursor = e.ID
		if err := w.out.Encode(json.RawMessage(e.Data)); err != nil {
			return fmt.Errorf("event data is not JSON: %w", err)
		}
		if w.left > 0 {
			if w.left--; w.left == 0 {
				return errDone
			}
		}
	}
}

var _ flag.Value = (*stringsFlag)(nil)
