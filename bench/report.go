package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// results holds every figure: results[workload][system].
type results map[string]map[string]figure

func (r results) get(w, sys string) (figure, bool) {
	f, ok := r[w][sys]
	return f, ok
}

// ratio returns coordkit's figure over other's for m.
func (r results) ratio(w, other string, m metric) (float64, bool) {
	return r.ratioOf(w, sysCoordkit, other, m)
}

// ratioOf returns num's figure over den's for m.
func (r results) ratioOf(w, num, other string, m metric) (float64, bool) {
	ck, ok1 := r.get(w, num)
	o, ok2 := r.get(w, other)
	if !ok1 || !ok2 {
		return 0, false
	}
	a, okA := ck.value(m)
	b, okB := o.value(m)
	if !okA || !okB || b == 0 {
		return 0, false
	}
	return a / b, true
}

// writeTable prints the results as a Markdown table, readable as plain
// text too, followed by the workloads' descriptions and cell notes.
func writeTable(out io.Writer, ws []workload, systems []string, res results) {
	header := []string{"workload", "voters"}
	for _, s := range systems {
		header = append(header, systemTitle(s))
	}
	type pair struct{ num, den string }
	var pairs []pair
	for _, s := range systems {
		if s != sysCoordkit && s != sysV3 && contains(systems, sysCoordkit) {
			pairs = append(pairs, pair{sysCoordkit, s})
		}
	}
	if contains(systems, sysV3) && contains(systems, sysEtcd) {
		pairs = append(pairs, pair{sysV3, sysEtcd})
	}
	for _, p := range pairs {
		header = append(header, p.num+"/"+p.den)
	}
	rows := [][]string{header}
	var notes []string
	for _, w := range ws {
		if _, ran := res[w.name]; !ran {
			continue
		}
		row := []string{w.name, fmt.Sprint(w.voters)}
		for _, s := range systems {
			f, _ := res.get(w.name, s)
			row = append(row, cell(f, w.metric))
			if f.note != "" {
				notes = append(notes, fmt.Sprintf("%s, %s: %s", w.name, systemTitle(s), f.note))
			}
			if f.firstErr != nil {
				notes = append(notes, fmt.Sprintf("%s, %s: %d errors, the first: %v", w.name, systemTitle(s), f.errs, f.firstErr))
			}
		}
		for _, p := range pairs {
			if x, ok := res.ratioOf(w.name, p.num, p.den, w.metric); ok {
				row = append(row, fmt.Sprintf("%s %s", fmtRatio(x), w.metric))
			} else {
				row = append(row, "–")
			}
		}
		rows = append(rows, row)
	}
	writeMarkdown(out, rows)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Workloads (ratios compare the metric named; for p50, p99 and RSS lower is better):")
	fmt.Fprintln(out)
	for _, w := range ws {
		if _, ran := res[w.name]; ran {
			fmt.Fprintf(out, "- %s: %s\n", w.name, w.desc)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "Notes:")
		fmt.Fprintln(out)
		for _, n := range notes {
			fmt.Fprintf(out, "- %s\n", n)
		}
	}
}

