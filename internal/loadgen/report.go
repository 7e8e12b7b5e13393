package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is a run's result; --json prints it as is, so its field names
// are a format that scripts (and BENCHMARKS.md tables) rely on.
// Latencies are in milliseconds, memory in bytes.
type Report struct {
	Scenario     string               `json:"scenario"`
	URL          string               `json:"url"`
	Clients      int                  `json:"clients"`
	Date         string               `json:"date"`
	Seed         *SeedReport          `json:"seed,omitempty"`
	Seconds      float64              `json:"seconds"`
	Requests     int64                `json:"requests"`
	Errors       int64                `json:"errors"`
	ErrorsByKind map[string]int64     `json:"errors_by_kind,omitempty"`
	ErrorSamples map[string]string    `json:"error_samples,omitempty"`
	RPS          float64              `json:"rps"`
	Latency      Latency              `json:"latency_ms"`
	Ops          map[string]*OpReport `json:"ops,omitempty"`
	Server       *ServerReport        `json:"server,omitempty"`
	Floor        *FloorReport         `json:"floor,omitempty"`
	Fanout       *FanoutReport        `json:"fanout,omitempty"`
}

// Latency summarises a histogram, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func latencyOf(h *Histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Latency{P50: ms(h.Quantile(.50)), P90: ms(h.Quantile(.90)), P99: ms(h.Quantile(.99)),
		Max: ms(h.Max()), Mean: ms(h.Mean())}
}

func (l Latency) String() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s", msStr(l.P50), msStr(l.P90), msStr(l.P99), msStr(l.Max))
}

func msStr(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 100:
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}

// SeedReport says what data the run used.
type SeedReport struct {
	Group                   string  `json:"group"`
	Conversations           int     `json:"conversations"`
	MessagesPerConversation int     `json:"messages_per_conversation"`
	Seconds                 float64 `json:"seconds"`
}

// OpReport is one operation of a mixed run.
type OpReport struct {
	Requests int64   `json:"requests"`
	RPS      float64 `json:"rps"`
	Latency  Latency `json:"latency_ms"`
}

// ServerReport is the server's own view, from GET /metrics.
type ServerReport struct {
	CPUMsPerRequest float64 `json:"cpu_ms_per_request,omitempty"`
	RSSBytes        float64 `json:"rss_bytes"`
	HeapInuseBytes  float64 `json:"heap_inuse_bytes"`
}

// FloorReport is the JSON echo server under the same load.
type FloorReport struct {
	RPS     float64 `json:"rps"`
	Latency Latency `json:"latency_ms"`
	Errors  int64   `json:"errors"`
	Ratio   float64 `json:"ratio"` // our rps / the floor's
}

// Print writes the report for a person.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "threads bench: scenario %s, %d clients, %s, %s\n", r.Scenario, r.Clients, r.URL, r.Date)
	if s := r.Seed; s != nil {
		fmt.Fprintf(w, "data:      group %q, %d conversations × %d messages (seeded/checked in %.1fs)\n",
			s.Group, s.Conversations, s.MessagesPerConversation, s.Seconds)
	}
	if r.Fanout != nil {
		r.Fanout.print(w)
	} else {
		fmt.Fprintf(w, "requests:  %d in %.2fs = %.0f req/s, %d errors\n", r.Requests, r.Seconds, r.RPS, r.Errors)
		fmt.Fprintf(w, "latency:   %s\n", r.Latency)
	}
	ops := make([]string, 0, len(r.Ops))
	for op := range r.Ops {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		o := r.Ops[op]
		fmt.Fprintf(w, "  %-13s %8.0f req/s  %s\n", op, o.RPS, o.Latency)
	}
	kinds := make([]string, 0, len(r.ErrorsByKind))
	for k := range r.ErrorsByKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  error %-24s ×%d  e.g. %s\n", k, r.ErrorsByKind[k], truncate(r.ErrorSamples[k], 160))
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server:    %.3f CPU ms/request, RSS %s, heap in use %s\n", s.CPUMsPerRequest, mib(s.RSSBytes), mib(s.HeapInuseBytes))
	}
	if f := r.Floor; f != nil {
		fmt.Fprintf(w, "floor:     %.0f req/s (JSON echo, same load), %s\n", f.RPS, f.Latency)
		fmt.Fprintf(w, "ratio:     %.2f × the floor\n", f.Ratio)
	}
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// FanoutReport is the fan-out scenario's result. Missed, Duplicates and
// OutOfOrder are summed over subscribers and must be 0: they are the
// server's delivery promise checked end to end.
type FanoutReport struct {
	Group              string           `json:"group"`
	Conversations      int              `json:"conversations"`
	Subscribers        int              `json:"subscribers"`
	Connected          int              `json:"connected"`
	ServerSubscribers  float64          `json:"server_subscribers"` // threads_event_subscribers once connected
	ConnectSeconds     float64          `json:"connect_seconds"`
	SubscriberFailures map[string]int64 `json:"subscriber_failures,omitempty"`
	Idle               *IdleMemory      `json:"idle_memory,omitempty"`

	TargetRate  float64 `json:"target_rate"`
	Posted      int64   `json:"posted"` // acknowledged CreateMessage calls
	PostErrors  int64   `json:"post_errors"`
	PostRate    float64 `json:"post_rate"`
	PostLatency Latency `json:"post_latency_ms"`

	Expected           int64   `json:"expected"` // posted × subscribers still connected
	Delivered          int64   `json:"delivered"`
	DeliveredPerSec    float64 `json:"delivered_per_sec"`
	DeliveryLatency    Latency `json:"delivery_latency_ms"` // post to receipt
	DrainSeconds       float64 `json:"drain_seconds"`
	Missed             int64   `json:"missed"`
	SubscribersMissing int     `json:"subscribers_missing"`
	Duplicates         int64   `json:"duplicates"`
	OutOfOrder         int64   `json:"out_of_order"`
	Reconnects         int64   `json:"reconnects"`
	ServerDropped      float64 `json:"server_dropped"`   // threads_event_subscribers_dropped_total during the run
	ServerDelivered    float64 `json:"server_delivered"` // threads_events_delivered_total during the run
	// ServerCPUSeconds is the server's CPU from idle to drained (posting
	// and delivering), and per delivered event.
	ServerCPUSeconds        float64 `json:"server_cpu_seconds"`
	ServerCPUMicrosPerEvent float64 `json:"server_cpu_us_per_event"`
}

