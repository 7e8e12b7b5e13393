package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// TestCrash is issue 6's crash test: the real binary, concurrent writers
// posting messages with client ids, SIGKILL at a random moment, a restart
// on the same database, then:
//
//   - every message whose CreateMessage answered 200 is stored exactly
//     once, with the seq and sent_at of that answer (and its text);
//   - each conversation's seq is 1..n with no gap, sent_at strictly
//     increasing, and nothing is stored that no writer sent;
//   - a retry of every unacknowledged id answers 200 and either finds the
//     stored message (unchanged) or stores it once;
//   - the conversations of earlier iterations are still exactly as they
//     were (their newest message after each restart, all of them at the
//     end).
//
// It runs on SQLite with synchronous FULL and NORMAL (both survive a crash
// of the process; only FULL survives power loss, which this test does not
// simulate) and on PostgreSQL when THREADS_TEST_POSTGRES is set. Each
// engine runs THREADS_CRASH_ITERATIONS kill/restart cycles (default 3) on
// one database, so later iterations recover a database that has been
// crashed before. A long run:
//
//	THREADS_CRASH_ITERATIONS=200 go test -run TestCrash -timeout 2h ./cmd/threads
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("TestCrash builds the threads binary and kills it repeatedly; skipped under -short")
	}
	iterations := 3
	if v := os.Getenv("THREADS_CRASH_ITERATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("THREADS_CRASH_ITERATIONS=%q: want a positive integer", v)
		}
		iterations = n
	}
	bin := buildThreads(t)
	engines := []struct {
		name string
		db   func(t *testing.T) []string
	}{
		{"sqlite-FULL", func(t *testing.T) []string {
			return []string{"--db", filepath.Join(t.TempDir(), "threads.db"), "--sqlite-synchronous", "FULL"}
		}},
		{"sqlite-NORMAL", func(t *testing.T) []string {
			return []string{"--db", filepath.Join(t.TempDir(), "threads.db"), "--sqlite-synchronous", "NORMAL"}
		}},
		{"postgres", func(t *testing.T) []string { return []string{"--db", pgtest.SchemaURL(t)} }},
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			c := &crashRun{t: t, bin: bin, args: eng.db(t), final: map[string][]apitest.Message{}}
			c.run(iterations)
		})
	}
}

// buildThreads builds this package's binary into a temporary directory.
func buildThreads(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("TestCrash needs the go command to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "threads")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// attempt is one CreateMessage a writer sent, and its 200 answer if one
// came back.
type attempt struct {
	id, conv, author, text string
	acked                  *apitest.Message
}

// crashRun is one engine's sequence of kill/restart iterations on one
// database.
type crashRun struct {
	t    *testing.T
	bin  string
	args []string
	key  string
	// final holds each finished conversation's messages, oldest first, as
	// verified after its iteration: later crashes must not change them.
	final map[string][]apitest.Message
}

func (c *crashRun) run(iterations int) {
	t := c.t
	p := c.start()
	if c.key = keyRE.FindString(p.waitStdout(t, keyRE)); c.key == "" {
		t.Fatalf("no key printed on first start; stdout:\n%s", p.stdout)
	}
	const writers, conversations = 8, 3
	total := 0
	for i := range iterations {
		convs := make([]string, conversations)
		for j := range convs {
			convs[j] = c.createConversation(p, fmt.Sprintf("crash-%d", i), fmt.Sprintf("iteration %d, %d", i, j))
		}
		delay := time.Duration(10+rand.IntN(490)) * time.Millisecond
		attempts := c.write(p, i, writers, convs, delay)

		p = c.start()
		acked := c.verify(p, convs, attempts)
		retried, found := c.retry(p, attempts)
		c.verify(p, convs, attempts)
		c.checkEarlier(p, convs)
		for _, conv := range convs {
			c.final[conv] = c.listAll(p, conv)
		}
		total += acked
		t.Logf("iteration %d: killed after %v; %d creates sent, %d acknowledged (all present, seq and sent_at unchanged); "+
			"%d unacknowledged retried: %d had been stored, %d stored by the retry",
			i+1, delay, len(attempts), acked, retried, found, retried-found)
	}
	// Everything ever verified is still there, message for message.
	for conv, want := range c.final {
		if got := c.listAll(p, conv); !equalMessages(got, want) {
			t.Errorf("conversation %s changed after later crashes: %d messages, had %d", conv, len(got), len(want))
		}
	}
	p.stop(t)
	t.Logf("%d iterations, %d acknowledged writes, 0 lost", iterations, total)
}

// write runs the writers against p and SIGKILLs p after delay. It returns
// every attempt, acknowledged or not.
func (c *crashRun) write(p *serveProc, iteration, writers int, convs []string, delay time.Duration) []*attempt {
	t := c.t
	api := apitest.NewClient(t, p.url)
	defer api.HTTP.CloseIdleConnections()
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		all        []*attempt
		unexpected []string
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				a := &attempt{id: fmt.Sprintf("it%d-w%d-%d", iteration, w, n), conv: convs[(w+n)%len(convs)], author: fmt.Sprintf("writer-%d", w)}
				a.text = "text of " + a.id
				mu.Lock()
				all = append(all, a)
				mu.Unlock()
				res, err := c.createMessage(api, a)
				if err != nil {
					return // the server is gone
				}
				if res.Status != http.StatusOK {
					mu.Lock()
					unexpected = append(unexpected, fmt.Sprintf("%s: %d %s", a.id, res.Status, res.Raw))
					mu.Unlock()
					continue
				}
				m, err := apitest.Field[apitest.Message](res, "message")
				if err != nil {
					mu.Lock()
					unexpected = append(unexpected, fmt.Sprintf("%s: 200 with %s", a.id, res.Raw))
					mu.Unlock()
					continue
				}
				a.acked = &m
			}
		}()
	}
	// The kill at a random moment is the test: whatever the writers are
	// doing after delay, the server dies under them. Nothing to wait for.
	time.Sleep(delay)
	p.kill()
	wg.Wait()
	for _, u := range unexpected {
		t.Errorf("a create answered something other than 200 before the kill: %s", u)
	}
	return all
}

