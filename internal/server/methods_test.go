package server_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"strings"
	"testing"

	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"github.com/threads-server/threads/internal/gen/threadspb/threadspbconnect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// serviceMethods is the proto's service descriptor: the one list of the
// API's methods.
func serviceMethods() protoreflect.MethodDescriptors {
	return pb.File_threads_proto.Services().ByName("Threads").Methods()
}

// TestEveryMethodIsServed walks the service descriptor and fails when a
// method lacks any of what every method must have: an m3o route (or, for
// a stream, the SSE route), a row of the isolation matrix, a fuzz target,
// a case in the Connect test dispatcher, and an entry in docs/api.md.
// Adding a method to the proto and forgetting one of them fails here
// (the server itself refuses to start without the m3o route).
func TestEveryMethodIsServed(t *testing.T) {
	e := newTestEnv(t)
	rows := map[string]bool{}
	for _, r := range matrixRows() {
		rows[r.method] = true
	}
	fuzz := fuzzTargets(t)
	docs, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	client := threadspbconnect.NewThreadsClient(http.DefaultClient, e.URL)
	methods := serviceMethods()
	for i := range methods.Len() {
		m := methods.Get(i)
		name := string(m.Name())
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(string(docs), "\n| "+name+" |") {
				t.Errorf("docs/api.md has no row for %s in its table of methods", name)
			}
			if m.IsStreamingServer() {
				// Streams: the SSE route and the isolation matrix's stream
				// cells (TestIsolationStreams) serve Subscribe.
				if name != "Subscribe" {
					t.Errorf("%s is a new stream: give it an HTTP route, isolation cells, a fuzz target and docs, then list it here", name)
				}
				if c, res := e.subscribe(t, "", "group_id=g", ""); c != nil || res.Status != http.StatusUnauthorized {
					t.Errorf("the SSE route did not refuse a call without a key")
				}
				return
			}
			if r := e.post(name, "", map[string]any{}); r.Status != http.StatusUnauthorized {
				t.Errorf("m3o route /v1/threads/%s answered %d without a key, want 401 (no route?)", name, r.Status)
			}
			if !rows[name] {
				t.Errorf("the isolation matrix (matrixRows) has no row for %s", name)
			}
			if !fuzz["Fuzz"+name] {
				t.Errorf("fuzz_test.go has no Fuzz%s", name)
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
			if err != nil {
				t.Fatal(err)
			}
			_, err = invokeConnect(context.Background(), client, "", name, mt.New().Interface())
			if err != nil && strings.Contains(err.Error(), "no such method in test dispatcher") {
				t.Errorf("invokeConnect (connect_test.go) has no case for %s", name)
			}
		})
	}
}

// fuzzTargets returns the names of the package's fuzz targets.
func fuzzTargets(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "fuzz_test.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && strings.HasPrefix(fn.Name.Name, "Fuzz") {
			out[fn.Name.Name] = true
		}
	}
	return out
}
