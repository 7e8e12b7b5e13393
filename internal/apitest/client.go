package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/threads-server/threads"
)

// Client calls a server's m3o JSON routes. Its methods without a
// testing.TB return errors instead of failing a test, so goroutines other
// than the test's may call them; they are safe for concurrent use.
type Client struct {
	URL  string // base URL, http://host:port
	HTTP *http.Client
}

// NewClient returns a client of the server at url (a serve process, say)
// with a transport of its own, closed when the test ends.
func NewClient(t testing.TB, url string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	t.Cleanup(tr.CloseIdleConnections)
	return &Client{URL: url, HTTP: &http.Client{Transport: tr}}
}

// WithTimeout returns a copy of c whose calls give up after d: a guard
// against a server that never answers, for tests where that is a failure
// to report rather than a hang.
func (c *Client) WithTimeout(d time.Duration) *Client {
	hc := *c.HTTP
	hc.Timeout = d
	return &Client{URL: c.URL, HTTP: &hc}
}

// Response is one HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any // Raw decoded, when it is a JSON object
	Took   time.Duration  // from sending the request to the end of the body
}

// Do calls verb path (a path on the server, with its query). body is sent
// as is when it is a string or []byte, else JSON-encoded; nil sends none.
// key, when not empty, is sent as the bearer token; headers are name,
// value pairs.
func (c *Client) Do(verb, path, key string, body any, headers ...string) (*Response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(verb, c.URL+path, r)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	res, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	out := &Response{Status: res.StatusCode, Header: res.Header, Raw: raw, Took: time.Since(start)}
	_ = json.Unmarshal(raw, &out.Body) // not every answer is a JSON object
	return out, nil
}

// Post calls the m3o JSON route POST /v1/threads/{method}.
func (c *Client) Post(method, key string, body any, headers ...string) (*Response, error) {
	return c.Do(http.MethodPost, "/v1/threads/"+method, key, body, headers...)
}

// MustDo is Do for the test's own goroutine: a call that gets no answer
// fails the test.
func (c *Client) MustDo(t testing.TB, verb, path, key string, body any, headers ...string) *Response {
	t.Helper()
	r, err := c.Do(verb, path, key, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", verb, path, err)
	}
	return r
}

// MustPost is Post for the test's own goroutine.
func (c *Client) MustPost(t testing.TB, method, key string, body any, headers ...string) *Response {
	t.Helper()
	return c.MustDo(t, http.MethodPost, "/v1/threads/"+method, key, body, headers...)
}

// OK fails the test unless the call answered 200, and returns r.
func (r *Response) OK(t testing.TB) *Response {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.Status, r.Raw)
	}
	return r
}

// Envelope reports how r differs from the error answer with this id and
// status, or nil. That answer is the HTTP status, Content-Type
// application/json, and a body that is exactly the go-micro envelope:
// the four fields id, code, detail and status, with id the given id, code
// the HTTP status, a detail, and status the status's text. UNAVAILABLE
// also carries a Retry-After.
func (r *Response) Envelope(id string, status int) error {
	if r.Status != status {
		return fmt.Errorf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json: %s", ct, r.Raw)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(r.Raw, &fields); err != nil {
		return fmt.Errorf("error body is not a JSON object: %v: %s", err, r.Raw)
	}
	var got Error
	err := json.Unmarshal(r.Raw, &got)
	for _, name := range []string{"id", "code", "detail", "status"} {
		if _, ok := fields[name]; !ok {
			err = errors.Join(err, fmt.Errorf("no field %q", name))
		}
	}
	want := Error{ID: id, Code: status, Detail: got.Detail, Status: http.StatusText(status)}
	if err != nil || len(fields) != 4 || got != want || got.Detail == "" {
		return fmt.Errorf("error body %s, want exactly id %s, code %d, a detail, status %q", r.Raw, id, status, http.StatusText(status))
	}
	if id == threads.EUNAVAILABLE && r.Header.Get("Retry-After") == "" {
		return fmt.Errorf("%s without Retry-After", id)
	}
	return nil
}

// WantError fails the test unless r is the error answer with this id and
// status (Envelope).
func (r *Response) WantError(t testing.TB, id string, status int) {
	t.Helper()
	if err := r.Envelope(id, status); err != nil {
		t.Fatal(err)
	}
}

// Field decodes the named top-level field of a JSON answer; a missing
// field is an error.
func Field[T any](r *Response, field string) (T, error) {
	var all map[string]json.RawMessage
	var v T
	if err := json.Unmarshal(r.Raw, &all); err != nil {
		return v, fmt.Errorf("answer is not a JSON object: %v: %s", err, r.Raw)
	}
	raw, ok := all[field]
	if !ok {
		return v, fmt.Errorf("answer has no field %q: %s", field, r.Raw)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("field %q: %v: %s", field, err, r.Raw)
	}
	return v, nil
}

// MustField is Field for the test's own goroutine.
func MustField[T any](t testing.TB, r *Response, field string) T {
	t.Helper()
	v, err := Field[T](r, field)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// CreateConversation makes a conversation through the API and returns it.
func (c *Client) CreateConversation(t testing.TB, key, group, topic string) Conversation {
	t.Helper()
	r := c.MustPost(t, "CreateConversation", key, map[string]any{"group_id": group, "topic": topic}).OK(t)
	return MustField[Conversation](t, r, "conversation")
}

// CreateMessage posts a message through the API and returns it.
func (c *Client) CreateMessage(t testing.TB, key, conversation, author, text string) Message {
	t.Helper()
	r := c.MustPost(t, "CreateMessage", key, map[string]any{"conversation_id": conversation, "author_id": author, "text": text}).OK(t)
	return MustField[Message](t, r, "message")
}

// Scenario is one row of a scenario table: one HTTP call and what it must
// answer. Verb defaults to POST, Path to /v1/threads/{Method}, WantStatus
// to 200; WantID is the error id when WantStatus is not 200.
type Scenario struct {
	Name       string
	Verb       string
	Path       string
	Method     string
	Key        string
	Body       any
	Headers    []string
	WantStatus int
	WantID     string
	Check      func(t *testing.T, r *Response)
}

// RunScenarios runs each scenario as a subtest.
func (c *Client) RunScenarios(t *testing.T, scenarios []Scenario) {
	t.Helper()
	for _, s := range scenarios {
		t.Run(s.Name, func(t *testing.T) {
			verb, path, status := s.Verb, s.Path, s.WantStatus
			if verb == "" {
				verb = http.MethodPost
			}
			if path == "" {
				path = "/v1/threads/" + s.Method
			}
			if status == 0 {
				status = http.StatusOK
			}
			r := c.MustDo(t, verb, path, s.Key, s.Body, s.Headers...)
			if status == http.StatusOK {
				r.OK(t)
			} else {
				r.WantError(t, s.WantID, status)
			}
			if s.Check != nil {
				s.Check(t, r)
			}
		})
	}
}
