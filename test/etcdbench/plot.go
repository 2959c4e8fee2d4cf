package main

import (
	"fmt"
	"math"
	"strings"
)

// plot draws two panels, throughput and p99 latency against concurrency (log scale), one
// line per system, as a self-contained SVG.
func plot(rs []Result) string {
	var b strings.Builder
	const w, h, pw, ph, left, top = 900, 380, 360, 260, 70, 50
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	panel(&b, rs, left, top, pw, ph, "throughput (ops/s)", func(r Result) float64 { return r.PerSecond })
	panel(&b, rs, left+pw+110, top, pw, ph, "p99 latency (ms)", func(r Result) float64 { return r.P99Millis })
	b.WriteString("</svg>\n")
	return b.String()
}

var colors = map[string]string{"etcd": "#d62728", "urne": "#1f77b4"}

func panel(b *strings.Builder, rs []Result, x0, y0, pw, ph int, title string, val func(Result) float64) {
	minN, maxN, maxV := math.Inf(1), 0.0, 0.0
	for _, r := range rs {
		minN, maxN, maxV = math.Min(minN, float64(r.Clients)), math.Max(maxN, float64(r.Clients)), math.Max(maxV, val(r))
	}
	if maxV == 0 || minN == maxN {
		return
	}
	maxV *= 1.1
	px := func(n int) float64 {
		return float64(x0) + (math.Log(float64(n))-math.Log(minN))/(math.Log(maxN)-math.Log(minN))*float64(pw)
	}
	py := func(v float64) float64 { return float64(y0+ph) - v/maxV*float64(ph) }
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, y0-15, title)
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", x0, y0, pw, ph)
	for i := 0; i <= 4; i++ {
		v := maxV * float64(i) / 4
		fmt.Fprintf(b, `<text x="%d" y="%.0f" text-anchor="end">%.0f</text>`+"\n", x0-5, py(v)+4, v)
	}
	seen := map[int]bool{}
	for _, r := range rs {
		if !seen[r.Clients] {
			seen[r.Clients] = true
			fmt.Fprintf(b, `<text x="%.0f" y="%d" text-anchor="middle">%d</text>`+"\n", px(r.Clients), y0+ph+16, r.Clients)
		}
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">concurrent clients</text>`+"\n", x0+pw/2, y0+ph+34)
	for i, sys := range []string{"etcd", "urne"} {
		var pts []string
		for _, r := range rs {
			if r.System == sys {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(r.Clients), py(val(r))))
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(r.Clients), py(val(r)), colors[sys])
			}
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), colors[sys])
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", x0+10, y0+16+16*i, colors[sys], sys)
	}
}
