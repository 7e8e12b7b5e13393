package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// metrics are the server's Prometheus series. Labels are bounded: method
// is one of the API's methods or "unknown" (never the caller's text),
// protocol one of m3o/connect/grpc/grpcweb/sse, or http for a request no
// route took, code one of the error table's codes or OK.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, b threads.Events) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threads_requests_total",
			Help: "API requests by method, protocol and result code.",
		}, []string{"method", "protocol", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "threads_request_duration_seconds",
			Help:    "API request latency by method and protocol.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "protocol"}),
	}
	reg.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if b != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "threads_event_subscribers",
				Help: "Event streams (SSE and Subscribe) open now.",
			}, func() float64 { return float64(b.Stats().Subscribers) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "threads_event_subscribers_dropped_total",
				Help: "Event streams ended because the subscriber fell too far behind.",
			}, func() float64 { return float64(b.Stats().Dropped) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "threads_events_delivered_total",
				Help: "Live events handed to subscribers (replayed ones not counted).",
			}, func() float64 { return float64(b.Stats().Delivered) }),
		)
	}
	return m
}

// finish records a finished API call and logs failures the operator must
// see. It returns the domain form of err (nil on success) for the caller
// to render in its protocol.
func (s *Server) finish(ctx context.Context, method, protocol string, start time.Time, err error) *threads.Error {
	code := "OK"
	var e *threads.Error
	if err != nil {
		e = domainError(err)
		code = e.Code
		if e.Code == threads.EINTERNAL || e.Code == threads.EUNAVAILABLE {
			logFrom(ctx, s.log).Error("request failed", "method", method, "code", e.Code, "err", e.Err)
		}
	}
	s.metrics.requests.WithLabelValues(method, protocol, code).Inc()
	s.metrics.duration.WithLabelValues(method, protocol).Observe(time.Since(start).Seconds())
	return e
}

// methodUnknown is the method label of a request for no method of the
// API: an unknown m3o method or Connect procedure, a path no route takes,
// or a request refused before routing. The caller's text is never a
// label, so a client cannot make series without end.
const methodUnknown = "unknown"

// countUnrouted counts a request that no API method served, after the
// mux answered it: a path no route takes (the mux's catch-all "/"), or a
// procedure of the Connect service that the service does not have
// (connect-go answers 404 itself, before any interceptor). The m3o routes
// count their own unknown methods.
func (s *Server) countUnrouted(r *http.Request, start time.Time) {
	switch {
	case r.Pattern == "/":
		_ = s.finish(r.Context(), methodUnknown, "http", start, threads.Errorf(threads.ENOTFOUND, "no route")) // counted; the mux answered
	case r.Pattern == "/"+threadspbconnect.ThreadsName+"/" && !isProcedure(r.URL.Path):
		_ = s.finish(r.Context(), methodUnknown, rpcProtocol(r), start, threads.Errorf(threads.ENOTFOUND, "no such procedure")) // counted; connect-go answered
	}
}

// threadsService is the service's descriptor: its methods are the
// procedures there are.
var threadsService = pb.File_threads_proto.Services().ByName("Threads")

// isProcedure reports whether path names a method of the service.
func isProcedure(path string) bool {
	name, ok := strings.CutPrefix(path, "/"+threadspbconnect.ThreadsName+"/")
	return ok && !strings.Contains(name, "/") && threadsService.Methods().ByName(protoreflect.Name(name)) != nil
}

// rpcProtocol names the protocol of a request to the Connect handler by
// its Content-Type, as connect-go's Peer.Protocol does once it serves one.
func rpcProtocol(r *http.Request) string {
	switch ct := r.Header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "application/grpc-web"):
		return connect.ProtocolGRPCWeb
	case strings.HasPrefix(ct, "application/grpc"):
		return connect.ProtocolGRPC
	}
	return connect.ProtocolConnect
}
