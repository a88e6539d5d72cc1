package stream

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
)

// TestNetworkFaults runs the stream with a fault-injecting proxy between it
// and the broker (the broker advertises the proxy, so every connection of
// the stream crosses it; the test's own clients go around it) and injects,
// one after the other: latency, slow produce acknowledgements, a bandwidth
// limit, connection resets and a blackhole longer than the session timeout.
// Nothing may be lost; the blackhole must make the stream not ready, and the
// stream must become ready again and catch up once it ends, without a
// restart. The figures (throughput under each fault, time to not ready, time
// to ready and to catch up, duplicates) are logged, not asserted: the
// machine may be busy.
//
// It takes about a minute per broker, so it runs when RISKMON_FAULTS=1: on
// the embedded broker's engine in the test process, and with RISKMON_KAFKA
// set also on a dedicated Apache Kafka broker (deploy/local-kafka/start on
// port 19392, with a second listener that advertises the proxy).
func TestNetworkFaults(t *testing.T) {
	if os.Getenv("RISKMON_FAULTS") == "" {
		t.Skip("set RISKMON_FAULTS=1 to run (about a minute per broker)")
	}
	t.Run("embedded", func(t *testing.T) {
		testNetworkFaults(t, testkit.KfakeBehindProxy(t, 2))
	})
	t.Run("kafka", func(t *testing.T) {
		if os.Getenv("RISKMON_KAFKA") == "" {
			t.Skip("set RISKMON_KAFKA to run on Apache Kafka (a dedicated broker is started on port 19392)")
		}
		testNetworkFaults(t, testkit.KafkaBehindProxy(t, 19392))
	})
}

// faultFeed writes declarations around the proxy and reads the
// assessments topic, around the proxy too, as they come.
// startFaultFeed starts a stream on the proxied broker and a feed of decls
// to it, waits until the stream is ready and starts reading its
// assessments; all of it stops when the test ends.
func startFaultFeed(t *testing.T, b *testkit.ProxiedBroker, decls []*declaration.Declaration, mutate func(*config.Config)) *faultFeed {
	t.Helper()
	h := startStream(t, []string{b.Addr}, mutate)
	t.Cleanup(h.stop)
	w := &kafka.Writer{Addr: kafka.TCP(b.Direct), Topic: h.cfg.Stream.DeclarationsTopic, Balancer: &kafka.Hash{},
		BatchTimeout: 2 * time.Millisecond, RequiredAcks: kafka.RequireAll, Transport: b.Transport(), MaxAttempts: 10}
	t.Cleanup(func() { w.Close() })
	f := &faultFeed{t: t, b: b, h: h, w: w, decls: decls, assessed: map[string]int{}}
	if took, why, ok := f.waitReady(true, 60*time.Second); !ok {
		t.Fatalf("not ready after %v: %s", took, why)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.read(ctx)
	return f
}

type faultFeed struct {
	t     *testing.T
	b     *testkit.ProxiedBroker
	h     *streamHarness
	w     *kafka.Writer
	decls []*declaration.Declaration
	next  int

	mu       sync.Mutex
	assessed map[string]int // declaration id → assessments read
	messages int
}

// send produces the next n declarations.
func (f *faultFeed) send(n int) {
	f.t.Helper()
	msgs := keyedMessages(f.decls[f.next : f.next+n])
	f.next += n
	for len(msgs) > 0 {
		k := min(len(msgs), 200)
		if err := WriteMessages(f.w, msgs[:k]...); err != nil {
			f.t.Fatalf("feed: %v", err)
		}
		msgs = msgs[k:]
	}
}

// read follows every partition of the assessments topic until ctx ends.
func (f *faultFeed) read(ctx context.Context) {
	topic := f.h.cfg.Stream.AssessmentsTopic
	for _, p := range partitionsOf(f.t, []string{f.b.Direct}, topic) {
		go func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{f.b.Direct}, Dialer: f.b.Dialer(), Topic: topic, Partition: p.ID,
				MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				f.mu.Lock()
				f.assessed[string(m.Key)]++
				f.messages++
				f.mu.Unlock()
			}
		}()
	}
}

