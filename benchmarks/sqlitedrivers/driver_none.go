//go:build !modernc && !mattn && !ncruces

package driverbench

// Build with exactly one of: -tags modernc | -tags mattn | -tags ncruces
const (
	DriverName  = ""
	DriverLabel = "none"
)

func DSN(path, sync string, readOnly bool) string {
	panic("github.com/threads-server/threads/benchmarks/sqlitedrivers: build with -tags modernc, mattn or ncruces")
}