func systemTitle(s string) string {
	if s == sysRaw {
		return "raw dragonboat"
	}
	return s
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// cell formats one figure.
func cell(f figure, m metric) string {
	switch {
	case f.na != "":
		return f.na
	case f.err != nil:
		msg := f.err.Error()
		if len(msg) > 80 {
			msg = msg[:80] + "…"
		}
		return "error: " + strings.ReplaceAll(msg, "|", "/")
	case m == metricRSS:
		return fmt.Sprintf("%s/member (process %s %s, base %s)", mib(f.mem.perMember), f.mem.what, mib(f.mem.process), mib(f.mem.base))
	case f.ops == 0 && f.errs == 0:
		return "–"
	}
	s := fmt.Sprintf("%s/s · p50 %s · p99 %s", fmtCount(f.opsPerSec()), fmtDur(f.p50), fmtDur(f.p99))
	if f.errs > 0 {
		s += fmt.Sprintf(" · %d err", f.errs)
	}
	if f.lost > 0 {
		s += fmt.Sprintf(" · %d LOST", f.lost)
	}
	return s
}

// fmtCount formats a rate with thousands separators, no decimals.
func fmtCount(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtDur formats a latency in ms with 2 or 3 significant digits.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	case ms >= 0.1:
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.1fµs", ms*1000)
}

func fmtRatio(x float64) string {
	if x >= 10 {
		return fmt.Sprintf("%.0fx", x)
	}
	return fmt.Sprintf("%.2fx", x)
}

// writeMarkdown prints rows as a Markdown table with padded columns; the
// first row is the header.
func writeMarkdown(out io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range r {
			b.WriteString(" " + c + strings.Repeat(" ", widths[i]-len([]rune(c))) + " |")
		}
		fmt.Fprintln(out, b.String())
	}
	line(rows[0])
	sep := make([]string, len(widths))
	for i, w := range widths {
		sep[i] = strings.Repeat("-", w)
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
}

// target is one of the goals for coordkit at 3 voters.
type target struct {
	desc  string
	check func(res results) (measured string, met, ok bool)
	// For a ratio target: the workload, the system compared with, and the
	// bound (drawn in the SVG).
	workload, vs string
	bound        float64
}

// ratioTarget: coordkit/vs on workload w's metric m is at least (or at
// most) bound.
func ratioTarget(desc, w, vs string, m metric, atLeast bool, bound float64) target {
	return target{desc: desc, workload: w, vs: vs, bound: bound, check: func(res results) (string, bool, bool) {
		x, ok := res.ratio(w, vs, m)
		if !ok {
			return "", false, false
		}
		met := x <= bound
		if atLeast {
			met = x >= bound
		}
		return fmt.Sprintf("%s: coordkit/%s %s = %s", w, systemTitle(vs), m, fmtRatio(x)), met, true
	}}
}

// targets are issue #4's goals.
func targets() []target {
	return []target{
		ratioTarget("put throughput at 256 clients >= 4x etcd", "put-256", sysEtcd, metricOps, true, 4),
		ratioTarget("put throughput at 256 clients >= 0.8x raw dragonboat", "put-256", sysRaw, metricOps, true, 0.8),
		ratioTarget("sequential put p50 <= 0.8x etcd", "put-seq", sysEtcd, metricP50, false, 0.8),
		ratioTarget("linearizable get >= 2x etcd", "get-lin", sysEtcd, metricOps, true, 2),
		ratioTarget("serializable get >= 50x etcd", "get-ser", sysEtcd, metricOps, true, 50),
		ratioTarget("watch delivery p99 <= 0.5x etcd", "watch-1", sysEtcd, metricP99, false, 0.5),
		{desc: "10,000 watchers with no event lost", check: func(res results) (string, bool, bool) {
			f, ok := res.get("watch-10k", sysCoordkit)
			if !ok || f.na != "" || f.err != nil {
				return "", false, false
			}
			return fmt.Sprintf("watch-10k: %d events delivered, %d lost, %d errors", f.ops, f.lost, f.errs),
				f.ops > 0 && f.lost == 0 && f.errs == 0, true
		}},
		ratioTarget("idle RSS per member <= etcd's", "idle-rss", sysEtcd, metricRSS, false, 1),
		// The workload times a whole lock+unlock cycle, not the acquire
		// alone: two writes in both systems.
		ratioTarget("lock: uncontended acquire p50 <= etcd's (cycle p50)", "lock-uncontended", sysEtcd, metricP50, false, 1),
		ratioTarget("lock cycles/s over 64 independent locks >= 3x etcd", "lock-64", sysEtcd, metricOps, true, 3),
		ratioTarget("lock cycles/s, 16 contenders on one lock >= 2x etcd", "lock-contended-16", sysEtcd, metricOps, true, 2),
	}
}

// writeTargets prints each target as met, missed, or not measured.
func writeTargets(out io.Writer, res results) {
	rows := [][]string{{"target (3 voters)", "measured", "status"}}
	for _, t := range targets() {
		m, met, ok := t.check(res)
		status := "not measured"
		switch {
		case ok && met:
			status = "met"
		case ok:
			status = "MISSED"
		}
		rows = append(rows, []string{t.desc, m, status})
	}
	writeMarkdown(out, rows)
}

// writeSVG draws coordkit/etcd per workload as horizontal bars on a log
// scale around 1x: green where coordkit is better, red where it is worse,
// grey text where there is no ratio.
func writeSVG(out io.Writer, ws []workload, res results) {
	type bar struct {
		name, label string
		x           float64
		ok, better  bool
	}
	var bars []bar
	lo, hi := -1.0, 2.0 // log10 range shown: at least 0.1x..100x (the 50x target)
	for _, w := range ws {
		if _, ran := res[w.name]; !ran {
			continue
		}
		b := bar{name: w.name}
		if x, ok := res.ratio(w.name, sysEtcd, w.metric); ok {
			b.x, b.ok = x, true
			b.better = x > 1 == (w.metric == metricOps)
			b.label = fmt.Sprintf("%s %s", fmtRatio(x), w.metric)
			lo, hi = math.Min(lo, math.Floor(math.Log10(x))), math.Max(hi, math.Ceil(math.Log10(x)))
		} else if f, _ := res.get(w.name, sysCoordkit); f.na != "" {
			b.label = f.na
		} else {
			b.label = "no ratio"
		}
		bars = append(bars, b)
	}
	const left, plotW, rowH, top = 150.0, 520.0, 24.0, 50.0
	width, height := left+plotW+190, top+rowH*float64(len(bars))+40
	xpos := func(v float64) float64 { return left + (math.Log10(v)-lo)/(hi-lo)*plotW }
	fmt.Fprintf(out, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(out, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(out, `<text x="10" y="20" font-size="14" font-weight="bold">coordkit / etcd v3.7.3, 3 voters unless named -1v (log scale)</text>`+"\n")
	fmt.Fprintf(out, `<text x="10" y="38" fill="#555">green: coordkit better (more ops/s, or less latency or memory); red: worse; dashed mark: issue #4's target</text>`+"\n")
	for e := lo; e <= hi; e++ {
		x := xpos(math.Pow(10, e))
		fmt.Fprintf(out, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s"/>`+"\n", x, top-4, x, height-30, map[bool]string{true: "#000", false: "#ddd"}[e == 0])
		fmt.Fprintf(out, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%gx</text>`+"\n", x, height-14, math.Pow(10, e))
	}
	bounds := map[string]float64{}
	for _, t := range targets() {
		if t.vs == sysEtcd {
			bounds[t.workload] = t.bound
		}
	}
	for i, b := range bars {
		y := top + rowH*float64(i)
		labelX := xpos(1) + 6
		if t, ok := bounds[b.name]; ok && b.ok {
			x := xpos(t)
			fmt.Fprintf(out, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#000" stroke-width="2" stroke-dasharray="3,2"/>`+"\n", x, y+1, x, y+rowH-1)
			labelX = math.Max(labelX, x+6)
		}
		fmt.Fprintf(out, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text>`+"\n", left-8, y+15, b.name)
		if !b.ok {
			fmt.Fprintf(out, `<text x="%.1f" y="%.0f" fill="#999">%s</text>`+"\n", xpos(1)+6, y+15, b.label)
			continue
		}
		x0, x1 := xpos(1), xpos(b.x)
		color := "#c0392b"
		if b.better {
			color = "#27ae60"
		}
		fmt.Fprintf(out, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s"/>`+"\n", math.Min(x0, x1), y+4, math.Max(math.Abs(x1-x0), 1), rowH-8, color)
		fmt.Fprintf(out, `<text x="%.1f" y="%.0f">%s</text>`+"\n", math.Max(labelX, math.Max(x0, x1)+6), y+15, b.label)
	}
	fmt.Fprintln(out, `</svg>`)
}
