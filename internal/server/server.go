// Package server serves the threads API over HTTP: Connect, gRPC and
// gRPC-Web through connect-go, the m3o JSON routes through a thin adapter
// over the same handlers, and the operational endpoints.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
)

// Config is what a Server needs.
type Config struct {
	Store  threads.Store
	Logger *slog.Logger
	// Registry receives the server's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Events serves live events (internal/broker); nil disables them
	// (UNAVAILABLE).
	Events threads.Events
	// MaxStreamsPerKey bounds the open event streams of one key
	// (default DefaultMaxStreamsPerKey); more is RATE_LIMITED.
	MaxStreamsPerKey int
	// Heartbeat is how often an idle stream gets a heartbeat (default
	// DefaultHeartbeat); StreamLifetime is when a stream is ended for its
	// client to reconnect and resume (default DefaultStreamLifetime), so
	// that long-lived connections rebalance across replicas.
	Heartbeat, StreamLifetime time.Duration
	// StreamWriteTimeout bounds one write to a stream, SSE or RPC
	// (default DefaultStreamWriteTimeout); between writes a stream has no
	// deadline.
	StreamWriteTimeout time.Duration
	// StreamKeyCheck is how often open streams' keys are checked (default
	// DefaultStreamKeyCheck): a revoked key's streams end within
	// KeyCacheTTL plus this, however busy they are.
	StreamKeyCheck time.Duration
	// RequestTimeout bounds one API call (default DefaultRequestTimeout):
	// past it the call answers UNAVAILABLE. It is what makes a request
	// fail when the database is cut off without a word (a silent network
	// partition), where no error would ever come back.
	RequestTimeout time.Duration
	// RateLimit is how many calls a second one key may make on average
	// (0: unlimited), in bursts of up to RateBurst (default: one second's
	// worth). Past it a call is RATE_LIMITED with Retry-After.
	RateLimit float64
	RateBurst int
	// KeyCacheTTL is how long a key read from the store is trusted before
	// it is read again (0: read on every request). A key revoked through
	// another process or replica keeps working here for up to this long;
	// see keycache.go.
	KeyCacheTTL time.Duration
	// Now is the clock of the key cache (tests); default time.Now.
	Now func() time.Time
}

// DefaultRequestTimeout is Config.RequestTimeout's default.
const DefaultRequestTimeout = 10 * time.Second

// Server implements threadspbconnect.ThreadsHandler.
type Server struct {
	store   threads.Store
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	m3o     map[string]m3oRoute

	events              threads.Events
	streams             *streams
	heartbeat, lifetime time.Duration
	requestTimeout      time.Duration
	writeTimeout        time.Duration
	limiter             *limiter
	keys                *keyCache
	rendered            renderCache
}

var _ threadspbconnect.ThreadsHandler = (*Server)(nil)

// New returns a Server over cfg.Store.
func New(cfg Config) *Server {
	s := &Server{store: cfg.Store, log: cfg.Logger, reg: cfg.Registry, events: cfg.Events,
		heartbeat: cfg.Heartbeat, lifetime: cfg.StreamLifetime}
	s.streams = newStreams(cfg.MaxStreamsPerKey, cfg.StreamKeyCheck, s.keyValid)
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}
	if s.lifetime <= 0 {
		s.lifetime = DefaultStreamLifetime
	}
	if s.writeTimeout = cfg.StreamWriteTimeout; s.writeTimeout <= 0 {
		s.writeTimeout = DefaultStreamWriteTimeout
	}
	if s.requestTimeout = cfg.RequestTimeout; s.requestTimeout <= 0 {
		s.requestTimeout = DefaultRequestTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	s.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst)
	s.keys = newKeyCache(cfg.KeyCacheTTL, cfg.Now)
	s.metrics = newMetrics(s.reg, s.events)
	s.m3o = s.m3oRoutes()
	if err := checkRoutes(s.m3o); err != nil {
		panic(err) // a method added to the proto without its route: fail at start, in every test
	}
	return s
}

// newID makes a server-side id: a UUIDv7, so ids sort by creation time.
func (s *Server) newID() string { return uuid.Must(uuid.NewV7()).String() }

// Handler returns every route of DESIGN §1.1, wrapped in the request-id,
// logging and panic-recovery middleware.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	path, rpc := threadspbconnect.NewThreadsHandler(s,
		connect.WithInterceptors(s.interceptor()),
		connect.WithReadMaxBytes(threads.MaxBodyBytes),
		s.decodeOptions(),
	)
	mux.Handle(path, rpc)
	mux.Handle(threadspbconnect.ThreadsSubscribeProcedure, serveStreamingRPC(rpc))
	mux.HandleFunc("/v1/threads/{method}", s.serveM3O)
	mux.HandleFunc("/threads/Threads/{method}", s.serveM3O)
	mux.HandleFunc("GET /v1/threads/events", s.serveEvents)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, threads.Errorf(threads.ENOTFOUND, "no route for %s %s", r.Method, truncate(r.URL.Path, 128)))
	})
	return s.middleware(mux)
}

// serveReady answers 200 when the database answers within two seconds.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		logFrom(ctx, s.log).Warn("not ready", "err", err)
		writeError(w, threads.Errorf(threads.EUNAVAILABLE, "database unavailable"))
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`))
}

// interceptor authenticates Connect, gRPC and gRPC-Web calls, records
// them, and renders domain errors with the error table's codes.
func (s *Server) interceptor() connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			start := time.Now()
			ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
			defer cancel()
			proc := req.Spec().Procedure
			method := proc[strings.LastIndexByte(proc, '/')+1:]
			limits := http.Header{}
			ctx, _, err := s.admit(ctx, req.Header(), limits)
			var res connect.AnyResponse
			if err == nil {
				res, err = next(ctx, req)
			}
			if e := s.finish(ctx, method, req.Peer().Protocol, start, err); e != nil {
				ce := connectError(e)
				copyHeader(ce.Meta(), limits)
				return nil, ce
			}
			copyHeader(res.Header(), limits)
			return res, nil
		}
	})
}

// HTTPServer returns an http.Server for h with every timeout set, serving
// HTTP/1.1 and cleartext HTTP/2 (which gRPC clients need without TLS).
func HTTPServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		Protocols:         &p,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext:       framingContext, // FramingListener's connections
	}
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}
