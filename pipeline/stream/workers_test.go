package stream

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// orderProbe is a detector that checks what the engine promises detectors:
// one importer's declarations come one at a time, in lodgement order. Every
// other declaration takes 3 ms to score, so that a router that spread one
// importer's declarations over several workers would be caught overtaking.
type orderProbe struct {
	mu         sync.Mutex
	last       map[string]int // importer -> sequence number scored last
	busy       map[string]bool
	violations []string
}

func (p *orderProbe) Name() string { return "order_probe" }

func (p *orderProbe) Score(d *declaration.Declaration, out []detectors.Finding) []detectors.Finding {
	seq, _ := strconv.Atoi(strings.TrimPrefix(d.ID, "W"))
	imp := d.Importer.ID
	p.mu.Lock()
	if p.busy[imp] {
		p.violations = append(p.violations, fmt.Sprintf("%s scored while another declaration of %s was", d.ID, imp))
	}
	if last, ok := p.last[imp]; ok && seq < last {
		p.violations = append(p.violations, fmt.Sprintf("%s scored after W%04d of the same importer", d.ID, last))
	}
	p.last[imp], p.busy[imp] = seq, true
	p.mu.Unlock()
	if seq%2 == 0 {
		time.Sleep(3 * time.Millisecond)
	}
	p.mu.Lock()
	p.busy[imp] = false
	p.mu.Unlock()
	return out
}

func (p *orderProbe) Learn(*declaration.Declaration, *declaration.Assessment) {}

// With several workers, each importer's declarations still reach the engine
// one at a time and in partition order: workers are chosen by importer.
func TestStreamWorkersKeepImporterOrder(t *testing.T) {
	brokers := embedded(t, 1)
	base, _ := testkit.GenDecls(t, 400, 13)
	// Ten importers, each with runs of two consecutive declarations.
	decls := make([]*declaration.Declaration, len(base))
	for i, d := range base {
		c := *d
		c.ID = fmt.Sprintf("W%04d", i)
		c.Importer.ID = fmt.Sprintf("IMP-%d", (i/2)%10)
		c.LodgedAt = base[0].LodgedAt.Add(time.Duration(i) * time.Second)
		decls[i] = &c
	}
	h := newStream(t, brokers, func(c *config.Config) { c.Stream.Workers = 4 })
	probe := &orderProbe{last: map[string]int{}, busy: map[string]bool{}}
	cfg := h.cfg
	cfg.Model.Enabled = false
	e, err := engine.NewWithDetectors(cfg, probe)
	if err != nil {
		t.Fatal(err)
	}
	h.stream = &Stream{Engine: e, Config: cfg.Stream, Metrics: NewMetrics(e), Log: zerolog.New(io.Discard), Security: h.stream.Security}
	h.start()
	defer h.stop()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: cfg.Stream.DeclarationsTopic, BatchTimeout: 2 * time.Millisecond,
		RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
	// Keyed by importer: one partition, in order.
	if err := WriteMessages(w, keyedMessages(decls)...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	consume(t, brokers, cfg.Stream.AssessmentsTopic, len(decls), time.Minute)
	probe.mu.Lock()
	defer probe.mu.Unlock()
	t.Logf("%d declarations of 10 importers through 4 workers: %d order violations", len(decls), len(probe.violations))
	if len(probe.violations) > 0 {
		t.Errorf("%d violations, the first: %v", len(probe.violations), probe.violations[:min(5, len(probe.violations))])
	}
}
