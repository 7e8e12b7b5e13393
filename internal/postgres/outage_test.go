package postgres_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/postgres/pgtest"
)

// Phases of TestOutage, as a writer sees them when a request starts and
// when it ends.
const (
	phaseUp        int32 = iota // before the cut
	phaseDown                   // the proxy is cut: the database is unreachable
	phaseRestored               // the proxy listens again; recovery not yet seen
	phaseRecovered              // the test has seen CreateMessage and /readyz answer 200
)

var phaseNames = []string{"up", "down", "restored", "recovered"}

// attempt is one CreateMessage call by a writer.
type attempt struct {
	id         string
	start, end int32 // phase
	status     int   // 0 when the call failed at the transport
	err        error // transport error, or an answer that is neither 200 nor UNAVAILABLE
	took       time.Duration
	msg        apitest.Message // when 200
}

// TestOutage cuts the database away from a serving process in the middle
// of a write load and gives it back: while it is away, requests fail fast
// with UNAVAILABLE and /readyz says 503; once it is back the same process
// (same server, same pool) recovers by itself; no acknowledged write is
// lost, and seq has no gap.
func TestOutage(t *testing.T) {
	schemaURL := pgtest.SchemaURL(t)
	u, err := url.Parse(schemaURL)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("%s must be a postgres:// URL with a host for the outage test: %q (%v)", pgtest.EnvURL, schemaURL, err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	proxy := startProxy(t, net.JoinHostPort(u.Hostname(), port))
	viaProxy := *u
	viaProxy.Host = proxy.addr
	q := viaProxy.Query()
	q.Set("connect_timeout", "2")
	viaProxy.RawQuery = q.Encode()

	st := pgtest.OpenURL(t, viaProxy.String())
	api := apitest.Serve(t, st).WithTimeout(30 * time.Second) // the timeout only guards against hangs
	k, key := apitest.CreateKey(t, st, "acme", false)
	conv := apitest.MustField[apitest.Conversation](t, api.MustPost(t, "CreateConversation", key,
		map[string]any{"group_id": "g1", "topic": "outage"}).OK(t), "conversation")

	var phase atomic.Int32
	var acked, downUnavailable atomic.Int64
	run := rand.Text()[:8]
	// create posts one message with a client id, as a careful client does,
	// and classifies the answer.
	create := func(id, author string) attempt {
		a := attempt{id: id, start: phase.Load()}
		res, err := api.Post("CreateMessage", key, map[string]any{
			"id": id, "conversation_id": conv.ID, "author_id": author, "text": "message " + id,
		})
		a.end = phase.Load()
		switch {
		case err != nil:
			a.err = err
		case res.Status == http.StatusOK:
			a.status, a.took = res.Status, res.Took
			if a.msg, a.err = apitest.Field[apitest.Message](res, "message"); a.err == nil {
				acked.Add(1)
			}
		default:
			a.status, a.took = res.Status, res.Took
			a.err = res.Envelope(threads.EUNAVAILABLE, http.StatusServiceUnavailable)
			if a.err == nil && a.start == phaseDown && a.end == phaseDown {
				downUnavailable.Add(1)
			}
		}
		return a
	}

	// Writers post continuously. After a 503 a writer retries the same id
	// (after a short pause, as Retry-After asks) until it is acknowledged
	// or the test stops it: message ids make that safe.
	const writers = 4
	stop := make(chan struct{})
	stopWriters := sync.OnceFunc(func() { close(stop) })
	defer stopWriters()
	attempts := make([][]attempt, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			pause := time.NewTicker(10 * time.Millisecond)
			defer pause.Stop()
			for i := 0; ; i++ {
				id := fmt.Sprintf("%s-w%d-%06d", run, w, i)
				for {
					select {
					case <-stop:
						return
					default:
					}
					a := create(id, fmt.Sprintf("writer-%d", w))
					attempts[w] = append(attempts[w], a)
					if a.status == http.StatusOK && a.err == nil {
						break
					}
					select {
					case <-stop:
						return
					case <-pause.C:
					}
				}
			}
		})
	}

	ready := func() *apitest.Response {
		t.Helper()
		res, err := api.Do(http.MethodGet, "/readyz", "", nil)
		if err != nil {
			t.Fatalf("GET /readyz: %v", err)
		}
		return res
	}
	if res := ready(); res.Status != http.StatusOK {
		t.Fatalf("/readyz before the outage: %d: %s", res.Status, res.Raw)
	}

	// Up: let some writes succeed.
	apitest.Eventually(t, "40 acknowledged writes before the cut", func() bool { return acked.Load() >= 40 })

	// Down: every proxied connection is severed and new ones are refused.
	proxy.Cut()
	phase.Store(phaseDown)
	cutAt := time.Now()
	ackedAtCut := acked.Load()
	var readyDown []time.Duration
	checkReadyDown := func() {
		t.Helper()
		res := ready()
		if err := res.Envelope(threads.EUNAVAILABLE, http.StatusServiceUnavailable); err != nil {
			t.Fatalf("/readyz while the database is unreachable: %v", err)
		}
		readyDown = append(readyDown, res.Took)
	}
	checkReadyDown()
	// Stay down long enough for the pool's idle connections to pass its
	// health-check age (1s), as a real outage would, and until writers
	// have seen UNAVAILABLE.
	apitest.Eventually(t, "20 UNAVAILABLE answers while the database is unreachable", func() bool {
		return downUnavailable.Load() >= 20 && time.Since(cutAt) >= 2*time.Second
	})
	checkReadyDown()
	if n := acked.Load(); n != ackedAtCut {
		// Requests in flight at the cut may have been acknowledged just
		// after it; none that started after it may be (checked below).
		t.Logf("%d writes in flight at the cut were acknowledged after it", n-ackedAtCut)
	}
	downFor := time.Since(cutAt)

	// Restored: the same server and pool must recover by themselves.
	if err := proxy.Restore(); err != nil {
		t.Fatalf("restore the proxy on %s: %v", proxy.addr, err)
	}
	phase.Store(phaseRestored)
	restoredAt := time.Now()
	var probes []attempt
	probe := 0
	apitest.Eventually(t, "CreateMessage and /readyz to answer 200 after the restore", func() bool {
		a := create(fmt.Sprintf("%s-probe-%06d", run, probe), "probe")
		probe++
		probes = append(probes, a)
		return a.status == http.StatusOK && a.err == nil && ready().Status == http.StatusOK
	})
	recoverIn := time.Since(restoredAt)
	phase.Store(phaseRecovered)
	ackedAtRecovery := acked.Load()
	apitest.Eventually(t, "40 acknowledged writes after recovery", func() bool { return acked.Load() >= ackedAtRecovery+40 })
	stopWriters()
	wg.Wait()

	// Every answer was 200 or the UNAVAILABLE envelope, none hung; nothing
	// that started while the database was unreachable succeeded.
	all := slices.Concat(append(attempts, probes)...)
	ackedMsgs := map[string]apitest.Message{}
	attempted := map[string]bool{}
	var maxDown time.Duration
	count := map[string]int{}
	for _, a := range all {
		attempted[a.id] = true
		if a.err != nil {
			t.Errorf("CreateMessage %s (phase %s→%s, status %d, %v): %v",
				a.id, phaseNames[a.start], phaseNames[a.end], a.status, a.took, a.err)
			continue
		}
		switch {
		case a.status == http.StatusOK:
			count["acked "+phaseNames[a.end]]++
			if prev, dup := ackedMsgs[a.id]; dup {
				if diff := cmp.Diff(prev, a.msg); diff != "" {
					t.Errorf("id %s acknowledged twice with different messages (-first +second):\n%s", a.id, diff)
				}
			}
			ackedMsgs[a.id] = a.msg
			if a.start == phaseDown && a.end == phaseDown {
				t.Errorf("CreateMessage %s succeeded while the database was unreachable", a.id)
			}
		default:
			count["503 "+phaseNames[a.start]]++
			if a.start == phaseDown {
				maxDown = max(maxDown, a.took)
			}
		}
	}
	retried := 0
	for id := range ackedMsgs {
		n := 0
		for _, a := range all {
			if a.id == id {
				n++
			}
		}
		if n > 1 {
			retried++
		}
	}
	for _, d := range readyDown {
		maxDown = max(maxDown, d)
	}
	t.Logf("outage: down for %v; acknowledged %d before the cut, %d during (in flight at the cut), %d after (restored %d, recovered %d); %d acknowledged ids needed retries",
		downFor.Round(time.Millisecond), count["acked up"], count["acked down"],
		count["acked restored"]+count["acked recovered"], count["acked restored"], count["acked recovered"], retried)
	t.Logf("outage: 503 UNAVAILABLE answers: %d to requests started before the cut, %d while down, %d after the restore before recovery was seen, %d after; /readyz 503 %d times",
		count["503 up"], count["503 down"], count["503 restored"], count["503 recovered"], len(readyDown))
	t.Logf("outage: max latency while down %v (CreateMessage and /readyz); recovered %v after the restore (%d probes)",
		maxDown.Round(time.Microsecond), recoverIn.Round(time.Millisecond), len(probes))

	// Read everything back through a fresh store on the database itself,
	// not the proxy: every acknowledged message exactly once, as
	// acknowledged; seq 1..N with no gap; anything else stored is an id a
	// writer sent but gave up on when stopped.
	direct := pgtest.OpenURL(t, schemaURL)
	var stored []*threads.Message
	f := threads.MessageFilter{ConversationID: conv.ID, Limit: threads.MaxMessageLimit}
	for {
		page, err := direct.ListMessages(t.Context(), k.Tenant, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		stored = append(stored, page...)
		f.SentBefore = page[len(page)-1].SentAt.UnixMicro()
	}
	storedByID := map[string]apitest.Message{}
	for i, m := range stored {
		if want := int64(len(stored) - i); m.Seq != want {
			t.Errorf("stored position %d has seq %d, want %d (seq must be 1..%d with no gap)", i, m.Seq, want, len(stored))
		}
		if i > 0 && !m.SentAt.Before(stored[i-1].SentAt) {
			t.Errorf("stored sent_at not strictly decreasing at %d: %v then %v", i, stored[i-1].SentAt, m.SentAt)
		}
		if _, dup := storedByID[m.ID]; dup {
			t.Errorf("message %s stored twice", m.ID)
		}
		if !attempted[m.ID] {
			t.Errorf("stored message %s was never sent", m.ID)
		}
		storedByID[m.ID] = apitest.Message{
			ID: m.ID, AuthorID: m.AuthorID, ConversationID: m.ConversationID, Text: m.Text,
			SentAt: m.SentAt.UTC().Format("2006-01-02T15:04:05.000000Z"), Seq: m.Seq,
		}
	}
	ackedStored := map[string]apitest.Message{}
	for id := range ackedMsgs {
		if m, ok := storedByID[id]; ok {
			ackedStored[id] = m
		}
	}
	if diff := cmp.Diff(ackedMsgs, ackedStored); diff != "" {
		t.Errorf("acknowledged messages lost or changed (-acknowledged +stored):\n%s", diff)
	}
	t.Logf("outage: %d messages stored, %d acknowledged, %d stored but never acknowledged (given up at stop)",
		len(stored), len(ackedMsgs), len(stored)-len(ackedStored))
}

