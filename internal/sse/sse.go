// Package sse reads a Server-Sent Events stream the way a browser's
// EventSource does (WHATWG HTML, "Interpreting an event stream"): it is
// the client side of GET /v1/threads/events, used by `threads watch` and
// by the tests, so both see exactly what a browser would.
package sse

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Event is one dispatched event.
type Event struct {
	// ID is the stream's last event id after this event: what a client
	// sends as Last-Event-ID when it reconnects.
	ID    string
	Type  string // "message" when the stream named none
	Data  string
	Retry int // the last retry: value in milliseconds, 0 if none
}

// Reader parses a stream.
type Reader struct {
	r      *bufio.Reader
	lastID string
	retry  int
	// IDOnly, when set, is called for a block that sets an id but carries
	// no data (a heartbeat): EventSource updates its last event id then
	// without dispatching anything.
	IDOnly func(id string)
}

// NewReader returns a Reader of r. Lines may be up to 1 MiB.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// LastID returns the last event id seen, as EventSource keeps it.
func (r *Reader) LastID() string { return r.lastID }

// Next returns the next event with data. It returns io.EOF (or the read
// error) when the stream ends; an event not terminated by a blank line is
// discarded, as the specification says.
func (r *Reader) Next() (*Event, error) {
	var data strings.Builder
	typ, idSeen, hasData := "", false, false
	for {
		line, err := r.readLine()
		if err != nil {
			return nil, err
		}
		if line == "" { // dispatch
			if !hasData {
				if idSeen && r.IDOnly != nil {
					r.IDOnly(r.lastID)
				}
				typ, idSeen = "", false
				continue
			}
			if typ == "" {
				typ = "message"
			}
			return &Event{ID: r.lastID, Type: typ, Data: strings.TrimSuffix(data.String(), "\n"), Retry: r.retry}, nil
		}
		if line[0] == ':' {
			continue // a comment
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.lastID, idSeen = value, true
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil && n >= 0 {
				r.retry = n
			}
		}
	}
}

// readLine returns one line without its terminator (LF, CRLF or CR).
func (r *Reader) readLine() (string, error) {
	var b strings.Builder
	for {
		c, err := r.r.ReadByte()
		if err != nil {
			return "", err
		}
		switch c {
		case '\n':
			return b.String(), nil
		case '\r':
			if next, err := r.r.Peek(1); err == nil && next[0] == '\n' {
				_, _ = r.r.ReadByte() // the LF just peeked
			}
			return b.String(), nil
		}
		if b.Len() >= 1<<20 {
			return "", io.ErrShortBuffer
		}
		b.WriteByte(c)
	}
}
