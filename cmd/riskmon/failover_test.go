package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/stream"
	"github.com/riskmon/riskmon/synth"
)

// Failover that does not forget, on Apache Kafka (RISKMON_KAFKA): three
// riskmon processes share a group on six partitions. They assess the first
// half of a stream and the outcomes of its inspected sample (30 %, enough
// for each to train its model); then one of them is killed with SIGKILL and
// its state directory deleted, and the other two, given its partitions,
// restore its importers' state from the changelog and assess the second
// half. The importers it held must be known (no "new importer (first
// declaration)" finding for an importer seen in the first half: without the
// changelog, 132 of 2,333 such declarations had one), nothing may be lost,
// their own inspection history must be cited as often as in the same
// stream through three processes of which none is killed, and their scores
// must match that run's within a stated tolerance (see below: shared
// statistics are each instance's own).
//
// RISKMON_FAILOVER_CONTROL=1 also runs the failover without a changelog
// and logs how far that is from the uninterrupted run.
func TestFailover(t *testing.T) {
	broker := os.Getenv("RISKMON_KAFKA")
	if broker == "" {
		t.Skip("set RISKMON_KAFKA to the address of an Apache Kafka broker (.ci/run does)")
	}
	const partitions, n = 6, 12000
	var decls []*declaration.Declaration
	var outcomes []kafka.Message
	synth.Generate(synth.Options{Count: n, Seed: 11, InspectRate: 0.3}, func(r synth.Record) error {
		decls = append(decls, r.Decl)
		if r.Inspected && len(decls) <= n/2 {
			outcomes = append(outcomes, kafka.Message{Key: []byte(r.Decl.Importer.ID), Value: r.Truth.AppendJSON(nil)})
		}
		return nil
	})
	first, second := decls[:n/2], decls[n/2:]
	// The detectors that read only the importer's own record: what they say
	// depends on nothing but the importer's declarations, in order.
	perImporter := map[string]bool{"importer_behaviour": true, "splitting": true, "benford": true}

	type run struct {
		scores    map[string]float64
		channels  map[string]string
		findings  map[string]string
		own       map[string]string // the findings of the detectors of an importer's own record
		victim    []int             // the killed process's partitions
		restored  float64
		assessed  int
		processes []*riskmonProc
	}
	do := func(name string, kill bool, extra ...string) *run {
		sfx := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
		tDecl, tOutc, tAsmt, tDL, group := "fo-decl-"+sfx, "fo-outc-"+sfx, "fo-asmt-"+sfx, "fo-dl-"+sfx, "fo-"+sfx
		b := &testkit.ProxiedBroker{Direct: broker}
		createTopics(t, b, partitions, tDecl, tOutc, tAsmt, tDL)
		r := &run{scores: map[string]float64{}, channels: map[string]string{}, findings: map[string]string{}, own: map[string]string{}}
		dirs := make([]string, 3)
		start := func(i int) *riskmonProc {
			dirs[i] = filepath.Join(t.TempDir(), "state")
			args := append([]string{"run", "--brokers", broker, "--metrics-addr", "127.0.0.1:0", "--log-level", "info",
				"--declarations-topic", tDecl, "--outcomes-topic", tOutc, "--assessments-topic", tAsmt, "--dead-letter-topic", tDL,
				"--partitions", strconv.Itoa(partitions), "--group", group, "--state-dir", dirs[i]}, extra...)
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), "RISKMON_TEST_MAIN=1")
			p := &riskmonProc{cmd: cmd, stderr: &testkit.SyncBuffer{}}
			cmd.Stderr = p.stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			return p
		}
		for i := range 3 {
			r.processes = append(r.processes, start(i))
		}
		// Every process holds partitions before the feed starts.
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) && len(slices.DeleteFunc(slices.Clone(r.processes), func(p *riskmonProc) bool { return p.joined() })) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		var mu sync.Mutex
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for p := range partitions {
			go func() {
				rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: tAsmt, Partition: p, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
				defer rd.Close()
				for {
					m, err := rd.ReadMessage(ctx)
					if err != nil {
						return
					}
					var a struct {
						DeclarationID string  `json:"declaration_id"`
						Score         float64 `json:"score"`
						Channel       string  `json:"channel"`
						Findings      []struct {
							Detector string `json:"detector"`
							Reason   string `json:"reason"`
						} `json:"findings"`
					}
					if err := json.Unmarshal(m.Value, &a); err != nil {
						t.Errorf("assessment %s: %v", m.Value, err)
						continue
					}
					var why, own []string
					for _, f := range a.Findings {
						why = append(why, f.Reason)
						if perImporter[f.Detector] {
							own = append(own, f.Detector+": "+f.Reason)
						}
					}
					slices.Sort(own)
					mu.Lock()
					r.assessed++
					// A declaration assessed twice (redelivered after the kill)
					// keeps its first assessment.
					if _, seen := r.scores[a.DeclarationID]; !seen {
						r.scores[a.DeclarationID], r.channels[a.DeclarationID], r.findings[a.DeclarationID] = a.Score, a.Channel, strings.Join(why, " | ")
						r.own[a.DeclarationID] = strings.Join(own, " | ")
					}
					mu.Unlock()
				}
			}()
		}
		w := &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond,
			Transport: &kafka.Transport{}} // its own metadata: the topics are new
		defer w.Close()
		feed := func(topic string, msgs []kafka.Message) {
			for i := range msgs {
				msgs[i].Topic = topic
			}
			if err := stream.WriteMessages(w, msgs...); err != nil {
				t.Fatal(err)
			}
		}
		keyed := func(ds []*declaration.Declaration) []kafka.Message {
			var msgs []kafka.Message
			for _, d := range ds {
				msgs = append(msgs, kafka.Message{Key: []byte(d.Importer.ID), Value: d.AppendJSON(nil)})
			}
			return msgs
		}
		waitAssessed := func(ds []*declaration.Declaration) {
			deadline := time.Now().Add(2 * time.Minute)
			for time.Now().Before(deadline) {
				mu.Lock()
				missing := 0
				for _, d := range ds {
					if _, ok := r.scores[d.ID]; !ok {
						missing++
					}
				}
				mu.Unlock()
				if missing == 0 {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			var logs []string
			for _, p := range r.processes {
				logs = append(logs, fmt.Sprintf("consumed %.0f, assessed %.0f, changelog records %.0f:\n%s", p.metric("riskmon_declarations_consumed_total"),
					p.metric("riskmon_assessments_total"), p.metric("riskmon_changelog_records_total"), lastLines(p.stderr.String(), 15)))
			}
			t.Fatalf("%s: declarations not assessed within 2 minutes: lost; the processes' logs:\n%s", name, strings.Join(logs, "\n---\n"))
		}
		feed(tDecl, keyed(first))
		waitAssessed(first)
		feed(tOutc, slices.Clone(outcomes))
		time.Sleep(3 * time.Second) // outcomes applied and handed over
		if kill {
			victim := r.processes[1]
			r.victim = victim.partitions()
			victim.cmd.Process.Signal(syscall.SIGKILL)
			victim.cmd.Wait()
			os.RemoveAll(dirs[1]) // its disk is gone
		}
		feed(tDecl, keyed(second))
		waitAssessed(second)
		for _, p := range r.processes {
			if !kill || p != r.processes[1] {
				r.restored += p.metric("riskmon_changelog_restored_records_total")
			}
		}
		for _, p := range r.processes {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.cmd.Wait()
		}
		return r
	}

	whole := do("whole", false)
	failed := do("failover", true)
	if len(failed.victim) == 0 {
		t.Fatal("the killed process held no partition of the declarations")
	}
	// The importers the victim held: those of the first half whose messages
	// went to its partitions (kafka.Hash on the importer id).
	hash := &kafka.Hash{}
	ps := []int{0, 1, 2, 3, 4, 5}
	seen := map[string]bool{}
	for _, d := range first {
		seen[d.Importer.ID] = true
	}
	// compare looks at the second half's declarations of the importers seen
	// in the first half whose partition is among victim: how many there
	// are, how many a "new importer (first declaration)" finding calls new,
	// how many cite their importer's own inspection history, how many have
	// the per-importer detectors' findings and the channel of the
	// uninterrupted run, and the score differences.
	compare := func(r *run, victim []int) (known, newImporter, ownHistory, sameOwn, sameChannel int, diffs []float64) {
		for _, d := range second {
			if !slices.Contains(victim, hash.Balance(kafka.Message{Key: []byte(d.Importer.ID)}, ps...)) || !seen[d.Importer.ID] {
				continue
			}
			known++
			if strings.Contains(r.findings[d.ID], "new importer (first declaration)") {
				newImporter++
			}
			if strings.Contains(r.findings[d.ID], "importer "+d.Importer.ID+": ") && strings.Contains(r.findings[d.ID], "inspection history") {
				ownHistory++
			}
			if r.own[d.ID] == whole.own[d.ID] {
				sameOwn++
			}
			if r.channels[d.ID] == whole.channels[d.ID] {
				sameChannel++
			}
			diffs = append(diffs, math.Abs(r.scores[d.ID]-whole.scores[d.ID]))
		}
		slices.Sort(diffs)
		return
	}
	known, newImp, history, sameOwn, same, diffs := compare(failed, failed.victim)
	if known == 0 {
		t.Fatal("no declaration of the second half belongs to an importer the killed process held")
	}
	_, _, historyWhole, _, _, _ := compare(whole, failed.victim)
	med := func(d []float64) float64 { return d[len(d)/2] }
	p90 := func(d []float64) float64 { return d[int(0.9*float64(len(d)-1))] }
	t.Logf("killed the process holding partitions %v; the others restored %.0f changelog records; of the %d later declarations of the importers it held: "+
		"%d with a \"new importer (first declaration)\" finding, %d citing their importer's inspection history (%d without the kill), %d with the per-importer detectors' findings of the run without the kill, %d in its channel; "+
		"score difference median %.2f, 90th percentile %.2f, max %.2f points; %d and %d assessments read (redeliveries included)",
		failed.victim, failed.restored, known, newImp, history, historyWhole, sameOwn, same, med(diffs), p90(diffs), diffs[len(diffs)-1], whole.assessed, failed.assessed)
	if os.Getenv("RISKMON_FAILOVER_CONTROL") != "" {
		control := do("control", true, "--changelog-topic", "none")
		k, ni, h, so, sc, d := compare(control, control.victim)
		_, _, hw, _, _, _ := compare(whole, control.victim)
		if len(d) > 0 {
			t.Logf("without the changelog (killed %v): of %d: %d \"new importer (first declaration)\", %d citing their importer's history (%d without the kill), %d with the same per-importer findings, %d in the same channel; score difference median %.2f, 90th percentile %.2f",
				control.victim, k, ni, h, hw, so, sc, med(d), p90(d))
		}
	}
	// What belongs to the importers is handed over: none is new again (one
	// in 2,194 was, once in CI, not yet explained; without the changelog
	// 120 in 2,194 are), and their own inspection history is cited as often
	// as without the kill.
	if float64(newImp) > 0.005*float64(known) || failed.restored == 0 || historyWhole < 10 || float64(history) < 0.8*float64(historyWhole) {
		t.Errorf("%d declarations of known importers assessed as a new importer's first; %d cite their importer's inspection history against %d without the kill; %.0f records restored",
			newImp, history, historyWhole, failed.restored)
	}
	// The tolerance. What belongs to the importer must come through
	// exactly: the findings of the detectors that read only its own record
	// are those of the run without the kill for 97 % of its declarations (a
	// declaration redelivered after the kill is learned twice). The score
	// also rests on shared statistics (peer groups, routes, hit rates of
	// other entities, calibration, the base rates, the model), which are
	// each instance's own, learned from its share of the stream: a new owner
	// scores with its own. On this stream of 12,000 declarations, where one
	// instance's importers hit at 2 % and another's at 7 %, that moves the
	// median score by 2-11 points, and 91-96 % keep their channel; so the
	// channel is held to 85 %.
	if float64(sameOwn) < 0.97*float64(known) || float64(same) < 0.85*float64(known) {
		t.Errorf("after the failover, %d of %d declarations have the per-importer findings of the run without the kill (tolerance 97 %%), %d of %d its channel (tolerance 85 %%)",
			sameOwn, known, same, known)
	}
}

// partitions are the declarations partitions the process was given when it
// last joined its group (its log).
func (p *riskmonProc) partitions() []int {
	var out []int
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		var e struct {
			Message    string `json:"message"`
			Partitions []int  `json:"declarations_partitions"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Message == "joined the consumer group" {
			out = e.Partitions
		}
	}
	return out
}

// metric is the sum of a metric's series in the process's /metrics.
func (p *riskmonProc) metric(name string) float64 {
	var sum float64
	for _, l := range strings.Split(p.scrape(), "\n") {
		series := strings.Fields(l)
		if len(series) == 2 && (series[0] == name || strings.HasPrefix(series[0], name+"{")) {
			f, _ := strconv.ParseFloat(series[1], 64)
			sum += f
		}
	}
	return sum
}

// lastLines is the last n lines of a log, debug lines aside.
func lastLines(log string, n int) string {
	var said []string
	for _, line := range strings.Split(log, "\n") {
		if line != "" && !strings.Contains(line, `"level":"debug"`) {
			said = append(said, line)
		}
	}
	return strings.Join(said[max(0, len(said)-n):], "\n")
}
