package stream

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// value reads a gauge or a counter.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	m.Write(&d)
	return d.GetGauge().GetValue() + d.GetCounter().GetValue()
}

// waitReady polls ReadyState until it reports want, and returns the reasons
// seen on the way and the last one.
func waitReady(t *testing.T, s *Stream, want bool, within time.Duration) (seen []string, last string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, why := s.ReadyState()
		if ok == want {
			return seen, why
		}
		if len(seen) == 0 || seen[len(seen)-1] != why {
			seen = append(seen, why)
		}
		if time.Now().After(deadline) {
			t.Fatalf("ReadyState did not become %v within %v; reasons seen: %q", want, within, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Readiness on a quiet feed: a stream with nothing produced is ready once
// its consumer has joined the group, and a second instance of the group,
// left without partitions (one partition per topic, both given to one
// member), is ready too. Stopped, neither is. On the embedded broker, or on
// Apache Kafka with RISKMON_KAFKA.
func TestReadyIdle(t *testing.T) {
	brokers := embeddedOrKafka(t, 1, true)
	h := startStream(t, brokers, nil)
	notReady, why := waitReady(t, h.stream, true, 5*time.Second)
	t.Logf("idle stream ready (%q) after %q", why, notReady)
	for _, r := range notReady {
		if !strings.HasPrefix(r, "not ready: ") {
			t.Errorf("not-ready reason %q does not start with \"not ready: \"", r)
		}
	}
	if !strings.Contains(why, "consumer in group "+h.cfg.Stream.Group+" with 2 partitions") {
		t.Errorf("ready reason %q does not name the group and its 2 partitions", why)
	}
	if v := value(h.stream.Metrics.Ready); v != 1 {
		t.Errorf("riskmon_ready = %v while ready", v)
	}
	if n := value(h.stream.Metrics.Declarations) + value(h.stream.Metrics.Outcomes); n != 0 {
		t.Fatalf("%v messages consumed: the feed was not quiet", n)
	}

	e, _ := engine.New(h.cfg)
	ctx, cancel := context.WithCancel(context.Background())
	second := &streamHarness{t: t, cfg: h.cfg, cancel: cancel, done: make(chan error, 1),
		stream: &Stream{Engine: e, Config: h.cfg.Stream, Metrics: NewMetrics(e), Log: zerolog.New(io.Discard)}, brokers: brokers, ctx: ctx}
	second.start()
	// The range balancer gives each topic's one partition to the same
	// member; which one depends on the member ids.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ok1, why1 := h.stream.ReadyState()
		ok2, why2 := second.stream.ReadyState()
		if ok1 && ok2 && (strings.Contains(why1, "with 0 partitions") || strings.Contains(why2, "with 0 partitions")) {
			t.Logf("both instances ready: %q, %q", why1, why2)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after the second instance started: %v %q, %v %q", ok1, why1, ok2, why2)
		}
	}
	second.stop()
	h.stop()
	for _, s := range []*Stream{h.stream, second.stream} {
		if ok, why := s.ReadyState(); ok || why != "not ready: stream is not running" {
			t.Errorf("after Run returned: %v %q", ok, why)
		}
	}
}

// Not ready while the brokers cannot be reached, and the reason says so: the
// consumer has not joined, and the probe fails.
func TestReadyUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	cfg := config.Default()
	cfg.Stream.ShutdownSeconds = 2
	e, _ := engine.New(cfg)
	s := &Stream{Engine: e, Config: cfg.Stream, Metrics: NewMetrics(e), Log: zerolog.New(io.Discard)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, []string{dead}) }()
	deadline := time.Now().Add(10 * time.Second)
	var why string
	for {
		var ok bool
		ok, why = s.ReadyState()
		if ok {
			t.Fatalf("ready with no broker: %q", why)
		}
		if strings.Contains(why, "consumer has not joined group riskmon") && strings.Contains(why, "broker probe failing") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reason after 10 s: %q", why)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s", why)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its cancellation with no broker")
	}
}
