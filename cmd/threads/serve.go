package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/server"
)

// onListen, when set (by tests), is told the address serve listens on.
var onListen func(addr string)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var dbf dbFlags
	dbf.register(fs)
	addr := fs.String("addr", env("addr", "localhost:8080"), "listen address (env THREADS_ADDR)")
	level := fs.String("log-level", env("log-level", "info"), "debug, info, warn or error (env THREADS_LOG_LEVEL)")
	format := fs.String("log-format", env("log-format", "text"), "text or json (env THREADS_LOG_FORMAT)")
	grace := fs.Duration("shutdown-timeout", envDuration("shutdown-timeout", 30*time.Second),
		"how long to let in-flight requests finish on SIGINT/SIGTERM (env THREADS_SHUTDOWN_TIMEOUT)")
	retention := fs.Duration("event-retention", envDuration("event-retention", threads.DefaultEventRetention),
		"how long events stay available for resuming a stream (env THREADS_EVENT_RETENTION)")
	maxStreams := fs.Int("max-streams-per-key", envInt("max-streams-per-key", server.DefaultMaxStreamsPerKey),
		"open event streams allowed per API key (env THREADS_MAX_STREAMS_PER_KEY)")
	reqTimeout := fs.Duration("request-timeout", envDuration("request-timeout", server.DefaultRequestTimeout),
		"longest an API call may take before it answers UNAVAILABLE (env THREADS_REQUEST_TIMEOUT)")
	rateLimit := fs.Float64("rate-limit", 0, "calls per second allowed per API key on average, 0 for no limit (env THREADS_RATE_LIMIT)")
	rateBurst := fs.Int("rate-burst", 0, "calls a key may make at once above its rate (default: one second's worth) (env THREADS_RATE_BURST)")
	keyTTL := fs.Duration("key-cache-ttl", envDuration("key-cache-ttl", time.Second),
		"how long a key is trusted before it is read again; a revocation takes up to this long to reach this replica, 0 reads it on every request (env THREADS_KEY_CACHE_TTL)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}

	// The store's maintenance purges events older than the retention; 0
	// (or less) is the default, as for the broker's check of cursors.
	dbf.eventRetention = *retention
	if dbf.eventRetention <= 0 {
		dbf.eventRetention = threads.DefaultEventRetention
	}
	db, err := dbf.open(ctx, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("closing the database", "err", err)
		}
	}()
	if n := db.Migrated(); n > 0 {
		log.Info("applied migrations", "count", n)
	}
	if err := firstKey(ctx, db, stdout, log); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	events := broker.New(broker.Config{Store: db, Logger: log, Retention: *retention})
	api := server.New(server.Config{Store: db, Logger: log, Events: events, MaxStreamsPerKey: *maxStreams,
		RequestTimeout: *reqTimeout, RateLimit: *rateLimit, RateBurst: *rateBurst, KeyCacheTTL: *keyTTL})
	srv := server.HTTPServer(*addr, api.Handler(), log)
	srv.RegisterOnShutdown(api.StopStreams)
	log.Info("listening", "addr", ln.Addr().String(), "db", dbf.display())
	if onListen != nil {
		onListen(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(server.FramingListener(ln)) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop accepting, let in-flight requests finish, then close the
	// database (deferred above) so the last commits are checkpointed.
	log.Info("shutting down", "grace", *grace)
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// firstKey makes a key for tenant "default" when the database has none,
// so a new user can start with one command. It is printed once: of
// replicas starting together on an empty database, only one creates it.
func firstKey(ctx context.Context, db store, stdout io.Writer, log *slog.Logger) error {
	k, secret, err := threads.NewKey("default", false)
	if err != nil {
		return err
	}
	created, err := db.CreateFirstKey(ctx, k)
	if err != nil || !created {
		return err
	}
	log.Info("created the first API key, for tenant default; it is printed once on stdout")
	fmt.Fprintf(stdout, "\nAPI key for tenant \"default\" (shown only now; keep it):\n\n    %s\n\n", secret)
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(env(name, "")); err == nil {
		return n
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env(name, "")); err == nil {
		return d
	}
	return def
}
