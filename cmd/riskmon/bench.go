package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
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
	if os.Getenv(benchBrokerEnv) == "1" {
		return serveBenchBroker()
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
	brokerCPU := func() time.Duration { return 0 }
	if len(brokers) == 0 {
		b, err := startBenchBroker()
		if err != nil {
			return err
		}
		defer b.stop()
		brokers, brokerCPU = []string{b.addr}, b.cpu
		label = "embedded broker (kfake, in a process of its own)"
	}
	fmt.Printf("riskmon bench on %s, ruleset %s\n", label, cfg.Ruleset)
	// CPU per declaration: riskmon's process, and the embedded broker's.
	cpuNote := func(riskmon, broker time.Duration, n int) string {
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
		if *brokersFlag != "" {
			return fmt.Sprintf("%.1f µs process CPU", per(riskmon))
		}
		return fmt.Sprintf("%.1f µs process CPU (and %.1f µs in the broker's process)", per(riskmon), per(broker))
	}

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
	dropThroughput := sync.OnceFunc(func() { dropBenchTopics(brokers, st) })
	defer dropThroughput() // also when a run fails
	if err := stream.EnsureTopics(context.Background(), brokers, st, nil); err != nil {
		return err
	}
	if err := benchProduce(brokers, st.DeclarationsTopic, values); err != nil {
		return err
	}
	b0 := brokerCPU()
	bare, bareCPU, err := bareConsume(brokers, st.DeclarationsTopic, len(values))
	if err != nil {
		return err
	}
	fmt.Printf("bare kafka-go consume (partition reader, riskmon's reader settings): %d messages in %.2fs = %.0f/s, %s per message\n",
		len(values), bare.Seconds(), float64(len(values))/bare.Seconds(), cpuNote(bareCPU, brokerCPU()-b0, len(values)))
	cpu0, b0 := cpuTime(), brokerCPU()
	e2e, _, err := benchPipeline(cfg, st, brokers, len(values), nil)
	if err != nil {
		return err
	}
	pipeCPU := cpuTime() - cpu0
	fmt.Printf("pipeline end to end (consume, decode, assess, produce, acknowledge): %d declarations in %.2fs = %.0f/s, %s per declaration (group join included)\n",
		len(values), e2e.Seconds(), float64(len(values))/e2e.Seconds(), cpuNote(pipeCPU, brokerCPU()-b0, len(values)))
	fmt.Printf("ratio pipeline / bare consume: %.2f\n", bare.Seconds()/e2e.Seconds())
	// The throughput run's topics go before the latency run: the embedded
	// broker holds its log in its heap, and a log left behind would be
	// marked by its collector through the latency run.
	dropThroughput()

	// Latency at a fixed rate: lodged_at is set when the declaration is
	// produced, so lodged-to-assessed is the whole trip through the broker and
	// riskmon.
	n := *rate * *seconds
	lt := benchTopics(cfg.Stream, "lat")
	defer dropBenchTopics(brokers, lt)
	if err := stream.EnsureTopics(context.Background(), brokers, lt, nil); err != nil {
		return err
	}
	// The trip in three parts: through the broker to riskmon's fetch loop
	// (produce, fetch), in riskmon until assessed (decode, queue, assess),
	// and the outputs' produce until acknowledged.
	var lats, toFetch, toAssess, toAck []time.Duration
	var mu sync.Mutex
	produced := make(chan struct{})
	// The feed's declarations are generated before the pipeline starts, and
	// its messages reuse their buffers: the feed shares riskmon's process
	// here (in production it is another's), and its garbage would be
	// collected at riskmon's expense during the measure.
	var decls []*declaration.Declaration
	if err := synth.Generate(synth.Options{Count: n, Seed: 43}, func(r synth.Record) error { decls = append(decls, r.Decl); return nil }); err != nil {
		return err
	}
	_, _, err = benchPipeline(cfg, lt, brokers, n, func(a *declaration.Assessment, d *declaration.Declaration, inProcess time.Duration) {
		total := time.Since(d.LodgedAt)
		assessed := a.AssessedAt.Sub(d.LodgedAt)
		mu.Lock()
		lats = append(lats, total)
		toFetch = append(toFetch, total-inProcess)
		toAssess = append(toAssess, assessed-(total-inProcess))
		toAck = append(toAck, total-assessed)
		mu.Unlock()
	}, func() {
		defer close(produced)
		// Its own transport: kafka-go's default one caches topic metadata
		// for 6 s and would not know the topic created a moment ago.
		// No linger: a tick's declarations are written in one call, so they
		// make their batches at once, and a wait here would be the feed's
		// own, counted in every latency.
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: lt.DeclarationsTopic, Balancer: &kafka.Hash{},
			BatchTimeout: time.Nanosecond, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
		defer w.Close()
		// Every 5 ms, the declarations due by then, each stamped with the
		// time it is sent.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		sent := 0
		var msgs []kafka.Message
		var vals [][]byte
		for sent < len(decls) {
			<-tick.C
			due := min(len(decls), int(time.Since(start).Seconds()*float64(*rate)))
			msgs = msgs[:0]
			now := time.Now()
			for i, d := range decls[sent:due] {
				d.LodgedAt = now
				if i == len(vals) {
					vals = append(vals, nil)
				}
				vals[i] = d.AppendJSON(vals[i][:0])
				msgs = append(msgs, kafka.Message{Key: []byte(d.Importer.ID), Value: vals[i]})
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
	if len(lats) > 0 {
		q := func(l []time.Duration) string {
			slices.Sort(l)
			return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms", ms(l[len(l)/2]), ms(l[len(l)*99/100]), ms(l[len(l)-1]))
		}
		fmt.Printf("latency at %d declarations/s for %ds (lodged_at at produce time to assessment acknowledged): %s (%d declarations)\n",
			*rate, *seconds, q(lats), len(lats))
		fmt.Printf("  of which: broker to riskmon's fetch %s; in riskmon to assessed %s; outputs produced to acknowledged %s\n",
			q(toFetch), q(toAssess), q(toAck))
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

// dropBenchTopics deletes a bench run's topics and its consumer group (a
// bench leaves nothing behind on a broker it was pointed at, whether its
// run succeeded or not). A failure is reported, not fatal.
func dropBenchTopics(brokers []string, st config.Stream) {
	topics := []string{st.DeclarationsTopic, st.OutcomesTopic, st.AssessmentsTopic, st.DeadLetterTopic}
	for _, t := range st.HandoverTopics() {
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	ctx := context.Background()
	var errs []error
	if resp, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics}); err != nil {
		errs = append(errs, err)
	} else {
		for t, e := range resp.Errors {
			if e != nil && !errors.Is(e, kafka.UnknownTopicOrPartition) {
				errs = append(errs, fmt.Errorf("topic %s: %w", t, e))
			}
		}
	}
	// The group is empty once its run has stopped; a run that never
	// joined left none.
	if resp, err := cl.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{st.Group}}); err != nil {
		errs = append(errs, err)
	} else {
		for g, e := range resp.Errors {
			if e != nil && !errors.Is(e, kafka.GroupIdNotFound) {
				errs = append(errs, fmt.Errorf("group %s: %w", g, e))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "bench: deleting what it created:", err)
	}
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

// benchBroker is the embedded broker in a child process (this binary again,
// with benchBrokerEnv set): the bench's own process then holds riskmon
// alone, as against a broker of its own in production, and does not
// collect the broker's in-memory log with its garbage.
type benchBroker struct {
	addr string
	cmd  *exec.Cmd
	in   io.WriteCloser
}

const benchBrokerEnv = "RISKMON_BENCH_BROKER"

// serveBenchBroker runs the child's side: the broker on a free loopback
// port, its address on stdout, until stdin closes (the parent is gone).
func serveBenchBroker() error {
	emb, err := stream.StartEmbedded("127.0.0.1:0", 1)
	if err != nil {
		return err
	}
	defer emb.Close()
	fmt.Println(emb.Addr)
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

func startBenchBroker() (*benchBroker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("starting the embedded broker's process: %w", err)
	}
	cmd := exec.Command(exe, "bench")
	cmd.Env = append(os.Environ(), benchBrokerEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the embedded broker's process: %w", err)
	}
	b := &benchBroker{cmd: cmd, in: in}
	line, err := bufio.NewReader(out).ReadString('\n')
	if b.addr = strings.TrimSpace(line); err != nil || b.addr == "" {
		b.stop()
		return nil, fmt.Errorf("the embedded broker's process did not start: %v", err)
	}
	return b, nil
}

func (b *benchBroker) stop() {
	b.in.Close()
	b.cmd.Wait()
}

// cpu is the broker process's user and system CPU time so far (from
// /proc; 0 where there is none).
func (b *benchBroker) cpu() time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// After the command name in parentheses: state is field 3, utime and
	// stime fields 14 and 15, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
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
