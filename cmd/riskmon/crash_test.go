package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/stream"
	"github.com/riskmon/riskmon/synth"
)

// TestCrashSafety kills riskmon processes with SIGKILL while they consume,
// and restarts them; afterwards every valid declaration has an assessment
// and every invalid one a dead letter, however many times it was delivered.
//
// A kill must hit a working consumer: a process that has joined its group,
// holds partitions and has outputs in flight. Joining takes up to the 10 s
// session timeout of the member killed before, so the test waits for the
// "joined the consumer group" line, lets the process work for a random
// moment, checks on its metrics that it has consumed declarations whose
// outputs are not yet acknowledged, and kills it. The window is widened on
// purpose by a fault-injecting proxy between riskmon and the broker: the
// broker's answers to produce requests are delayed 0.3–1 s, so outputs stay
// in flight that long (fetches are not slowed: see TestNetworkSlowLink for
// what a slow link does to them), and the producers' connections are reset
// at random moments and right before half the kills, so that produces
// fail, are retried after a backoff and complete out of order (an offset
// committed past an unacknowledged one is lost by the next kill). One kill
// in four lands instead at a random moment in the first 12 s of a process,
// joined or not.
//
// Four groups ("lanes") consume the same input, each with its own output
// topics and its own succession of processes, so that twenty kills of
// working consumers fit in about a minute despite the rejoin wait. It runs
// on the embedded broker's engine in the test process (which outlives the
// killed processes), in about 75 s, and, when RISKMON_KAFKA is set, on a
// dedicated Apache Kafka broker started with deploy/local-kafka/start (port
// 19292) whose second listener advertises the proxy, in about 100 s with
// the broker's start. So it runs when RISKMON_CRASH=1, as .ci/run does;
// RISKMON_CRASH_VERBOSE=1 logs each kill with the killed process's log.
func TestCrashSafety(t *testing.T) {
	if os.Getenv("RISKMON_CRASH") == "" {
		t.Skip("set RISKMON_CRASH=1 to run (.ci/run does)")
	}
	// The two brokers' runs are independent (their own brokers, topics
	// and processes) and mostly wait on kills and group joins: they run
	// side by side.
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		testCrashSafety(t, testkit.KfakeBehindProxy(t, 2))
	})
	t.Run("kafka", func(t *testing.T) {
		t.Parallel()
		if os.Getenv("RISKMON_KAFKA") == "" {
			t.Skip("set RISKMON_KAFKA to run on Apache Kafka (a dedicated broker is started on port 19292)")
		}
		testCrashSafety(t, testkit.KafkaBehindProxy(t, 19292))
	})
}

// crashKills is how many kills of working consumers a run makes at least.
const crashKills = 20

// crashLane is one consumer group with its output topics.
type crashLane struct {
	id                  int
	group, asmt, dl     string
	mu                  sync.Mutex
	assessed            map[string]int // declaration id → assessments read
	dead                map[string]int // input position → dead letters read
	kills, onConsumer   int
	inFlightAtKill      []int
	killedBeforeJoining int
	final               *riskmonProc
	restarted           bool // the last process was started again (the embedded broker's ghost)
}

// riskmonProc is a riskmon process of the test.
type riskmonProc struct {
	cmd    *exec.Cmd
	stderr *testkit.SyncBuffer
}

