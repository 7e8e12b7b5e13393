// Command summarize reads `go test -bench` outputs named bench_<driver>.txt
// and prints a markdown table of medians (with min–max of ops/s).
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

var (
	procSuffix = regexp.MustCompile(`-\d+$`)
	fileDriver = regexp.MustCompile(`^bench\d*_(.*)\.txt$`) // bench_X.txt, bench2_X.txt merge into X
)

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func minmax(xs []float64) (float64, float64) {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

func num(x float64) string {
	switch {
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}

func main() {
	wide := len(os.Args) > 1 && os.Args[1] == "-wide"
	if wide {
		os.Args = append(os.Args[:1], os.Args[2:]...)
	}
	// data[bench][driver][unit] = samples
	data := map[string]map[string]map[string][]float64{}
	var order []string
	var drivers []string
	for _, f := range os.Args[1:] {
		d := fileDriver.ReplaceAllString(filepath.Base(f), "$1")
		if !slices.Contains(drivers, d) {
			drivers = append(drivers, d)
		}
		fh, err := os.Open(f)
		if err != nil {
			panic(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 4 || !strings.HasPrefix(fs[0], "Benchmark") {
				continue
			}
			name := procSuffix.ReplaceAllString(strings.TrimPrefix(fs[0], "Benchmark"), "")
			if data[name] == nil {
				data[name] = map[string]map[string][]float64{}
				order = append(order, name)
			}
			if data[name][d] == nil {
				data[name][d] = map[string][]float64{}
			}
			for i := 2; i+1 < len(fs); i += 2 {
				v, err := strconv.ParseFloat(fs[i], 64)
				if err != nil {
					continue
				}
				data[name][d][fs[i+1]] = append(data[name][d][fs[i+1]], v)
			}
		}
		fh.Close()
	}
	if wide {
		printWide(order, drivers, data)
		return
	}
	fmt.Println("| Operation | Driver | ops/s (median) | ops/s min–max | ns/op | allocs/op | B/op | n |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	for _, name := range order {
		for _, d := range drivers {
			m := data[name][d]
			if m == nil {
				continue
			}
			unit := "ops/s"
			if len(m["msgs/s"]) > 0 {
				unit = "msgs/s"
			}
			lo, hi := minmax(m[unit])
			label := num(median(m[unit]))
			rng := num(lo) + "–" + num(hi)
			if unit == "msgs/s" {
				label += " msgs/s"
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %d |\n", name, d, label, rng,
				num(median(m["ns/op"])), num(median(m["allocs/op"])), num(median(m["B/op"])), len(m["ns/op"]))
		}
	}
}

// printWide prints one row per operation with median ops/s, ns/op, allocs/op per driver.
func printWide(order, drivers []string, data map[string]map[string]map[string][]float64) {
	sort.Strings(drivers)
	h, sep := "| Operation |", "|---|"
	for _, d := range drivers {
		h += fmt.Sprintf(" %s ops/s | %s ns/op | %s allocs |", d, d, d)
		sep += "---:|---:|---:|"
	}
	fmt.Println(h)
	fmt.Println(sep)
	for _, name := range order {
		row := "| " + name + " |"
		for _, d := range drivers {
			m := data[name][d]
			if m == nil {
				row += " | | |"
				continue
			}
			unit := "ops/s"
			if len(m["msgs/s"]) > 0 {
				unit = "msgs/s"
			}
			v := num(median(m[unit]))
			if unit == "msgs/s" {
				v += " msg/s"
			}
			row += fmt.Sprintf(" %s | %s | %s |", v, num(median(m["ns/op"])), num(median(m["allocs/op"])))
		}
		fmt.Println(row)
	}
}
