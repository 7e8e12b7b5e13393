package sqlite

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestEventsOnlyThroughChange keeps the changes' entry point the only way
// to the event log: outside change.go, no code of the store appends an
// event or tells the listeners, so a new change that writes events has to
// go through change or changeBatch, which take the write lock, write the
// events in the change's transaction and announce them after its commit.
func TestEventsOnlyThroughChange(t *testing.T) {
	checkCallsOnlyIn(t, "change.go", "appendEvent", "appendEvents", "notify", "notifyBatch")
}

// checkCallsOnlyIn fails for every call of a method or function named in
// names made outside the file home, among the package's non-test files.
func checkCallsOnlyIn(t *testing.T, home string, names ...string) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == home {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var called string
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				called = fn.Sel.Name
			case *ast.Ident:
				called = fn.Name
			}
			for _, forbidden := range names {
				if called == forbidden {
					t.Errorf("%s calls %s: only %s may (the changes' entry point)", fset.Position(call.Pos()), called, home)
				}
			}
			return true
		})
	}
}
