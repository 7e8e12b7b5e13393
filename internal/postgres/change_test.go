package postgres

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestEventsOnlyThroughChange keeps the changes' entry point the only way
// to the event log: outside change.go, no code of the store writes an
// event (no statement that inserts into events, no call that does), takes
// the tenant's event lock or announces a commit, so a new change that writes
// events has to be declared as a writer and go through change or
// changeStatement, and TestLocksBeforeTxid runs it.
func TestEventsOnlyThroughChange(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "change.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				var called string
				switch fn := n.Fun.(type) {
				case *ast.SelectorExpr:
					called = fn.Sel.Name
				case *ast.Ident:
					called = fn.Name
				}
				switch called {
				case "published", "insertEvents", "lockCTE", "locks":
					t.Errorf("%s calls %s: only change.go may (the changes' entry point)", fset.Position(n.Pos()), called)
				}
			case *ast.BasicLit:
				if n.Kind == token.STRING && (strings.Contains(n.Value, "INTO events") || strings.Contains(n.Value, "pg_advisory_xact_lock_shared(")) {
					t.Errorf("%s: a statement that writes events or takes the event lock: only change.go may", fset.Position(n.Pos()))
				}
			}
			return true
		})
	}
}
