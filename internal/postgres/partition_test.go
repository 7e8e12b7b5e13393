package postgres_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/apitest"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/postgres/pgtest"
	"github.com/threads-server/threads/internal/server"
)

// TestSilentPartition: the database stops answering without closing
// anything (packets dropped, no reset). No error ever comes back from the
// network, so only the server's request deadline can end a call: it must
// answer 503 UNAVAILABLE rather than hang, and recover once the network
// is back.
func TestSilentPartition(t *testing.T) {
	u, addr := schemaAddr(t)
	hole := startBlackhole(t, addr)
	u.Host = hole.addr
	q := u.Query()
	q.Set("connect_timeout", "1")
	u.RawQuery = q.Encode()
	st := pgtest.OpenURL(t, u.String())
	api := apitest.Serve(t, st, func(c *server.Config, _ *broker.Config) { c.RequestTimeout = 500 * time.Millisecond }).
		WithTimeout(time.Minute) // the client's guard, far above the deadline
	_, key := apitest.CreateKey(t, st, "acme", false)
	conv := apitest.MustField[apitest.Conversation](t, api.MustPost(t, "CreateConversation", key,
		map[string]any{"group_id": "g", "topic": "partition"}).OK(t), "conversation")

	hole.freeze(true)
	for i := range 3 {
		res, err := api.Post("CreateMessage", key, map[string]any{"conversation_id": conv.ID, "author_id": "a", "text": "during"})
		if err != nil {
			t.Fatalf("call %d during the partition: %v (the server never answered)", i, err)
		}
		if err := res.Envelope(threads.EUNAVAILABLE, http.StatusServiceUnavailable); err != nil {
			t.Fatalf("call %d during the partition: %v", i, err)
		}
	}
	hole.freeze(false)
	apitest.EventuallyNil(t, "recovery after the partition healed", func() error {
		res, err := api.Post("CreateMessage", key, map[string]any{"conversation_id": conv.ID, "author_id": "a", "text": "after"})
		if err == nil && res.Status != http.StatusOK {
			err = fmt.Errorf("status %d: %s", res.Status, res.Raw)
		}
		return err
	})
}

// blackhole forwards TCP to target until frozen; while frozen it moves no
// byte in either direction and closes nothing, as a partition does.
type blackhole struct {
	addr   string
	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
}

func startBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{addr: ln.Addr().String()}
	b.cond = sync.NewCond(&b.mu)
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		b.freeze(false)
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			go func() {
				b.wait()
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				conns.Store(up, true)
				go b.pipe(up, c)
				b.pipe(c, up)
			}()
		}
	}()
	return b
}

func (b *blackhole) freeze(on bool) {
	b.mu.Lock()
	b.frozen = on
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *blackhole) wait() {
	b.mu.Lock()
	for b.frozen {
		b.cond.Wait()
	}
	b.mu.Unlock()
}

// pipe copies src to dst, holding each chunk while frozen.
func (b *blackhole) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b.wait()
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}
