package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CheckTarget refuses a URL that does not name this machine unless
// allowRemote is set: a load generator pointed at someone else's server by
// a typo is an attack. Only literal loopback addresses and "localhost"
// count; any other name would need a DNS lookup, whose answer can change.
func CheckTarget(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--url: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--url must be http://HOST[:PORT] or https://…, not %q", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to load %s: not a loopback address (pass --allow-remote if the server is yours)", host)
}

// client calls the API's m3o JSON routes. One http.Transport is shared by
// every closed-loop client, with as many idle connections kept per host as
// there are clients, so each client keeps its connection and the run
// measures requests, not TCP handshakes.
type client struct {
	base string // ".../v1/threads/"
	auth string // "Bearer KEY"
	http *http.Client
}

func newClient(base, key string, conns int) *client {
	tr := &http.Transport{
		Proxy:               nil, // a benchmark of localhost must not go through $HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &client{base: strings.TrimRight(base, "/") + "/v1/threads/", auth: "Bearer " + key,
		http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// outcome is one call's result as the report counts it: "" for a 200, the
// status and the error envelope's id otherwise ("429 RATE_LIMITED"), or
// the kind of transport failure.
type outcome = string

// do POSTs body to method. When out is not nil a 200's body is decoded
// into it; otherwise it is discarded (but read, so the connection is
// reused).
func (c *client) do(method string, body []byte, out any) (outcome, error) {
	req, err := http.NewRequest(http.MethodPost, c.base+method, bytes.NewReader(body))
	if err != nil {
		return "request", err
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return transportKind(err), err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		var env struct{ ID string }
		_ = json.Unmarshal(b, &env) // not JSON: the status alone names the refusal
		o := strconv.Itoa(res.StatusCode)
		if env.ID != "" {
			o += " " + env.ID
		}
		return o, fmt.Errorf("%s: %s %s", method, res.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
	} else {
		err = json.NewDecoder(res.Body).Decode(out)
	}
	if err != nil {
		return "read body", fmt.Errorf("%s: reading the answer: %w", method, err)
	}
	return "", nil
}

// transportKind names a failure without the addresses and ports in its
// text, so the report's error table has a few rows, not one per socket.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "transport error"
}

// Wire shapes: only the fields the bench reads.
type (
	wireConversation struct {
		ID        string `json:"id"`
		CreatedAt string `json:"created_at"`
	}
	wireMessage struct {
		ID             string `json:"id"`
		ConversationID string `json:"conversation_id"`
		Text           string `json:"text"`
		SentAt         string `json:"sent_at"`
		Seq            int64  `json:"seq"`
	}
	conversationAnswer struct {
		Conversation wireConversation `json:"conversation"`
	}
	conversationsAnswer struct {
		Conversations []wireConversation `json:"conversations"`
		NextPageToken string             `json:"next_page_token"`
	}
	messagesAnswer struct {
		Messages []wireMessage `json:"messages"`
	}
)
