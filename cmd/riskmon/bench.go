package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/stream"
	"github.com/riskmon/riskmon/synth"
)

// cmdBench measures the stream mode against a broker: end-to-end throughput
// against the broker's bare kafka-go consume rate on the same data (the
// pipeline's ceiling), and lodged-to-assessed latency at a fixed rate.
func cmdBench(args []string) error {
	fs := newFlags("bench", "[--brokers LIST] [--count N] [--rate R] [--seconds S] [--config FILE]")
	brokersFlag := fs.String("brokers", "", "Kafka bootstrap brokers, comma-separated (default: the embedded broker on a free port)")
	count := fs.Int("count", 50000, "declarations for the throughput runs")
	rate := fs.Int("rate", 2000, "declarations per second for the latency run")
	seconds := fs.Int("seconds", 10, "length of the latency run")
	cfgPath := fs.String("config", "", "configuration file (default: the built-in configuration)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole bench to this file (for go tool pprof)")
	if err := parse(fs, args); err != nil {
		return err
	}
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	brokers := splitList(*brokersFlag)
	label := "Apache Kafka at " + *brokersFlag
	if len(brokers) == 0 {
		emb, err := stream.StartEmbedded("127.0.0.1:0", 1)
		if err != nil {
			return err
		}
		defer emb.Close()
		brokers = []string{emb.Addr}
		label = "embedded broker (kfake)"
	}
	fmt.Printf("riskmon bench on %s, ruleset %s\n", label, cfg.Ruleset)

	// Throughput: the same declarations, read bare and through the stream.
	var buf []byte
	var values [][]byte
	err = synth.Generate(synth.Options{Count: *count, Seed: 42}, func(r synth.Record) error {
		buf = r.Decl.AppendJSON(buf[:0])
		values = append(values, append([]byte(nil), buf...))
		return nil
	})
	if err != nil {
		return err
	}
	st := benchTopics(cfg.Stream, "tp")
	if err := stream.EnsureTopics(context.Background(), brokers, st, nil); err != nil {
		return err
	}
	if err := benchProduce(brokers, st.DeclarationsTopic, values); err != nil {
		return err
	}
	bare, bareCPU, err := bareConsume(brokers, st.DeclarationsTopic, len(values))
	if err != nil {
		return err
	}
	perDecl := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(len(values)) }
	cpuNote := "process CPU"
	if *brokersFlag == "" {
		cpuNote = "process CPU, the embedded broker's included"
	}
	fmt.Printf("bare kafka-go consume (partition reader, riskmon's reader settings): %d messages in %.2fs = %.0f/s, %.1f µs %s per message\n",
		len(values), bare.Seconds(), float64(len(values))/bare.Seconds(), perDecl(bareCPU), cpuNote)
	cpu0 := cpuTime()
	e2e, _, err := benchPipeline(cfg, st, brokers, len(values), nil)
	if err != nil {
		return err
	}
	pipeCPU := cpuTime() - cpu0
	fmt.Printf("pipeline end to end (consume, decode, assess, produce, acknowledge): %d declarations in %.2fs = %.0f/s, %.1f µs %s per declaration (group join included)\n",
		len(values), e2e.Seconds(), float64(len(values))/e2e.Seconds(), perDecl(pipeCPU), cpuNote)
	fmt.Printf("ratio pipeline / bare consume: %.2f\n", bare.Seconds()/e2e.Seconds())

	// Latency at a fixed rate: lodged_at is set when the declaration is
	// produced, so lodged-to-assessed is the whole trip through the broker and
	// riskmon.
	n := *rate * *seconds
	st = benchTopics(cfg.Stream, "lat")
	if err := stream.EnsureTopics(context.Background(), brokers, st, nil); err != nil {
		return err
	}
	var lats []time.Duration
	var mu sync.Mutex
	produced := make(chan struct{})
	_, _, err = benchPipeline(cfg, st, brokers, n, func(a *declaration.Assessment, d *declaration.Declaration, _ time.Duration) {
		mu.Lock()
		lats = append(lats, time.Since(d.LodgedAt))
		mu.Unlock()
	}, func() {
		defer close(produced)
		var decls []*declaration.Declaration
		synth.Generate(synth.Options{Count: n, Seed: 43}, func(r synth.Record) error { decls = append(decls, r.Decl); return nil })
		// Its own transport: kafka-go's default one caches topic metadata
		// for 6 s and would not know the topic created a moment ago.
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: st.DeclarationsTopic, Balancer: &kafka.Hash{},
			BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
		defer w.Close()
		// Every 5 ms, the declarations due by then, each stamped with the
		// time it is sent.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		sent := 0
		for sent < len(decls) {
			<-tick.C
			due := min(len(decls), int(time.Since(start).Seconds()*float64(*rate)))
			var msgs []kafka.Message
			now := time.Now()
			for _, d := range decls[sent:due] {
				d.LodgedAt = now
				msgs = append(msgs, kafka.Message{Key: []byte(d.Importer.ID), Value: d.AppendJSON(nil)})
			}
			if len(msgs) > 0 {
				if err := w.WriteMessages(context.Background(), msgs...); err != nil {
					fmt.Fprintln(os.Stderr, "bench feed: produce failed:", err)
				}
			}
			sent = due
		}
	})
	<-produced
	if err != nil {
		return err
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if len(lats) > 0 {
		fmt.Printf("latency at %d declarations/s for %ds (lodged_at at produce time to assessment acknowledged): p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d declarations)\n",
			*rate, *seconds, ms(lats[len(lats)/2]), ms(lats[len(lats)*99/100]), ms(lats[len(lats)-1]), len(lats))
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func benchTopics(st config.Stream, tag string) config.Stream {
	sfx := fmt.Sprintf("-bench-%s-%d", tag, time.Now().UnixNano())
	st.DeclarationsTopic += sfx
	st.OutcomesTopic += sfx
	st.AssessmentsTopic += sfx
	st.DeadLetterTopic += sfx
	st.Group += sfx
	// Named topics of an instance's state are suffixed too (the defaults
	// follow the group): a bench never writes into an instance's state.
	for _, t := range []*string{&st.ChangelogTopic, &st.PendingTopic} {
		if *t != "" && *t != "none" {
			*t += sfx
		}
	}
	st.StateDir = "" // a bench never checkpoints into an instance's directory
	return st
}

func benchProduce(brokers []string, topic string, values [][]byte) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond,
		BatchSize: 1000, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
	defer w.Close()
	for i := 0; i < len(values); i += 1000 {
		var msgs []kafka.Message
		for _, v := range values[i:min(i+1000, len(values))] {
			msgs = append(msgs, kafka.Message{Value: v})
		}
		if err := stream.WriteMessages(w, msgs...); err != nil {
			return fmt.Errorf("producing the bench data: %w", err)
		}
	}
	return nil
}

// bareConsume reads n messages with a kafka-go consumer group reader set up
// as the pipeline's, doing nothing with them.
// bareConsume reads the topic's n messages (one partition) with the reader
// settings the pipeline uses for each partition it is assigned, and returns
// the time from the first fetch to the last message and the process CPU
// time spent meanwhile.
func bareConsume(brokers []string, topic string, n int) (time.Duration, time.Duration, error) {
	r := kafka.NewReader(stream.PartitionReaderConfig(brokers, topic, 0))
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Timed from the first fetch: with riskmon's fetch size, one fetch may
	// bring a large part of the topic. (A partition reader joins no group.)
	cpu0, start := cpuTime(), time.Now()
	for i := 0; i < n; i++ {
		if _, err := r.FetchMessage(ctx); err != nil {
			return 0, 0, err
		}
	}
	return time.Since(start), cpuTime() - cpu0, nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPipeline runs the stream until n assessments are acknowledged and
// returns the time from the first acknowledgement to the last (group join
// excluded, as for the bare reader). feed, when set, produces the input while
// the pipeline runs.
func benchPipeline(cfg *config.Config, st config.Stream, brokers []string, n int,
	on func(*declaration.Assessment, *declaration.Declaration, time.Duration), feed ...func()) (time.Duration, int, error) {
	eng, err := newOfflineEngine(cfg)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	var first, last atomic.Int64
	doneCh := make(chan struct{})
	s := &stream.Stream{Engine: eng, Config: st, Metrics: stream.NewMetrics(eng), Log: zerolog.New(io.Discard)}
	s.OnAssessed = func(a *declaration.Assessment, d *declaration.Declaration, l time.Duration) {
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		last.Store(now)
		if on != nil {
			on(a, d, l)
		}
		if got.Add(1) == int64(n) {
			close(doneCh)
		}
	}
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, brokers) }()
	for _, f := range feed {
		go f()
	}
	select {
	case <-doneCh:
	case err := <-runErr:
		return 0, 0, fmt.Errorf("pipeline stopped: %v", err)
	case <-time.After(10 * time.Minute):
		return 0, 0, fmt.Errorf("pipeline assessed %d of %d in 10 minutes", got.Load(), n)
	}
	cancel()
	<-runErr
	return time.Duration(last.Load() - first.Load()), int(got.Load()), nil
}
