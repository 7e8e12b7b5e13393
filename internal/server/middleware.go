package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/threads-server/threads"
)

type requestIDKey struct{}

// logFrom returns def carrying the request's id, when ctx is a request's.
// The logger is made when something is logged, not for every request:
// slog's With formats its attributes at once, and most requests log
// nothing but their access line, which names the id itself.
func logFrom(ctx context.Context, def *slog.Logger) *slog.Logger {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		return def.With("request_id", id)
	}
	return def
}

const requestIDHeader = "X-Request-Id"

// requestID keeps a caller's X-Request-Id when it is short and printable,
// so one id can follow a request across services, and makes one otherwise.
func requestID(r *http.Request) string {
	if id := r.Header.Get(requestIDHeader); id != "" && len(id) <= 64 {
		ok := true
		for i := 0; i < len(id); i++ {
			if id[i] < 0x21 || id[i] > 0x7e {
				ok = false
				break
			}
		}
		if ok {
			return id
		}
	}
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status for the access log. Unwrap lets
// http.ResponseController reach the real writer (flush, deadlines).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware gives every request an id and a logger, logs it once when it
// ends, and turns a panic into a 500 INTERNAL instead of a dropped
// connection with no answer. Before any handler runs it refuses a request
// whose framing is ambiguous (see FramingListener); after the mux it
// counts the requests no API method served.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r)
		w.Header().Set(requestIDHeader, id)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic", "request_id", id, "panic", p, "path", r.URL.Path)
				if sw.status == 0 {
					writeError(sw, threads.Internal(nil))
				}
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("request_id", id),
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
		}()
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		if problem := framingProblem(r); problem != "" {
			// Close the connection after the answer, and do not wait
			// for the rest of the body first: what follows it is not
			// to be read.
			w.Header().Set("Connection", "close")
			http.NewResponseController(w).SetReadDeadline(time.Now())
			e := s.finish(r.Context(), methodUnknown, "http", start, threads.Errorf(threads.EBADREQUEST, "%s", problem))
			writeError(sw, e)
			return
		}
		next.ServeHTTP(sw, r)
		s.countUnrouted(r, start)
	})
}