// acked is the number of distinct declarations assessed so far.
func (f *faultFeed) acked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.assessed)
}

// waitAcked waits until at least n declarations are assessed, and
// reports how long it took and how much of that time the stream was ready.
func (f *faultFeed) waitAcked(n int, within time.Duration) (took time.Duration, readyShare float64, ok bool) {
	start := time.Now()
	samples, ready := 0, 0
	for time.Since(start) < within {
		if r, _ := f.h.stream.ReadyState(); r {
			ready++
		}
		samples++
		if f.acked() >= n {
			return time.Since(start), float64(ready) / float64(samples), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start), float64(ready) / float64(max(samples, 1)), false
}

// waitReady waits until the stream's readiness is want, and returns how long
// it took and the last reason.
func (f *faultFeed) waitReady(want bool, within time.Duration) (time.Duration, string, bool) {
	start := time.Now()
	for {
		r, why := f.h.stream.ReadyState()
		if r == want {
			return time.Since(start), why, true
		}
		if time.Since(start) > within {
			return time.Since(start), why, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testNetworkFaults(t *testing.T, b *testkit.ProxiedBroker) {
	p := b.Proxy
	decls, _ := testkit.GenDecls(t, 14_000, 43)
	f := startFaultFeed(t, b, decls, func(c *config.Config) { c.Stream.Partitions = 2 })
	h := f.h
	var report []string
	logf := func(format string, a ...any) {
		s := fmt.Sprintf(format, a...)
		report = append(report, s)
		t.Log(s)
	}

	// Throughput: 2,000 declarations at once (500 with slow acknowledgements,
	// which cap it near 100 a second), under each fault in turn.
	// (TestNetworkSlowLink covers round trips of 60 to 240 ms.)
	phase := func(name string, n int, set func()) {
		t.Helper()
		set()
		defer p.Clear()
		want := f.next + n
		start := time.Now()
		f.send(n)
		_, ready, ok := f.waitAcked(want, 2*time.Minute)
		took := time.Since(start)
		if !ok {
			t.Fatalf("%s: %d of %d assessed after %v", name, f.acked(), want, took)
		}
		logf("%-40s %5d declarations in %6.2fs: %6.0f/s, ready %3.0f%% of the time", name, n, took.Seconds(), float64(n)/took.Seconds(), 100*ready)
	}
	phase("warm-up, no fault", 500, func() {})
	phase("no fault", 2000, func() {})
	phase("latency 10 ms each way", 2000, func() { p.SetLatency(10 * time.Millisecond) })
	phase("produce acknowledgements 500 ms late", 500, func() { p.SetProduceLatency(500 * time.Millisecond) })
	phase("bandwidth 1 MB/s each way", 2000, func() { p.SetBandwidth(1 << 20) })

	// Resets: every connection, every 0.3–1 s for 5 s, while 2,000
	// declarations arrive.
	{
		want := f.next + 2000
		start := time.Now()
		done := make(chan int)
		go func() {
			resets := 0
			for i := 0; time.Since(start) < 5*time.Second; i++ {
				time.Sleep(time.Duration(300+(i*137)%700) * time.Millisecond)
				resets += p.ResetAll()
			}
			done <- resets
		}()
		for range 10 {
			f.send(200)
			time.Sleep(400 * time.Millisecond)
		}
		resets := <-done
		took, ready, ok := f.waitAcked(want, 2*time.Minute)
		if !ok {
			t.Fatalf("after resets: %d of %d assessed after %v", f.acked(), want, took)
		}
		logf("%-40s %5d declarations, %d connections reset: all assessed %.1fs after the first reset, ready %.0f%% of the time",
			"resets every 0.3-1 s for 5 s", 2000, resets, time.Since(start).Seconds(), 100*ready)
	}

	// A blackhole of 15 s, longer than the session timeout: the stream
	// must go not ready, then come back by itself and catch up.
	{
		if _, why, ok := f.waitReady(true, time.Minute); !ok {
			t.Fatalf("not ready before the blackhole: %s", why)
		}
		want := f.next + 2000
		f.send(1000)
		p.SetBlackhole(true)
		start := time.Now()
		f.send(1000) // around the proxy: the broker has them
		toNotReady, why, ok := f.waitReady(false, time.Minute)
		if !ok {
			p.SetBlackhole(false)
			t.Fatalf("still ready %v into a blackhole: %s", toNotReady, why)
		}
		logf("blackhole: not ready after %.1fs (%s)", toNotReady.Seconds(), why)
		time.Sleep(15*time.Second - time.Since(start))
		inBlackhole := want - f.acked()
		p.SetBlackhole(false)
		healed := time.Now()
		toReady, why, ok := f.waitReady(true, 2*time.Minute)
		if !ok {
			t.Fatalf("not ready %v after the blackhole ended: %s", toReady, why)
		}
		if _, _, ok := f.waitAcked(want, 2*time.Minute); !ok {
			t.Fatalf("after the blackhole: %d of %d assessed %v after it ended", f.acked(), want, time.Since(healed))
		}
		logf("blackhole of 15 s: %d of the %d declarations sent around it were waiting at its end; ready again %.1fs after it ended (%s); all assessed %.1fs after it ended",
			inBlackhole, 2000, toReady.Seconds(), why, time.Since(healed).Seconds())
	}

	// Nothing lost: every declaration fed has an assessment in the topic,
	// read again from the start with an independent reader.
	seen := map[string]bool{}
	consumeEach(t, []string{b.Direct}, h.cfg.Stream.AssessmentsTopic, time.Minute, func(m kafka.Message) bool {
		seen[string(m.Key)] = true
		return len(seen) < f.next
	})
	time.Sleep(time.Second) // duplicates still on their way
	f.mu.Lock()
	ids, messages := len(f.assessed), f.messages
	f.mu.Unlock()
	st := p.Stats()
	logf("%d declarations fed, %d assessed (%d lost), %d assessment messages (%d duplicates); proxy: %d connections, %d reset",
		f.next, len(seen), f.next-len(seen), messages, messages-ids, st.Accepted, st.Resets)
	t.Logf("on %s:\n%s", b.Kind, strings.Join(report, "\n"))
	if len(seen) != f.next {
		t.Fatalf("lost: %d of %d declarations assessed", len(seen), f.next)
	}
}

// TestNetworkSlowLink streams through a link with a round trip of 60 to
// 240 ms. kafka-go's partition reader takes ReaderConfig.MaxWait as the
// deadline of a whole fetch, round trip included: at 100 ms (before
// PartitionReaderConfig raised it to 2 s) every fetch beyond a 100 ms round
// trip timed out, the reader reconnected and tried again, and the stream
// consumed nothing while it stayed ready.
func TestNetworkSlowLink(t *testing.T) {
	b := testkit.KfakeBehindProxy(t, 1)
	decls, _ := testkit.GenDecls(t, 1200, 47)
	f := startFaultFeed(t, b, decls, nil)
	h := f.h
	stalled := 0
	for _, each := range []time.Duration{30 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond} {
		b.Proxy.SetLatency(each)
		want := f.next + 300
		f.send(300)
		took, ready, ok := f.waitAcked(want, 20*time.Second)
		_, why := h.stream.ReadyState()
		if ok {
			t.Logf("round trip %v: 300 declarations in %.1fs, ready %.0f%% of the time", 2*each, took.Seconds(), 100*ready)
			continue
		}
		stalled++
		t.Logf("round trip %v: %d of 300 declarations assessed in %v, ready %.0f%% of the time (%s)", 2*each, 300-(want-f.acked()), took, 100*ready, why)
		b.Proxy.SetLatency(0)
		if _, _, ok := f.waitAcked(want, time.Minute); !ok {
			t.Fatalf("still stalled with the latency lifted")
		}
	}
	if stalled > 0 {
		t.Errorf("the stream stalled on %d of 3 round trips", stalled)
	}
}

// A consumer whose fetches get no answer while everything else works (its
// group membership, the broker probe, produces) is a stall that only the
// lag shows: readiness falls after stream.stall_seconds naming the
// partition, the instance's lag and the group's lag grow with what arrives
// meanwhile, and when the answers come back it reads again, becomes ready,
// and the lags return to 0. A quiet spell longer than stall_seconds
// followed by a message is not a stall.
func TestConsumerStall(t *testing.T) {
	b := testkit.KfakeBehindProxy(t, 1)
	decls, _ := testkit.GenDecls(t, 400, 53)
	f := startFaultFeed(t, b, decls, func(c *config.Config) { c.Stream.StallSeconds = 3 })
	h := f.h
	topic := h.cfg.Stream.DeclarationsTopic
	gauge := func(name string) (float64, bool) {
		families, _ := h.stream.Metrics.Registry.Gather()
		for _, fam := range families {
			if fam.GetName() != name {
				continue
			}
			for _, m := range fam.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["topic"] == topic && labels["partition"] == "0" {
					return m.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	waitGauges := func(want float64, within time.Duration) {
		t.Helper()
		var c, g float64
		var cok, gok bool
		for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			c, cok = gauge("riskmon_consumer_lag_messages")
			g, gok = gauge("riskmon_group_lag_messages")
			if cok && gok && c == want && g == want {
				return
			}
		}
		t.Fatalf("lag: instance %v (exported %v), group %v (exported %v); want both %v", c, cok, g, gok, want)
	}

	f.send(100)
	if _, ready, ok := f.waitAcked(100, 30*time.Second); !ok || ready < 1 {
		t.Fatalf("%d of 100 assessed, ready %.0f%% of the time", f.acked(), 100*ready)
	}
	waitGauges(0, 20*time.Second)
	// Quiet for longer than stall_seconds and a lag measurement, then one
	// declaration: read at once, so still ready.
	time.Sleep(6 * time.Second)
	f.send(1)
	if _, ready, ok := f.waitAcked(101, 30*time.Second); !ok || ready < 1 {
		t.Fatalf("%d of 101 assessed, ready %.0f%% of the time", f.acked(), 100*ready)
	}
	if _, why, unready := f.waitReady(false, 6*time.Second); unready {
		t.Fatalf("unready after a quiet spell and one declaration: %s", why)
	}

	b.Proxy.SetFetchBlackhole(true)
	f.send(200)
	want := fmt.Sprintf("consumer stalled on %s/0 (200 messages to read, none read for ", topic)
	start := time.Now()
	var why string
	for time.Since(start) < 40*time.Second && !strings.Contains(why, want) {
		time.Sleep(100 * time.Millisecond)
		_, why = h.stream.ReadyState()
	}
	if !strings.Contains(why, want) {
		t.Fatalf("after %v with fetches unanswered: %q, want %q", time.Since(start).Round(time.Second), why, want)
	}
	if !strings.HasPrefix(why, "not ready: consumer stalled") || strings.Contains(why, "probe") || strings.Contains(why, "producer") {
		t.Errorf("the stall should be the only reason: %q", why)
	}
	t.Logf("unready %v after the fetches stopped being answered: %s", time.Since(start).Round(100*time.Millisecond), why)
	waitGauges(200, 20*time.Second)
	if c, ok := gauge("riskmon_group_committed_offset"); !ok || c != 101 {
		t.Errorf("committed offset %v (exported %v), want 101", c, ok)
	}

	b.Proxy.SetFetchBlackhole(false)
	if _, _, ok := f.waitAcked(301, 60*time.Second); !ok {
		t.Fatalf("%d of 301 assessed once fetches are answered again", f.acked())
	}
	if _, why, ok := f.waitReady(true, 30*time.Second); !ok {
		t.Fatalf("still not ready: %s", why)
	}
	waitGauges(0, 20*time.Second)
}