func (c *crashRun) createMessage(api *apitest.Client, a *attempt) (*apitest.Response, error) {
	return api.Post("CreateMessage", c.key, map[string]string{"id": a.id, "conversation_id": a.conv, "author_id": a.author, "text": a.text})
}

// verify checks the invariants for convs against what the writers saw,
// and returns how many attempts were acknowledged.
func (c *crashRun) verify(p *serveProc, convs []string, attempts []*attempt) int {
	t := c.t
	t.Helper()
	byID := map[string]*attempt{}
	acked := 0
	for _, a := range attempts {
		byID[a.id] = a
		if a.acked != nil {
			acked++
		}
	}
	stored := map[string]apitest.Message{}
	for _, conv := range convs {
		var prev time.Time
		for i, m := range c.listAll(p, conv) {
			if m.Seq != int64(i+1) {
				t.Fatalf("conversation %s: message %d (%s) has seq %d: a gap or a duplicate", conv, i+1, m.ID, m.Seq)
			}
			at, err := time.Parse(time.RFC3339Nano, m.SentAt)
			if err != nil || !at.After(prev) {
				t.Fatalf("conversation %s: seq %d sent_at %q is not after the previous one", conv, m.Seq, m.SentAt)
			}
			prev = at
			if _, dup := stored[m.ID]; dup {
				t.Fatalf("message %s is stored twice", m.ID)
			}
			stored[m.ID] = m
			a := byID[m.ID]
			if a == nil || a.conv != conv || a.author != m.AuthorID || a.text != m.Text {
				t.Fatalf("stored message %+v was never sent like that", m)
			}
		}
	}
	for _, a := range attempts {
		if a.acked == nil {
			continue
		}
		got, ok := stored[a.id]
		if !ok {
			t.Fatalf("LOST: message %s was acknowledged (seq %d, sent_at %s) and is not stored after the restart", a.id, a.acked.Seq, a.acked.SentAt)
		}
		if got != *a.acked {
			t.Fatalf("message %s changed across the crash:\nacknowledged %+v\n      stored %+v", a.id, *a.acked, got)
		}
	}
	return acked
}

// retry sends every unacknowledged attempt again. Each must answer 200:
// the stored message unchanged when the first try had committed, or a
// newly stored one. The retried attempts count as acknowledged from then
// on. It returns how many were retried and how many had been stored.
func (c *crashRun) retry(p *serveProc, attempts []*attempt) (retried, found int) {
	t := c.t
	stored := map[string]apitest.Message{}
	convs := map[string]bool{}
	for _, a := range attempts {
		convs[a.conv] = true
	}
	for conv := range convs {
		for _, m := range c.listAll(p, conv) {
			stored[m.ID] = m
		}
	}
	for _, a := range attempts {
		if a.acked != nil {
			continue
		}
		retried++
		res, err := c.createMessage(p.api, a)
		if err != nil || res.Status != http.StatusOK {
			t.Fatalf("retry of %s: %+v %v", a.id, res, err)
		}
		got, err := apitest.Field[apitest.Message](res, "message")
		if err != nil {
			t.Fatalf("retry of %s: %v", a.id, err)
		}
		if m, ok := stored[a.id]; ok {
			found++
			if got != m {
				t.Fatalf("retry of %s, stored before the crash, answered %+v; stored %+v", a.id, got, m)
			}
		}
		a.acked = &got
	}
	return retried, found
}

