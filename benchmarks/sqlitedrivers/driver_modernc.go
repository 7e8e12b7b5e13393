//go:build modernc

package driverbench

import (
	"fmt"

	_ "modernc.org/sqlite"
)

const (
	DriverName  = "sqlite"
	DriverLabel = "modernc"
)

// DSN builds a modernc.org/sqlite DSN. sync is "NORMAL" or "FULL".
func DSN(path, sync string, readOnly bool) string {
	s := fmt.Sprintf("file:%s?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(%s)&_pragma=foreign_keys(0)&_txlock=immediate", path, sync)
	if readOnly {
		s += "&_pragma=query_only(1)"
	}
	return s
}
