package server

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// The framing check (RFC 9112 §6.1, request smuggling). A request with
// both Transfer-Encoding and Content-Length has its length from the
// first here (net/http reads the chunked body) but may have had it from
// the second in a proxy in front: the proxy took the bytes after the
// chunked body as part of this request, and here they are the next
// request, sent as if on behalf of whichever client the proxy serves
// next on the connection. RFC 9112 says to treat such a request as an
// error and close the connection; so too one with Transfer-Encoding in
// HTTP/1.0, whose body net/http does not read at all.
//
// net/http serves such a request and keeps the connection, and by the
// time a handler runs nothing of it is left to see: it deletes the
// Content-Length header of a chunked request (transfer.go, fixLength) and
// the Transfer-Encoding header of every request. So FramingListener's
// connections read each request's head on its way to net/http, note the
// ones that are ambiguous, and follow each body to the next head as
// net/http does; the middleware, before any handler runs, takes the note
// of its request and refuses an ambiguous one with BAD_REQUEST and
// Connection: close. Nothing the client sends is changed.

// FramingListener wraps ln so that the server refuses HTTP/1.x requests
// whose framing is ambiguous, and closes their connection. HTTPServer's
// ConnContext finds its connections; serve with
// srv.Serve(server.FramingListener(ln)). It is for plaintext connections:
// behind TLS (ServeTLS) it checks nothing.
func FramingListener(ln net.Listener) net.Listener { return framingListener{ln} }

type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framedConn{Conn: c}, nil
}

// framedConn passes every byte through unchanged, reading request heads
// and skipping bodies as net/http does.
type framedConn struct {
	net.Conn
	mu sync.Mutex // Read (net/http's reader, or its background read) against take (the middleware)
	f  framer
}

func (c *framedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		c.f.feed(b[:n])
		c.mu.Unlock()
	}
	return n, err
}

// CloseWrite lets net/http half-close before closing, as it does on a
// *net.TCPConn, so that a refused client reads its answer rather than a
// reset caused by the bytes it sent after the request.
func (c *framedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type framedConnKey struct{}

// framingContext is HTTPServer's ConnContext: it lets a request find its
// framedConn.
func framingContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framedConn); ok {
		return context.WithValue(ctx, framedConnKey{}, fc)
	}
	return ctx
}

// framingProblem returns why r must be refused, or "" when its framing
// is not in doubt (or its connection is not a framedConn).
func framingProblem(r *http.Request) string {
	c, ok := r.Context().Value(framedConnKey{}).(*framedConn)
	if !ok {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f.take(r.Method, r.RequestURI)
}

// Framer states.
const (
	fHead      = iota // reading a head (the request line and the header lines)
	fBody             // skipping n bytes of a Content-Length body
	fChunkSize        // reading a chunk-size line
	fChunkData        // skipping n bytes of chunk data
	fChunkEnd         // reading the CRLF after chunk data
	fTrailer          // reading trailer lines up to the empty line
	fOff              // not HTTP/1.x (TLS, or HTTP/2 with prior knowledge): nothing to check
	fStopped          // stopped: after an ambiguous head, or at a request net/http refuses
)

const (
	// maxFramingLine bounds a line kept across reads; net/http refuses
	// a head over MaxHeaderBytes (64 KiB in HTTPServer, 1 MiB by
	// default) plus 4 KiB.
	maxFramingLine = 1<<20 + 4<<10
	// maxFramingHeads bounds the heads read ahead of their handlers;
	// net/http reads ahead at most its 4 KiB buffer.
	maxFramingHeads = 1024
)

// framedHead is one request head read but not yet taken by its handler.
type framedHead struct {
	method, target string
	problem        string
}

// framer follows one connection's HTTP/1.x framing, as net/http's
// readRequest, readTransfer and chunked reader do.
type framer struct {
	state    int
	started  bool   // a byte was seen
	seenHead bool   // a request line was seen
	line     []byte // a line split across reads
	n        uint64 // bytes left in a body or chunk

	// The head being read.
	method, target string
	http11         bool
	te, cl         []string
	last           *[]string // the header a continuation line continues

	heads []framedHead // heads[first:] are not yet taken
	first int
	// stopped is why framing stopped: every later request on the
	// connection is refused with it.
	stopped string
}

func (f *framer) feed(b []byte) {
	if !f.started {
		f.started = true
		if b[0] == 0x16 { // a TLS handshake record
			f.state = fOff
		}
	}
	for len(b) > 0 {
		switch f.state {
		case fOff, fStopped:
			return
		case fBody, fChunkData:
			k := min(f.n, uint64(len(b)))
			f.n -= k
			b = b[k:]
			if f.n == 0 {
				if f.state == fBody {
					f.state = fHead
				} else {
					f.state = fChunkEnd
				}
			}
			continue
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(f.line)+len(b) > maxFramingLine {
				f.stop("a line of the request is too long")
				return
			}
			f.line = append(f.line, b...)
			return
		}
		line := b[:i+1]
		if len(f.line) > 0 {
			if len(f.line)+len(line) > maxFramingLine {
				f.stop("a line of the request is too long")
				return
			}
			f.line = append(f.line, line...)
			line = f.line
		}
		b = b[i+1:]
		f.lineDone(line)
		f.line = f.line[:0]
		if cap(f.line) > 4<<10 {
			f.line = nil
		}
	}
}

// stop ends framing at bytes net/http refuses too (it closes the
// connection after them): a request it would still serve on the
// connection is refused.
func (f *framer) stop(why string) {
	f.state = fStopped
	if f.stopped == "" {
		f.stopped = "request framing lost on this connection: " + why
	}
}

// lineDone handles one line, with its LF.
func (f *framer) lineDone(line []byte) {
	crlf := len(line) >= 2 && line[len(line)-2] == '\r'
	text := bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	switch f.state {
	case fHead:
		f.headLine(text)
	case fChunkSize:
		// net/http: CRLF only, no other CR, under 4 KiB, optional
		// extensions, at most 16 hex digits.
		if !crlf || bytes.IndexByte(text, '\r') >= 0 || len(text) >= 4096 {
			f.stop("malformed chunked body")
			return
		}
		text, _, _ = bytes.Cut(bytes.TrimRight(text, " \t"), []byte{';'})
		n, ok := parseHex(text)
		if !ok {
			f.stop("malformed chunked body")
			return
		}
		if f.n = n; n == 0 {
			f.state = fTrailer
		} else {
			f.state = fChunkData
		}
	case fChunkEnd:
		if len(line) != 2 || !crlf {
			f.stop("malformed chunked body")
			return
		}
		f.state = fChunkSize
	case fTrailer:
		if len(text) == 0 {
			f.state = fHead
		}
	}
}

func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	return n, true
}