// IdleMemory is the server's growth from no subscriber to all of them
// connected and idle, whole and per subscriber.
type IdleMemory struct {
	RSSBefore               float64 `json:"rss_before"`
	RSSAfter                float64 `json:"rss_after"`
	HeapInuseBefore         float64 `json:"heap_inuse_before"`
	HeapInuseAfter          float64 `json:"heap_inuse_after"`
	GoroutinesBefore        float64 `json:"goroutines_before"`
	GoroutinesAfter         float64 `json:"goroutines_after"`
	RSSPerSubscriber        float64 `json:"rss_per_subscriber"`
	HeapPerSubscriber       float64 `json:"heap_inuse_per_subscriber"`
	GoroutinesPerSubscriber float64 `json:"goroutines_per_subscriber"`
}

func idleMemory(before, after map[string]float64, n int) *IdleMemory {
	if before == nil || after == nil || n == 0 {
		return nil
	}
	m := &IdleMemory{
		RSSBefore: before["process_resident_memory_bytes"], RSSAfter: after["process_resident_memory_bytes"],
		HeapInuseBefore: before["go_memstats_heap_inuse_bytes"], HeapInuseAfter: after["go_memstats_heap_inuse_bytes"],
		GoroutinesBefore: before["go_goroutines"], GoroutinesAfter: after["go_goroutines"],
	}
	m.RSSPerSubscriber = (m.RSSAfter - m.RSSBefore) / float64(n)
	m.HeapPerSubscriber = (m.HeapInuseAfter - m.HeapInuseBefore) / float64(n)
	m.GoroutinesPerSubscriber = (m.GoroutinesAfter - m.GoroutinesBefore) / float64(n)
	return m
}

func (f *FanoutReport) print(w io.Writer) {
	fmt.Fprintf(w, "subscribers: %d of %d connected in %.1fs (server counts %.0f), group %q\n",
		f.Connected, f.Subscribers, f.ConnectSeconds, f.ServerSubscribers, f.Group)
	for k, n := range f.SubscriberFailures {
		fmt.Fprintf(w, "  subscriber failure %s ×%d\n", k, n)
		if strings.HasPrefix(k, "429") {
			fmt.Fprintln(w, "  (the server limits event streams per key: serve with --max-streams-per-key above --subscribers)")
		}
	}
	if m := f.Idle; m != nil {
		fmt.Fprintf(w, "idle memory: RSS %s → %s (%.1f KiB/subscriber), heap in use %s → %s (%.1f KiB/subscriber), %.1f goroutines/subscriber\n",
			mib(m.RSSBefore), mib(m.RSSAfter), m.RSSPerSubscriber/1024, mib(m.HeapInuseBefore), mib(m.HeapInuseAfter),
			m.HeapPerSubscriber/1024, m.GoroutinesPerSubscriber)
	}
	fmt.Fprintf(w, "posted:    %d messages (target %.1f/s, achieved %.1f/s), %d errors, post latency %s\n",
		f.Posted, f.TargetRate, f.PostRate, f.PostErrors, f.PostLatency)
	fmt.Fprintf(w, "delivered: %d of %d events = %.0f events/s (drained %.1fs after the last post)\n",
		f.Delivered, f.Expected, f.DeliveredPerSec, f.DrainSeconds)
	fmt.Fprintf(w, "delivery:  %s (post to receipt)\n", f.DeliveryLatency)
	if f.ServerCPUSeconds > 0 {
		fmt.Fprintf(w, "server:    %.1f CPU s while posting and delivering = %.1f µs per delivered event\n",
			f.ServerCPUSeconds, f.ServerCPUMicrosPerEvent)
	}
	fmt.Fprintf(w, "checks:    missed %d (%d subscribers), duplicates %d, out of order %d, reconnects %d, server drops %.0f\n",
		f.Missed, f.SubscribersMissing, f.Duplicates, f.OutOfOrder, f.Reconnects, f.ServerDropped)
}