// checkEarlier checks, with one RecentMessages per 100 conversations, that
// every earlier iteration's conversation still ends with the message it
// ended with (and so, seq being gap-free, has as many).
func (c *crashRun) checkEarlier(p *serveProc, skip []string) {
	t := c.t
	var ids []string
	for conv := range c.final {
		ids = append(ids, conv)
	}
	for len(ids) > 0 {
		batch := ids[:min(100, len(ids))]
		ids = ids[len(batch):]
		var r struct{ Messages []apitest.Message }
		c.call(p, "RecentMessages", map[string]any{"conversation_ids": batch, "limit_per_conversation": 1}, &r)
		newest := map[string]apitest.Message{}
		for _, m := range r.Messages {
			newest[m.ConversationID] = m
		}
		for _, conv := range batch {
			want := c.final[conv]
			if len(want) == 0 {
				continue
			}
			if got := newest[conv]; got != want[len(want)-1] {
				t.Fatalf("conversation %s of an earlier iteration: newest message %+v, was %+v", conv, got, want[len(want)-1])
			}
		}
	}
}

// listAll pages through a conversation with sent_before and returns its
// messages oldest first.
func (c *crashRun) listAll(p *serveProc, conv string) []apitest.Message {
	var all []apitest.Message
	req := map[string]any{"conversation_id": conv, "limit": 200}
	for {
		var r struct{ Messages []apitest.Message }
		c.call(p, "ListMessages", req, &r)
		all = append(all, r.Messages...)
		if len(r.Messages) < 200 {
			break
		}
		req["sent_before"] = r.Messages[len(r.Messages)-1].SentAt
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

func (c *crashRun) createConversation(p *serveProc, group, topic string) string {
	var r struct{ Conversation struct{ ID string } }
	c.call(p, "CreateConversation", map[string]any{"group_id": group, "topic": topic}, &r)
	return r.Conversation.ID
}

// call makes one API call that must answer 200.
func (c *crashRun) call(p *serveProc, method string, body, out any) {
	c.t.Helper()
	res := p.api.MustPost(c.t, method, c.key, body)
	if res.Status != http.StatusOK {
		c.t.Fatalf("%s: %d %s", method, res.Status, res.Raw)
	}
	if err := json.Unmarshal(res.Raw, out); err != nil {
		c.t.Fatalf("%s: %v: %s", method, err, res.Raw)
	}
}

func equalMessages(a, b []apitest.Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// serveProc is one "threads serve" process.
type serveProc struct {
	cmd            *exec.Cmd
	url            string
	api            *apitest.Client
	stdout, stderr *syncBuffer
	exited         chan struct{}
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// start runs "threads serve" on the run's database. It listens on
// 127.0.0.1:0 and the test reads the port the kernel chose from the
// "listening" log line, so no port is picked ahead and raced for.
func (c *crashRun) start() *serveProc {
	t := c.t
	t.Helper()
	p := &serveProc{stdout: &syncBuffer{}, exited: make(chan struct{})}
	listening := make(chan string, 1)
	p.stderr = &syncBuffer{}
	p.cmd = exec.Command(c.bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, c.args...)...)
	p.cmd.Env = serveEnv()
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = &lineWatcher{buf: p.stderr, re: listeningRE, found: listening}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	select {
	case addr := <-listening:
		p.url = "http://" + addr
		p.api = apitest.NewClient(t, p.url)
	case <-p.exited:
		t.Fatalf("serve exited before listening: %v\nstderr:\n%s", p.cmd.ProcessState, p.stderr)
	}
	return p
}

// serveEnv is the environment without THREADS_* variables, so that only
// the flags configure the server.
func serveEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "THREADS_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitStdout waits until stdout matches re (or the process exits) and
// returns it. serve prints its first key before it logs "listening", but
// on another pipe, so it may be read a moment later.
func (p *serveProc) waitStdout(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	apitest.Eventually(t, "serve's stdout to match "+re.String(), func() bool {
		select {
		case <-p.exited:
			return true
		default:
			return re.MatchString(p.stdout.String())
		}
	})
	return p.stdout.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *serveProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop ends the last process with SIGTERM: after all those crashes it
// must still shut down cleanly.
func (p *serveProc) stop(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	if !p.cmd.ProcessState.Success() || !strings.Contains(p.stderr.String(), "msg=stopped") {
		t.Errorf("serve did not stop cleanly on SIGTERM: %v\n%s", p.cmd.ProcessState, p.stderr)
	}
}

// lineWatcher copies output to buf and sends the first submatch of re,
// once, when a line matches.
type lineWatcher struct {
	buf     *syncBuffer
	re      *regexp.Regexp
	found   chan string
	partial []byte
	sent    bool
}

func (w *lineWatcher) Write(b []byte) (int, error) {
	w.buf.Write(b)
	if w.sent {
		return len(b), nil
	}
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i]
		w.partial = w.partial[i+1:]
		if m := w.re.FindSubmatch(line); m != nil {
			w.found <- string(m[1])
			w.sent, w.partial = true, nil
			break
		}
	}
	return len(b), nil
}
