package main

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMigrationsMatch: both engines' migrations carry the same numbers and
// names (a migration one engine does not need is a no-op there), so a
// schema version means the same on each, and a feature's migration is
// not forgotten on one of them.
func TestMigrationsMatch(t *testing.T) {
	names := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	sqlite, postgres := names("../../internal/sqlite/migrations"), names("../../internal/postgres/migrations")
	if len(sqlite) == 0 {
		t.Fatal("no SQLite migrations found")
	}
	if diff := cmp.Diff(sqlite, postgres); diff != "" {
		t.Errorf("the engines' migrations differ (-sqlite +postgres):\n%s", diff)
	}
}
