package sse_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/threads-server/threads/internal/sse"
)

func TestReader(t *testing.T) {
	stream := "retry: 2000\nid: c0\n\n" + // id only: no event
		": heartbeat\n\n" +
		"id: c1\nevent: message.created\ndata: {\"a\":1}\n\n" +
		"data: line one\r\ndata: line two\r\n\r\n" + // CRLF, default type, id kept
		"id: c2\rdata:no space\r\r" + // CR only
		"id: c3\n\n" +
		"data: unterminated"
	r := sse.NewReader(strings.NewReader(stream))
	var idOnly []string
	r.IDOnly = func(id string) { idOnly = append(idOnly, id) }
	var got []sse.Event
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, *e)
	}
	want := []sse.Event{
		{ID: "c1", Type: "message.created", Data: `{"a":1}`, Retry: 2000},
		{ID: "c1", Type: "message", Data: "line one\nline two", Retry: 2000},
		{ID: "c2", Type: "message", Data: "no space", Retry: 2000},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"c0", "c3"}, idOnly); diff != "" {
		t.Errorf("id-only blocks (-want +got):\n%s", diff)
	}
	if r.LastID() != "c3" {
		t.Errorf("LastID = %q, want c3", r.LastID())
	}
}

func FuzzReader(f *testing.F) {
	f.Add("id: 1\nevent: x\ndata: y\n\n")
	f.Add("retry: 10\r\n: c\r\ndata\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		r := sse.NewReader(strings.NewReader(s))
		for range 1000 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}