// schemaAddr returns a fresh schema's URL and the host:port it names, for
// a test that puts a proxy in between.
func schemaAddr(t *testing.T) (*url.URL, string) {
	t.Helper()
	u, err := url.Parse(pgtest.SchemaURL(t))
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return u, net.JoinHostPort(u.Hostname(), port)
}

// tcpProxy forwards TCP connections from a local port to target. Cut
// refuses new connections and severs live ones, as a database host that
// goes away does; Restore listens again on the same port.
type tcpProxy struct {
	target string
	addr   string // fixed for the proxy's life

	// down counts the bytes forwarded from target to the clients.
	down atomic.Int64

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.mu.Lock()
	p.serve(ln)
	p.mu.Unlock()
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// serve accepts on ln until it is closed; p.mu is held.
func (p *tcpProxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Cut
			}
			if p.track(ln, c) {
				p.wg.Go(func() { p.forward(ln, c) })
			}
		}
	}()
}

// track registers c while ln is the live listener; otherwise (a cut came
// in between) it closes c.
func (p *tcpProxy) track(ln net.Listener, c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *tcpProxy) forward(ln net.Listener, client net.Conn) {
	defer p.untrack(client)
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil || !p.track(ln, upstream) {
		return
	}
	defer p.untrack(upstream)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(upstream, client)
		upstream.Close()
		client.Close()
	}()
	io.Copy(countingWriter{client, &p.down}, upstream)
	client.Close()
	upstream.Close()
	<-done
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// Cut closes the listener, so new connections are refused, and every live
// proxied connection.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// Restore listens again on the same address.
func (p *tcpProxy) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return errors.New("proxy is not cut")
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.serve(ln)
	return nil
}
