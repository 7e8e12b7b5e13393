//go:build mattn

package driverbench

import (
	"fmt"

	_ "github.com/mattn/go-sqlite3"
)

const (
	DriverName  = "sqlite3"
	DriverLabel = "mattn"
)

// DSN builds a github.com/mattn/go-sqlite3 DSN. sync is "NORMAL" or "FULL".
func DSN(path, sync string, readOnly bool) string {
	s := fmt.Sprintf("file:%s?_busy_timeout=5000&_journal_mode=WAL&_synchronous=%s&_foreign_keys=0&_txlock=immediate", path, sync)
	if readOnly {
		s += "&_query_only=1"
	}
	return s
}