func testCrashSafety(t *testing.T, b *testkit.ProxiedBroker) {
	const lanes, partitions = 4, 2
	sfx := fmt.Sprint(time.Now().UnixNano())
	tDecl, tOutc := "decl-"+sfx, "outc-"+sfx
	var ls []*crashLane
	topics := []string{tDecl, tOutc}
	for i := range lanes {
		l := &crashLane{id: i, group: fmt.Sprintf("crash-%s-%d", sfx, i), asmt: fmt.Sprintf("asmt-%s-%d", sfx, i), dl: fmt.Sprintf("dl-%s-%d", sfx, i),
			assessed: map[string]int{}, dead: map[string]int{}}
		ls = append(ls, l)
		topics = append(topics, l.asmt, l.dl)
	}
	createTopics(t, b, partitions, topics...)

	start := func(l *crashLane) (*riskmonProc, error) {
		cmd := exec.Command(os.Args[0], "run", "--brokers", b.Addr, "--metrics-addr", "127.0.0.1:0", "--log-level", "info",
			"--declarations-topic", tDecl, "--outcomes-topic", tOutc, "--assessments-topic", l.asmt, "--dead-letter-topic", l.dl,
			"--partitions", strconv.Itoa(partitions), "--group", l.group)
		cmd.Env = append(os.Environ(), "RISKMON_TEST_MAIN=1")
		p := &riskmonProc{cmd: cmd, stderr: &testkit.SyncBuffer{}}
		cmd.Stderr = p.stderr
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return p, nil
	}

	// The feed: declarations with one invalid message every 100, 100 a
	// second per partition, until the kills are done. The test's own
	// clients go around the proxy.
	var msgs []kafka.Message
	valid := 0
	synth.Generate(synth.Options{Count: 80_000, Seed: 5}, func(r synth.Record) error { // 400 s of feed: room for a slow machine
		msgs = append(msgs, kafka.Message{Key: []byte(r.Decl.Importer.ID), Value: r.Decl.AppendJSON(nil)})
		valid++
		if len(msgs)%100 == 0 {
			msgs = append(msgs, kafka.Message{Key: []byte("bad"), Value: []byte(fmt.Sprintf(`{"id":"BAD-%d"}`, len(msgs)))})
		}
		return nil
	})
	stopFeed := make(chan struct{})
	var fedValid, fedInvalid atomic.Int64
	fed := make(chan error, 1)
	go func() {
		w := &kafka.Writer{Addr: kafka.TCP(b.Direct), Topic: tDecl, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
			BatchTimeout: 2 * time.Millisecond, Transport: b.Transport(), MaxAttempts: 20}
		defer w.Close()
		for i := 0; i < len(msgs); i += 20 {
			select {
			case <-stopFeed:
				fed <- nil
				return
			case <-time.After(100 * time.Millisecond):
			}
			batch := msgs[i:min(i+20, len(msgs))]
			if err := stream.WriteMessages(w, batch...); err != nil {
				fed <- err
				return
			}
			for _, m := range batch {
				if string(m.Key) == "bad" {
					fedInvalid.Add(1)
				} else {
					fedValid.Add(1)
				}
			}
		}
		fed <- fmt.Errorf("the feed ran out of declarations before %d kills", crashKills)
	}()

	// Faults: the broker's produce acknowledgements delayed 0.3–1 s,
	// changing every few seconds, and every connection reset at random
	// moments.
	stopFaults := make(chan struct{})
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		r := rand.New(rand.NewPCG(7, 8))
		for {
			b.Proxy.SetProduceLatency(time.Duration(300+r.IntN(700)) * time.Millisecond)
			select {
			case <-stopFaults:
				b.Proxy.Clear()
				return
			case <-time.After(time.Duration(2000+r.IntN(4000)) * time.Millisecond):
			}
			// The producers' connections only: a reset of the others breaks
			// the joins in progress, which wait up to the session timeout
			// of the member killed before, and leaves a ghost member that
			// holds the partitions for another session timeout.
			// TestNetworkFaults resets every connection.
			if r.IntN(2) == 0 {
				b.Proxy.ResetProducers()
			}
		}
	}()

	var consumingKills atomic.Int64
	deadline := time.Now().Add(4 * time.Minute)
	var wg sync.WaitGroup
	runStart := time.Now()
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(l.id), 99))
			for consumingKills.Load() < crashKills && time.Now().Before(deadline) {
				p, err := start(l)
				if err != nil {
					t.Errorf("lane %d: %v", l.id, err)
					return
				}
				started := time.Now()
				var joined bool
				var inFlight int
				if r.IntN(4) == 0 {
					// A random moment, joined or not.
					time.Sleep(time.Duration(r.IntN(12_000)) * time.Millisecond)
					joined = p.joined()
					_, inFlight, _ = p.inFlight()
				} else {
					// A process that cannot join (the embedded broker can
					// keep a killed member in the group for a while) is
					// waited for only until the kills are done.
					for !p.joined() && time.Now().Before(deadline) && consumingKills.Load() < crashKills {
						time.Sleep(50 * time.Millisecond)
					}
					time.Sleep(time.Duration(300+r.IntN(2500)) * time.Millisecond)
					if r.IntN(2) == 0 {
						// Produces fail now, and are retried after a backoff
						// while later ones succeed.
						b.Proxy.ResetProducers()
						time.Sleep(time.Duration(100+r.IntN(900)) * time.Millisecond)
					}
					// Outputs in flight: declarations consumed whose outputs
					// the broker has not acknowledged.
					for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
						if consumed, n, err := p.inFlight(); err == nil && consumed > 0 && n > 0 {
							inFlight = n
							break
						}
					}
					joined = p.joined()
				}
				p.cmd.Process.Signal(syscall.SIGKILL)
				p.cmd.Wait()
				if os.Getenv("RISKMON_CRASH_VERBOSE") != "" {
					t.Logf("lane %d: killed %v after its start, joined %v, %d outputs in flight; its log:\n%s", l.id, time.Since(started).Round(time.Millisecond), joined, inFlight, p.stderr.String())
				}
				l.mu.Lock()
				l.kills++
				if joined && inFlight > 0 {
					l.onConsumer++
					l.inFlightAtKill = append(l.inFlightAtKill, inFlight)
					consumingKills.Add(1)
				} else if !joined {
					l.killedBeforeJoining++
				}
				l.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	killing := time.Since(runStart)
	close(stopFeed)
	if err := <-fed; err != nil {
		t.Fatalf("feed: %v", err)
	}
	close(stopFaults)
	<-faultsDone
	if n := consumingKills.Load(); n < crashKills {
		t.Errorf("only %d kills of a working consumer in %v", n, killing.Round(time.Second))
	}

	// A last process per lane consumes what is left; the outputs are read
	// until every input is accounted for. It starts once the sessions of
	// the processes killed last have expired (10 s). The embedded broker
	// (kfake) can still leave a ghost: a process killed while its join was
	// waiting, or whose join timed out and was sent again as a new member,
	// stays in the next generation, and kfake starts a member's session
	// timer only when its join response is delivered. When the live
	// member leads, it gives the ghost partitions, which nobody consumes
	// until the group rebalances again (the last process of a lane held
	// one declarations partition of two for two minutes, about once in ten
	// runs). The loop below restarts such a process; README, known limits.
	time.Sleep(12 * time.Second)
	for _, l := range ls {
		p, err := start(l)
		if err != nil {
			t.Fatal(err)
		}
		l.final = p
	}
	nValid, nInvalid := int(fedValid.Load()), int(fedInvalid.Load())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	readAll := func(l *crashLane, topic string, into map[string]int, keyOf func([]byte) string) {
		for p := range partitions {
			go func() {
				rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Direct}, Dialer: b.Dialer(), Topic: topic, Partition: p,
					MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
				defer rd.Close()
				for {
					m, err := rd.ReadMessage(ctx)
					if err != nil {
						return
					}
					l.mu.Lock()
					into[keyOf(m.Value)]++
					l.mu.Unlock()
				}
			}()
		}
	}
	idOf := func(v []byte) string {
		var a struct {
			ID string `json:"declaration_id"`
		}
		json.Unmarshal(v, &a)
		return a.ID
	}
	posOf := func(v []byte) string {
		var d struct {
			Partition int   `json:"partition"`
			Offset    int64 `json:"offset"`
		}
		json.Unmarshal(v, &d)
		return fmt.Sprintf("%d/%d", d.Partition, d.Offset)
	}
	for _, l := range ls {
		readAll(l, l.asmt, l.assessed, idOf)
		readAll(l, l.dl, l.dead, posOf)
	}
	complete := func() bool {
		for _, l := range ls {
			l.mu.Lock()
			done := len(l.assessed) >= nValid && len(l.dead) >= nInvalid
			l.mu.Unlock()
			if !done {
				return false
			}
		}
		return true
	}
	finalStart := time.Now()
	for ctx.Err() == nil && !complete() {
		time.Sleep(200 * time.Millisecond)
		if b.Kind != "embedded" || time.Since(finalStart) < 40*time.Second {
			continue
		}
		// The embedded broker's ghost (see above): a member whose join
		// response could not be delivered gets no session timer, and when
		// the leader's assignment gives it partitions it keeps them until
		// the group's next rebalance. Apache Kafka expires it; here the
		// last process is stopped (SIGTERM: it leaves the group, and the
		// rebalance that follows drops the ghost) and started again, once.
		for _, l := range ls {
			if l.restarted || len(l.final.declParts()) == partitions {
				continue
			}
			t.Logf("lane %d: the last process holds declarations partitions %v of %d after %v: stopped with SIGTERM and started again",
				l.id, l.final.declParts(), partitions, time.Since(finalStart).Round(time.Second))
			l.final.cmd.Process.Signal(syscall.SIGTERM)
			l.final.cmd.Wait()
			p, err := start(l)
			if err != nil {
				t.Fatal(err)
			}
			l.final, l.restarted = p, true
		}
	}
	time.Sleep(time.Second) // duplicates still on their way
	cancel()
	for _, l := range ls {
		l.final.cmd.Process.Signal(syscall.SIGTERM)
		l.final.cmd.Wait()
	}

	var kills, onConsumer, beforeJoin, lost, lostDL, dups, dupDL int
	var inFlight []int
	for _, l := range ls {
		l.mu.Lock()
		laneDup, laneDupDL := 0, 0
		for _, n := range l.assessed {
			laneDup += n - 1
		}
		for _, n := range l.dead {
			laneDupDL += n - 1
		}
		t.Logf("lane %d: %d kills (%d of a working consumer, %d before joining); %d of %d assessed (%d lost, %d duplicates), %d of %d dead letters (%d lost, %d duplicates)",
			l.id, l.kills, l.onConsumer, l.killedBeforeJoining, len(l.assessed), nValid, nValid-len(l.assessed), laneDup, len(l.dead), nInvalid, nInvalid-len(l.dead), laneDupDL)
		if len(l.assessed) < nValid || len(l.dead) < nInvalid {
			// What the last process of the lane said, debug lines aside:
			// whether it joined, with which partitions, and what failed.
			var said []string
			for _, line := range strings.Split(l.final.stderr.String(), "\n") {
				if line != "" && !strings.Contains(line, `"level":"debug"`) {
					said = append(said, line)
				}
			}
			t.Logf("lane %d: the last process's log:\n%s", l.id, strings.Join(said[max(0, len(said)-40):], "\n"))
		}
		kills += l.kills
		onConsumer += l.onConsumer
		beforeJoin += l.killedBeforeJoining
		lost += nValid - len(l.assessed)
		lostDL += nInvalid - len(l.dead)
		dups += laneDup
		dupDL += laneDupDL
		inFlight = append(inFlight, l.inFlightAtKill...)
		l.mu.Unlock()
	}
	st := b.Proxy.Stats()
	t.Logf("on %s (riskmon through the proxy at %s): %d SIGKILLs in %v, %d of a working consumer (outputs in flight at the kill: %s), %d before the process had joined; proxy: %d connections, %d reset; "+
		"%d lanes × (%d valid + %d invalid declarations): %d lost, %d assessed more than once; %d dead letters lost, %d duplicated",
		b.Kind, b.Addr, kills, killing.Round(time.Second), onConsumer, summarize(inFlight), beforeJoin, st.Accepted, st.Resets,
		lanes, nValid, nInvalid, lost, dups, lostDL, dupDL)
	if lost > 0 || lostDL > 0 {
		t.Fatalf("lost: %d declarations without an assessment, %d invalid ones without a dead letter", lost, lostDL)
	}
}

