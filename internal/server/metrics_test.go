package server_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/threads-server/threads"
	"github.com/threads-server/threads/internal/broker"
	"github.com/threads-server/threads/internal/server"
)

// requestSeries returns threads_requests_total as label set → count,
// each label set written method/protocol/code.
func requestSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "threads_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[l["method"]+"/"+l["protocol"]+"/"+l["code"]] = m.GetCounter().GetValue()
		}
	}
	return out
}

// requestsCounted returns threads_requests_total{method,protocol,code}.
func requestsCounted(t *testing.T, reg *prometheus.Registry, method, protocol, code string) float64 {
	t.Helper()
	return requestSeries(t, reg)[method+"/"+protocol+"/"+code]
}

// TestUnknownMethodsCounted (issue 10): calls to methods the API does not
// have, on every route, are counted in threads_requests_total under
// method="unknown", never under the caller's text (which would let a
// client make series without end); a wrong HTTP method on a real one is
// counted under that method.
func TestUnknownMethodsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newTestEnv(t, func(c *server.Config, _ *broker.Config) { c.Registry = reg })
	calls := []struct {
		verb, path  string
		contentType string
		client      *http.Client
		status      int
	}{
		{"POST", "/v1/threads/NoSuchMethod", "", e.Client, http.StatusNotFound},
		{"POST", "/threads/Threads/NoSuchMethod2", "", e.Client, http.StatusNotFound},
		{"POST", "/v1/threads/events", "", e.Client, http.StatusNotFound},
		{"GET", "/v1/threads/CreateConversation", "", e.Client, http.StatusBadRequest},
		{"POST", "/threads.Threads/NoSuchMethod3", "application/proto", e.Client, http.StatusNotFound},
		{"POST", "/threads.Threads/CreateConversation/x", "application/json", e.Client, http.StatusNotFound},
		{"POST", "/threads.Threads/NoSuchMethod4", "application/grpc", h2cClient(), http.StatusNotFound},
		{"POST", "/threads.Threads/NoSuchMethod5", "application/grpc-web+proto", e.Client, http.StatusNotFound},
		{"POST", "/v2/NoSuchPath", "", e.Client, http.StatusNotFound},
		{"GET", "/NoSuchPath/" + strings.Repeat("x", 100), "", e.Client, http.StatusNotFound},
	}
	for _, c := range calls {
		req, err := http.NewRequest(c.verb, e.URL+c.path, bytes.NewReader([]byte("{}")))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.Key)
		if c.contentType != "" {
			req.Header.Set("Content-Type", c.contentType)
		}
		res, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status {
			t.Errorf("%s %s: status %d, want %d", c.verb, c.path, res.StatusCode, c.status)
		}
	}
	want := map[string]float64{
		"unknown/m3o/" + threads.ENOTFOUND:     3,
		"CreateConversation/m3o/BAD_REQUEST":   1,
		"unknown/connect/" + threads.ENOTFOUND: 2,
		"unknown/grpc/" + threads.ENOTFOUND:    1,
		"unknown/grpcweb/" + threads.ENOTFOUND: 1,
		"unknown/http/" + threads.ENOTFOUND:    2,
	}
	if d := cmp.Diff(want, requestSeries(t, reg)); d != "" {
		t.Errorf("threads_requests_total (-want +got):\n%s", d)
	}
}
