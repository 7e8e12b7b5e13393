package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrape reads the server's unlabelled Prometheus series (process and Go
// runtime gauges, the event subscriber count) from GET /metrics. A server
// without metrics yields an error, and the report leaves server figures
// out rather than failing the run.
func scrape(c *client, base string) (map[string]float64, error) {
	res, err := c.http.Get(strings.TrimRight(base, "/") + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", res.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			m[name] = v
		}
	}
	return m, sc.Err()
}

// serverUse turns two scrapes around a run into the server's cost: CPU
// milliseconds per request (process_cpu_seconds_total counts every core,
// so this is what a request costs, not how long it took) and memory at
// the end.
func serverUse(before, after map[string]float64, requests int64) *ServerReport {
	if before == nil || after == nil {
		return nil
	}
	s := &ServerReport{RSSBytes: after["process_resident_memory_bytes"], HeapInuseBytes: after["go_memstats_heap_inuse_bytes"]}
	if cpu := after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]; requests > 0 && cpu > 0 {
		s.CPUMsPerRequest = cpu * 1000 / float64(requests)
	}
	return s
}

// echo is the floor's handler: the least an HTTP JSON API can do, decode
// a small body and encode a small answer, with nothing behind it. Our
// server's rate as a fraction of this one's, measured on the same machine
// under the same load, is a figure that survives a noisy or slow machine.
func echo(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ConversationID string `json:"conversation_id"`
		AuthorID       string `json:"author_id"`
		Text           string `json:"text"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, `{"id":"BAD_REQUEST"}`, http.StatusBadRequest)
		return
	}
	out, _ := json.Marshal(map[string]any{"message": map[string]any{
		"id": "echo", "conversation_id": in.ConversationID, "author_id": in.AuthorID, "text": in.Text,
		"sent_at": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), "seq": 1}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out) // the generator counts what did not arrive
}

// floorServer is the echo server the run compares against: in this
// process by default, or another process's (ServeFloor) at url, which
// pays for crossing processes as our server does. load drives it with the
// same closed loop, client settings and request body as CreateMessage.
type floorServer struct {
	srv     *http.Server // nil when the floor is another process's
	c       *client
	workers []*worker
}

func startFloor(clients int, url string) (*floorServer, error) {
	f := &floorServer{workers: newWorkers(clients)}
	if url == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		f.srv = floorHTTP()
		go func() { _ = f.srv.Serve(ln) }() // ends with close
		url = "http://" + ln.Addr().String()
	}
	f.c = newClient(url, "floor", clients)
	return f, nil
}

func floorHTTP() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/threads/{method}", echo)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}

// ServeFloor serves the floor's echo handler on addr until ctx ends, for
// `threads bench --serve-floor`: a floor in a process of its own.
func ServeFloor(ctx context.Context, addr string, listening func(addr string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := floorHTTP()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	listening(ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (f *floorServer) load(ctx context.Context, d time.Duration) *loadResult {
	return closedLoop(ctx, f.workers, d, func(w *worker) (string, outcome, error) {
		w.n++
		o, err := f.c.do("CreateMessage", messageBody("floor-conversation", "floor", w.n, ""), nil)
		return "echo", o, err
	})
}

func (f *floorServer) close() {
	if f.srv != nil {
		_ = f.srv.Close()
	}
	f.c.close()
}