// createTopics creates topics with the given partitions, around the proxy.
func createTopics(t *testing.T, b *testkit.ProxiedBroker, partitions int, topics ...string) {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(b.Direct), Transport: b.Transport(), Timeout: 30 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, tp := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: tp, NumPartitions: partitions, ReplicationFactor: 1})
	}
	resp, err := c.CreateTopics(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for tp, err := range resp.Errors {
		if err != nil {
			t.Fatalf("creating %s: %v", tp, err)
		}
	}
}

// joined reports whether the process has logged that it joined its group
// with partitions.
func (p *riskmonProc) joined() bool {
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if !strings.Contains(l, "joined the consumer group") {
			continue
		}
		var e struct {
			Partitions int `json:"partitions"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Partitions > 0 {
			return true
		}
	}
	return false
}

// declParts returns the declarations partitions the process said it holds
// when it last joined its group.
func (p *riskmonProc) declParts() []int {
	var parts []int
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if !strings.Contains(l, "joined the consumer group") {
			continue
		}
		var e struct {
			Parts []int `json:"declarations_partitions"`
		}
		if json.Unmarshal([]byte(l), &e) == nil {
			parts = e.Parts
		}
	}
	return parts
}

// scrape returns the process's /metrics ("" when it cannot be read).
func (p *riskmonProc) scrape() string {
	var url string
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		var e struct {
			Message string `json:"message"`
			Metrics string `json:"metrics"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Message == "riskmon started" {
			url = e.Metrics
		}
	}
	if url == "" {
		return ""
	}
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// inFlight reads the process's metrics: declarations consumed, and how many
// of them have no acknowledged output yet (dead letters count when
// produced, so this undercounts a little).
func (p *riskmonProc) inFlight() (consumed, inFlight int, err error) {
	body := p.scrape()
	if body == "" {
		return 0, 0, fmt.Errorf("metrics not readable")
	}
	var done float64
	var cons float64
	for _, line := range strings.Split(body, "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		switch {
		case name == "riskmon_declarations_consumed_total":
			cons = v
		case strings.HasPrefix(name, "riskmon_assessments_total{"), strings.HasPrefix(name, "riskmon_dead_letters_total{"):
			done += v
		}
	}
	return int(cons), int(cons - done), nil
}

// summarize gives the least, the median and the most of a list.
func summarize(xs []int) string {
	if len(xs) == 0 {
		return "none"
	}
	s := slices.Sorted(slices.Values(xs))
	return fmt.Sprintf("min %d, median %d, max %d", s[0], s[len(s)/2], s[len(s)-1])
}
