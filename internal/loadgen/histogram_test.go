package loadgen

import (
	"testing"
	"time"
)

// TestHistogramQuantiles records 1..10000 µs once each: the p-th
// percentile is p% of 10 ms, and the histogram may overstate it by its
// precision (2^-7) at most, never understate it.
func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{.5, 5000 * time.Microsecond}, {.9, 9000 * time.Microsecond}, {.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.Quantile(c.q)
		if got < c.want || float64(got-c.want) > float64(c.want)/128 {
			t.Errorf("Quantile(%v) = %v, want %v within 1/128 above", c.q, got, c.want)
		}
	}
	if h.Max() != 10*time.Millisecond || h.Count() != 10000 {
		t.Errorf("Max %v Count %d, want 10ms and 10000", h.Max(), h.Count())
	}
	if m := h.Mean(); m != 5000500*time.Nanosecond {
		t.Errorf("Mean %v, want 5.0005ms", m)
	}
}

// TestHistogramSmallAndMerge: small values are exact, merging adds
// counts, a lone outlier is the maximum and only the maximum.
func TestHistogramSmallAndMerge(t *testing.T) {
	var a, b Histogram
	for i := 0; i < 99; i++ {
		a.Record(100) // ns: below 256, exact
	}
	b.Record(time.Hour) // beyond the last bucket: capped, max still exact
	a.Merge(&b)
	if a.Quantile(.5) != 100 || a.Quantile(.99) != 100 {
		t.Errorf("p50 %v p99 %v, want 100ns", a.Quantile(.5), a.Quantile(.99))
	}
	if a.Quantile(1) != time.Hour || a.Max() != time.Hour || a.Count() != 100 {
		t.Errorf("p100 %v max %v count %d", a.Quantile(1), a.Max(), a.Count())
	}
	var empty Histogram
	if empty.Quantile(.99) != 0 || empty.Mean() != 0 {
		t.Error("an empty histogram must report 0")
	}
}

// TestBuckets: every bucket's highest value maps back to it, and the next
// value to the next bucket, so buckets tile the line with no gap.
func TestBuckets(t *testing.T) {
	for i := 0; i < maxIndex; i++ {
		hi := highest(i)
		if bucketOf(hi) != i || bucketOf(hi+1) != i+1 {
			t.Fatalf("bucket %d: highest %d maps to %d, +1 to %d", i, hi, bucketOf(hi), bucketOf(hi+1))
		}
	}
}

func TestCheckTarget(t *testing.T) {
	for _, u := range []string{"http://localhost:8080", "http://127.0.0.1:1", "http://127.9.9.9", "http://[::1]:8080", "https://app.localhost"} {
		if err := CheckTarget(u, false); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://example.com", "http://10.0.0.1:8080", "http://[2001:db8::1]", "http://localhost.example.com", "http://0.0.0.0:8080"} {
		if err := CheckTarget(u, false); err == nil {
			t.Errorf("%s: accepted without --allow-remote", u)
		}
		if err := CheckTarget(u, true); err != nil {
			t.Errorf("%s with --allow-remote: %v", u, err)
		}
	}
	for _, u := range []string{"localhost:8080", "ftp://localhost", "http://"} {
		if err := CheckTarget(u, true); err == nil {
			t.Errorf("%q: a malformed URL was accepted", u)
		}
	}
}
