package postgres

import (
	"math/rand/v2"
	"testing"

	"github.com/threads-server/threads"
)

// TestEventChunks pages through logs of payload sizes with
// readEventChunks against a simulated server that sends every row a
// statement selects, as PostgreSQL does (pgx drains what the reader does
// not take). Each page must be the one a single statement would give,
// while the bytes sent stay within a few times the log's own: reading
// whole limits and dropping the rest past the byte bound would send 60
// times the log for messages of 128 KiB.
func TestEventChunks(t *testing.T) {
	const small, big, limit = 300, 128<<10 + 200, 500
	run := func(n, size int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = size
		}
		return out
	}
	cat := func(parts ...[]int) []int {
		var out []int
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]int, 3000)
	for i := range random {
		random[i] = 100 + rnd.IntN(big)
	}
	logs := map[string][]int{
		"small":                run(2000, small),
		"big":                  run(2000, big),
		"one":                  run(1, big),
		"alternating":          cat(run(16, small), run(16, big), run(16, small), run(16, big), run(3, small)),
		"small then big, 1":    cat(run(1, small), run(600, big), run(1, small), run(600, big)),
		"small then big, 100":  cat(run(100, small), run(600, big), run(100, small), run(600, big)),
		"small then big, 400":  cat(run(400, small), run(600, big), run(400, small), run(600, big)),
		"big then small":       cat(run(300, big), run(2000, small)),
		"random":               random,
		"random and small run": cat(random[:500], run(1000, small), random[500:]),
	}
	for name, log := range logs {
		t.Run(name, func(t *testing.T) {
			logBytes, sent, statements, pages := 0, 0, 0, 0
			for _, n := range log {
				logBytes += n
			}
			for pos := 0; ; pages++ {
				if pages > len(log) {
					t.Fatal("paging does not end")
				}
				start := pos
				p := eventPage{}
				more, err := readEventChunks(limit, &p, func(chunk int) (n int, cut bool, err error) {
					statements++
					rows := log[pos:min(pos+chunk, len(log))]
					for _, size := range rows {
						sent += size
					}
					for _, size := range rows {
						if p.full() {
							return n, true, nil
						}
						p.add(&threads.Event{}, size)
						n++
						pos++
					}
					return n, false, nil
				})
				if err != nil {
					t.Fatal(err)
				}
				// The page one statement of limit rows would give.
				want, size := 0, 0
				for i := start; i < len(log) && want < limit && (want == 0 || size < threads.MaxEventPageBytes); i++ {
					want++
					size += log[i]
				}
				if len(p.out) != want || p.size != size {
					t.Fatalf("page %d from row %d: %d events, %d bytes; one statement gives %d events, %d bytes", pages, start, len(p.out), p.size, want, size)
				}
				if !more {
					if pos != len(log) {
						t.Fatalf("page %d says the log ends at row %d of %d", pages, pos, len(log))
					}
					break
				}
				if len(p.out) == 0 {
					t.Fatalf("page %d says more with no event", pages)
				}
			}
			pages++
			t.Logf("%d rows, %d pages, %.1f statements a page, %.2f times the log's bytes sent", len(log), pages, float64(statements)/float64(pages), float64(sent)/float64(logBytes))
			if sent > 4*logBytes {
				t.Errorf("the server sent %d bytes for a log of %d: %.1f times", sent, logBytes, float64(sent)/float64(logBytes))
			}
			if statements > 5*pages {
				t.Errorf("%d statements for %d pages", statements, pages)
			}
		})
	}
}
