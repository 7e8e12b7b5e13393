package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
)

// metrics are the server's Prometheus series. Labels are bounded: method
// is one of the API's methods, protocol one of m3o/connect/grpc/grpcweb,
// code one of the error table's codes or OK.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, b *broker.Broker) *metrics {
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
