//go:build ncruces

package driverbench

import (
	"fmt"

	// Note: in v0.37.0 github.com/ncruces/go-sqlite3/embed is deprecated and
	// empty (SQLite is translated to Go with wasm2go); importing it only prints
	// a warning, so it is not imported here.
	_ "github.com/ncruces/go-sqlite3/driver"
)

const (
	DriverName  = "sqlite3"
	DriverLabel = "ncruces"
)

// DSN builds a github.com/ncruces/go-sqlite3/driver DSN. sync is "NORMAL" or "FULL".
func DSN(path, sync string, readOnly bool) string {
	s := fmt.Sprintf("file:%s?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(%s)&_pragma=foreign_keys(0)&_txlock=immediate", path, sync)
	if readOnly {
		s += "&_pragma=query_only(1)"
	}
	return s
}
