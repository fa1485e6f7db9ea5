package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// phases in the order fleet.sh runs them.
var phases = []string{"cold", "converged", "changed", "drift"}

// sample is one timed run: N nodes, round, phase, tool, seconds.
type sample struct {
	n       int
	round   int
	phase   string
	tool    string
	seconds float64
}

// report reads fleet.sh's timings (tab-separated: nodes, round, phase,
// tool, seconds) and writes the table: per node count and phase, each
// tool's times (min/median/max) and the ratio of each peer's time to
// mason's in the same round (min/median/max). It ends with one line per
// phase, "PHASE ansible/mason RATIO", the median over every round of
// every node count.
func report(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var samples []sample
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) != 5 {
			return fmt.Errorf("%s:%d: want 5 tab-separated fields, got %q", path, line, sc.Text())
		}
		n, err1 := strconv.Atoi(fs[0])
		r, err2 := strconv.Atoi(fs[1])
		s, err3 := strconv.ParseFloat(fs[4], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("%s:%d: bad numbers in %q", path, line, sc.Text())
		}
		samples = append(samples, sample{n, r, fs[2], fs[3], s})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var ns []int
	var peers []string
	for _, s := range samples {
		if !slices.Contains(ns, s.n) {
			ns = append(ns, s.n)
		}
		if s.tool != "mason" && !slices.Contains(peers, s.tool) {
			peers = append(peers, s.tool)
		}
	}
	slices.Sort(ns)
	slices.Sort(peers)
	time := func(n, round int, phase, tool string) (float64, bool) {
		for _, s := range samples {
			if s.n == n && s.round == round && s.phase == phase && s.tool == tool {
				return s.seconds, true
			}
		}
		return 0, false
	}
	all := map[string][]float64{} // "phase peer" -> ratios over every N
	fmt.Fprintf(w, "%-5s %-10s %-26s", "nodes", "phase", "mason s (min/med/max)")
	for _, p := range peers {
		fmt.Fprintf(w, " %-26s %-24s", p+" s", p+"/mason")
	}
	fmt.Fprintln(w)
	for _, n := range ns {
		for _, ph := range phases {
			var mason []float64
			ratios := map[string][]float64{}
			times := map[string][]float64{}
			for _, s := range samples {
				if s.n != n || s.phase != ph || s.tool != "mason" {
					continue
				}
				mason = append(mason, s.seconds)
				for _, p := range peers {
					if t, ok := time(n, s.round, ph, p); ok && s.seconds > 0 {
						times[p] = append(times[p], t)
						ratios[p] = append(ratios[p], t/s.seconds)
						all[ph+" "+p] = append(all[ph+" "+p], t/s.seconds)
					}
				}
			}
			if len(mason) == 0 {
				continue
			}
			fmt.Fprintf(w, "%-5d %-10s %-26s", n, ph, spread(mason, "%.3f"))
			for _, p := range peers {
				fmt.Fprintf(w, " %-26s %-24s", spread(times[p], "%.2f"), spread(ratios[p], "%.1f"))
			}
			fmt.Fprintln(w)
		}
	}
	for _, p := range peers {
		if p == "ansible" {
			continue // its lines come last
		}
		for _, ph := range phases {
			if r := all[ph+" "+p]; len(r) > 0 {
				fmt.Fprintf(w, "%s %s/mason %.1f\n", ph, p, median(r))
			}
		}
	}
	for _, ph := range phases {
		if r := all[ph+" ansible"]; len(r) > 0 {
			fmt.Fprintf(w, "%s ansible/mason %.1f\n", ph, median(r))
		}
	}
	return nil
}

func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return "-"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return fmt.Sprintf(format+" / "+format+" / "+format, s[0], median(s), s[len(s)-1])
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
