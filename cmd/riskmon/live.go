package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/riskmon/riskmon/declaration"
)

// liveSummary is the demo's terminal view, refreshed every second.
type liveSummary struct {
	mu        sync.Mutex
	assessed  int
	sent      int // declarations produced by the feed
	channels  [3]int
	latencies []time.Duration // since the last print
	reds      []string        // latest red-channel declarations, newest last
}

func newLiveSummary() *liveSummary { return &liveSummary{} }

func (l *liveSummary) add(a *declaration.Assessment, _ *declaration.Declaration, lat time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.assessed++
	l.channels[a.Channel]++
	l.latencies = append(l.latencies, lat)
	if a.Channel == declaration.Red {
		top := "random compliance selection"
		if len(a.Findings) > 0 && a.Findings[0].Reason != "" {
			top = a.Findings[0].Detector + ": " + a.Findings[0].Reason
		}
		if len(top) > 110 {
			top = top[:110] + "..."
		}
		l.reds = append(l.reds, fmt.Sprintf("%s %s score %.0f (%s) %s", a.DeclarationID, a.ImporterID, a.Score, a.SelectedBy, top))
		if len(l.reds) > 3 {
			l.reds = l.reds[1:]
		}
	}
}

func (l *liveSummary) produced(declarations int) {
	l.mu.Lock()
	l.sent += declarations
	l.mu.Unlock()
}

func (l *liveSummary) print(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		rate := l.assessed - last
		last = l.assessed
		lat := l.latencies
		l.latencies = nil
		var b strings.Builder
		total := max(l.assessed, 1)
		fmt.Fprintf(&b, "%s  assessed %d (%d/s)  green %.1f%% yellow %.1f%% red %.1f%%  lag %d",
			time.Now().Format(time.TimeOnly), l.assessed, rate,
			100*float64(l.channels[0])/float64(total), 100*float64(l.channels[1])/float64(total), 100*float64(l.channels[2])/float64(total),
			max(l.sent-l.assessed, 0))
		if len(lat) > 0 {
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			fmt.Fprintf(&b, "  latency p50 %.1f ms p99 %.1f ms", ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]))
		}
		b.WriteString("\n")
		for _, r := range l.reds {
			b.WriteString("    red: " + r + "\n")
		}
		l.mu.Unlock()
		fmt.Print(b.String())
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