// headLine handles a line of a head: the request line, a header line, or
// the empty line that ends the head.
func (f *framer) headLine(text []byte) {
	if f.method == "" {
		if len(text) == 0 {
			return // empty lines before a request line
		}
		// net/http's parseRequestLine: METHOD SP TARGET SP PROTO.
		method, rest, ok1 := bytes.Cut(text, []byte{' '})
		target, proto, ok2 := bytes.Cut(rest, []byte{' '})
		if !ok1 || !ok2 || len(method) == 0 {
			f.stop("malformed request line")
			return
		}
		switch p := string(proto); {
		case p == "HTTP/2.0" && string(method) == "PRI" && string(target) == "*" && !f.seenHead:
			f.state = fOff // HTTP/2 with prior knowledge (h2c)
			return
		case p == "HTTP/1.1":
			f.http11 = true
		case p == "HTTP/1.0":
		case len(p) == 8 && strings.HasPrefix(p, "HTTP/1.") && '0' <= p[7] && p[7] <= '9':
			f.http11 = p[7] >= '1'
		default:
			f.stop("unsupported protocol version") // net/http answers 505 and closes
			return
		}
		f.method, f.target, f.seenHead = string(method), string(target), true
		return
	}
	if len(text) == 0 {
		f.headDone()
		return
	}
	if text[0] == ' ' || text[0] == '\t' {
		// An obsolete continuation line: part of the previous value.
		if f.last != nil && len(*f.last) > 0 {
			(*f.last)[len(*f.last)-1] += " " + string(bytes.Trim(text, " \t"))
		}
		return
	}
	f.last = nil
	name, value, _ := bytes.Cut(text, []byte{':'})
	switch {
	case asciiEqualFold(name, "Transfer-Encoding"):
		f.te = append(f.te, string(bytes.Trim(value, " \t")))
		f.last = &f.te
	case asciiEqualFold(name, "Content-Length"):
		f.cl = append(f.cl, string(bytes.Trim(value, " \t")))
		f.last = &f.cl
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// headDone frames the body of the head just read, as net/http's
// readTransfer does, and notes the head for its handler.
func (f *framer) headDone() {
	h := framedHead{method: f.method, target: f.target}
	te, cl, http11 := f.te, f.cl, f.http11
	f.method, f.target, f.http11, f.te, f.cl, f.last = "", "", false, nil, nil, nil
	switch {
	case len(te) > 0 && len(cl) > 0:
		h.problem = "ambiguous request framing: both Transfer-Encoding and Content-Length (RFC 9112 section 6.1); send only one"
	case len(te) > 0 && !http11:
		h.problem = "ambiguous request framing: Transfer-Encoding in an HTTP/1.0 request (RFC 9112 section 6.1)"
	}
	if h.problem != "" {
		// Whatever follows on this connection may be another client's
		// request smuggled in this one's body: nothing more is served.
		f.push(h)
		f.state, f.stopped = fStopped, h.problem
		return
	}
	switch {
	case len(te) > 0: // HTTP/1.1, no Content-Length
		if len(te) != 1 || !asciiEqualFold([]byte(te[0]), "chunked") {
			f.stop("unsupported Transfer-Encoding") // net/http answers 501 and closes
			return
		}
		f.state = fChunkSize
	case len(cl) > 0:
		for _, v := range cl[1:] {
			if v != cl[0] {
				f.stop("conflicting Content-Length headers") // net/http answers 400 and closes
				return
			}
		}
		n, err := strconv.ParseUint(cl[0], 10, 63)
		if err != nil {
			f.stop("invalid Content-Length") // net/http answers 400 and closes
			return
		}
		if f.n = n; n > 0 {
			f.state = fBody
		}
	}
	// net/http answers OPTIONS * itself: no handler takes its note.
	if h.method == http.MethodOptions && h.target == "*" {
		return
	}
	f.push(h)
}

func (f *framer) push(h framedHead) {
	if len(f.heads)-f.first == maxFramingHeads {
		f.stop("too many requests read ahead")
		return
	}
	f.heads = append(f.heads, h)
}

// take returns the problem of the next head, which must be the request
// method target being served.
func (f *framer) take(method, target string) string {
	const unsure = "request framing could not be verified"
	if f.state == fOff {
		return ""
	}
	if f.first == len(f.heads) {
		if f.stopped != "" {
			return f.stopped
		}
		return unsure
	}
	h := f.heads[f.first]
	f.heads[f.first] = framedHead{}
	// net/http reads more only when its buffer holds no whole head, so
	// the queue empties at least that often, and the array is reused.
	if f.first++; f.first == len(f.heads) {
		f.heads, f.first = f.heads[:0], 0
	}
	if h.method != method || h.target != target {
		f.state, f.stopped = fStopped, unsure
		return unsure
	}
	return h.problem
}
