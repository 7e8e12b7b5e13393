package loadgen

import (
	"math/bits"
	"sync"
	"time"
)

// subBits sets the histogram's precision: every power of two is split into
// 2^subBits buckets, so a recorded value is known to within 2^-subBits
// (0.8%) of itself, from a nanosecond to hours, in a few thousand
// counters. That is the HDR histogram's log-linear layout: constant
// relative error, constant memory, O(1) recording, and histograms merge by
// adding counters, so each client keeps its own and nothing is shared
// while the load runs.
const subBits = 7

// maxIndex caps values at 2^42 ns (about 73 minutes), longer than any
// request the bench waits for; a longer one still counts, in the last
// bucket, and Max stays exact.
const maxIndex = (41-subBits)<<subBits + 1<<(subBits+1) - 1

// Histogram records durations. Its zero value is ready; it is not safe
// for concurrent use (see LockedHistogram).
type Histogram struct {
	counts   []uint64
	n        uint64
	sum, max int64
}

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < 1<<(subBits+1) {
		return int(u)
	}
	shift := bits.Len64(u) - subBits - 1
	i := shift<<subBits + int(u>>shift)
	return min(i, maxIndex)
}

// highest is the largest value that lands in bucket i: what a percentile
// reports, so a percentile never understates a latency.
func highest(i int) int64 {
	if i < 1<<(subBits+1) {
		return int64(i)
	}
	shift := i>>subBits - 1
	m := int64(i - shift<<subBits)
	return (m+1)<<shift - 1
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	i := bucketOf(v)
	if i >= len(h.counts) {
		grown := make([]uint64, max(i+1, 2*len(h.counts)))
		copy(grown, h.counts)
		h.counts = grown
	}
	h.counts[i]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

// Merge adds o's records to h.
func (h *Histogram) Merge(o *Histogram) {
	if len(o.counts) > len(h.counts) {
		grown := make([]uint64, len(o.counts))
		copy(grown, h.counts)
		h.counts = grown
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of records.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest record, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average record.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / int64(h.n))
}

// Quantile returns the value at or below which a fraction q of the
// records lie (0 < q <= 1), within the histogram's precision and never
// above the maximum; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return time.Duration(min(highest(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// LockedHistogram is a Histogram behind a mutex, for the fan-out
// subscribers: thousands of goroutines record into a few shards of these
// rather than each owning a histogram of a few kilobytes.
type LockedHistogram struct {
	mu sync.Mutex
	h  Histogram
}

// Record adds one duration.
func (l *LockedHistogram) Record(d time.Duration) {
	l.mu.Lock()
	l.h.Record(d)
	l.mu.Unlock()
}

// MergeInto adds l's records to h.
func (l *LockedHistogram) MergeInto(h *Histogram) {
	l.mu.Lock()
	h.Merge(&l.h)
	l.mu.Unlock()
}
