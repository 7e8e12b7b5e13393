package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestWatch follows a group through `threads watch`, then resumes with
// the cursor it printed on exit and gets exactly what was posted since.
func TestWatch(t *testing.T) {
	api, stdout := startServe(t, "--db", filepath.Join(t.TempDir(), "threads.db"))
	url := api.URL
	key := keyRE.FindString(stdout.String())
	id := api.CreateConversation(t, key, "g", "t").ID

	watch := func(args ...string) (int, []map[string]any, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // liveness guard
		defer cancel()
		out, errb := &syncBuffer{}, &syncBuffer{}
		code := Main(ctx, append([]string{"watch", "--url", url, "--key", key}, args...), out, errb)
		var events []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if line == "" {
				continue
			}
			var e map[string]any
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("watch printed a line that is not JSON: %q", line)
			}
			events = append(events, e)
		}
		return code, events, errb.String()
	}

	done := make(chan struct{})
	var code int
	var events []map[string]any
	var stderr string
	go func() {
		defer close(done)
		code, events, stderr = watch("--group", "g", "--count", "2")
	}()
	// Post until the watcher has both: it may connect after the first.
	pace := time.NewTicker(50 * time.Millisecond)
	defer pace.Stop()
	for i := 0; ; i++ {
		api.MustPost(t, "CreateMessage", key, `{"conversation_id":"`+id+`","author_id":"a","text":"m`+string(rune('0'+i%10))+`"}`)
		select {
		case <-done:
		case <-pace.C:
			continue
		}
		break
	}
	if code != 0 || len(events) != 2 || events[0]["type"] != "message.created" || events[1]["type"] != "message.created" {
		t.Fatalf("watch: exit %d, events %v, stderr %s", code, events, stderr)
	}
	cursor := regexp.MustCompile(`--after (\S+)`).FindStringSubmatch(stderr)
	if cursor == nil || cursor[1] != events[1]["cursor"] {
		t.Fatalf("watch did not print the last cursor to resume from: %q", stderr)
	}

	api.MustPost(t, "UpdateConversation", key, `{"id":"`+id+`","topic":"later"}`)
	code, events, stderr = watch("--conversation", id, "--after", cursor[1], "--count", "1")
	if code != 0 || len(events) != 1 || events[0]["type"] != "conversation.updated" {
		t.Fatalf("resume: exit %d, events %v, stderr %s", code, events, stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errb := &syncBuffer{}
	if code := Main(ctx, []string{"watch", "--url", url, "--group", "g"}, &syncBuffer{}, errb); code != 2 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("watch without a key: exit %d, stderr %s; want usage", code, errb)
	}
	if code := Main(ctx, []string{"watch", "--url", url, "--key", "thr_" + strings.Repeat("x", 43), "--group", "g"}, &syncBuffer{}, errb); code != 1 || !strings.Contains(errb.String(), "UNAUTHORIZED") {
		t.Errorf("watch with an unknown key: exit %d, stderr %s", code, errb)
	}
}
