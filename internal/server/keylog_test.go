package server_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/server"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestKeysNeverLogged: at the most verbose level, through successes,
// refusals, failures and streams, no secret reaches the log, whole or in
// part (its random part).
func TestKeysNeverLogged(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newTestEnv(t, func(c *server.Config, b *broker.Config) { c.Logger, b.Logger = log, log })
	conv := e.createConversation(e.Key, "g", "t")["id"].(string)
	e.createMessage(e.Key, conv, "ann", "hi")
	e.post("ReadConversation", e.OtherKey, map[string]any{"id": conv}) // NOT_FOUND
	e.post("CreateConversation", e.Revoked, map[string]any{"group_id": "g", "topic": "t"})
	e.post("CreateConversation", e.Key, map[string]any{"group_id": "g", "topic": "t"}, "Micro-Namespace", "globex")
	e.post("CreateConversation", e.Key+"x", map[string]any{"group_id": "g", "topic": "t"})
	e.post("CreateConversation", e.Key, `{"group_id": `)
	e.do("GET", "/v1/threads/events?group_id=g", e.Revoked, nil)
	if s, _ := e.subscribe(t, e.AdminKey, "group_id=g", "", "Micro-Namespace", "acme"); s != nil {
		s.close()
	}
	out := logs.String()
	if !strings.Contains(out, "request_id") {
		t.Fatalf("nothing was logged; the test proves nothing:\n%s", out)
	}
	for _, key := range []string{e.Key, e.OtherKey, e.AdminKey, e.Revoked} {
		if strings.Contains(out, key[len("thr_"):len("thr_")+16]) {
			t.Errorf("a key's secret reached the log:\n%s", out)
		}
	}
}
