package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/pipeline/stream"
	"github.com/riskmon/riskmon/synth"
)

// TestCrashSafety streams declarations while riskmon processes are killed
// with SIGKILL at random moments and restarted; afterwards every valid
// declaration has an assessment and every invalid one a dead letter. The
// broker runs in the test process, outside the killed ones. It takes about a
// minute (each restart waits for the killed member's session to expire), so
// it runs when RISKMON_CRASH=1, as .ci/run does.
func TestCrashSafety(t *testing.T) {
	if os.Getenv("RISKMON_CRASH") == "" {
		t.Skip("set RISKMON_CRASH=1 to run (.ci/run does)")
	}
	addr := os.Getenv("RISKMON_KAFKA") // a real broker when set; else one in this process
	if addr == "" {
		b, err := stream.StartEmbedded("127.0.0.1:0", 2)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		addr = b.Addr
	}
	sfx := fmt.Sprint(time.Now().UnixNano())
	tDecl, tAsmt, tDL := "decl-"+sfx, "asmt-"+sfx, "dl-"+sfx
	topics := []string{"--declarations-topic", tDecl, "--outcomes-topic", "outc-" + sfx, "--assessments-topic", tAsmt, "--dead-letter-topic", tDL,
		"--partitions", "2", "--group", "crash-" + sfx}
	start := func() *exec.Cmd {
		cmd, _ := startRiskmon(t, append([]string{"run", "--brokers", addr, "--metrics-addr", "127.0.0.1:0", "--log-level", "error"}, topics...)...)
		return cmd
	}

	const valid, invalid = 4000, 40
	var msgs []kafka.Message
	synth.Generate(synth.Options{Count: valid, Seed: 5}, func(r synth.Record) error {
		msgs = append(msgs, kafka.Message{Key: []byte(r.Decl.Importer.ID), Value: r.Decl.AppendJSON(nil)})
		if len(msgs)%100 == 0 && invalid > 0 {
			msgs = append(msgs, kafka.Message{Key: []byte("bad"), Value: []byte(fmt.Sprintf(`{"id":"BAD-%d"}`, len(msgs)))})
		}
		return nil
	})
	// The first process creates the topics; then the feed starts, 400 a second.
	first := start()
	time.Sleep(2 * time.Second)
	fed := make(chan error, 1)
	go func() {
		w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: tDecl, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
			BatchTimeout: 2 * time.Millisecond, Transport: &kafka.Transport{}, MaxAttempts: 20}
		defer w.Close()
		for i := 0; i < len(msgs); i += 40 {
			if err := w.WriteMessages(context.Background(), msgs[i:min(i+40, len(msgs))]...); err != nil {
				fed <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		fed <- nil
	}()
	r := rand.New(rand.NewPCG(1, 2))
	cmd := first
	kills := 0
	for ; kills < 6; kills++ {
		time.Sleep(time.Duration(500+r.IntN(1500)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cmd = start()
	}
	if err := <-fed; err != nil {
		t.Fatalf("feed: %v", err)
	}

	// Read everything back until every declaration is accounted for.
	nInvalid := len(msgs) - valid
	assessed := map[string]int{}
	dead := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	read := func(topic string, into map[string]int, keyOf func([]byte) string, want int) {
		for p := 0; p < 2 && len(into) < want; p++ {
			rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			for {
				m, err := rd.ReadMessage(pctx)
				if err != nil {
					break
				}
				into[keyOf(m.Value)]++
			}
			pcancel()
			rd.Close()
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
	for ctx.Err() == nil {
		clear(assessed)
		clear(dead)
		read(tAsmt, assessed, idOf, valid)
		read(tDL, dead, posOf, nInvalid)
		if len(assessed) == valid && len(dead) == nInvalid {
			break
		}
		time.Sleep(2 * time.Second)
	}
	peak := "?"
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				peak = strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
			}
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	dupA, dupD := 0, 0
	for _, n := range assessed {
		dupA += n - 1
	}
	for _, n := range dead {
		dupD += n - 1
	}
	t.Logf("on %s, SIGKILLed %d times (peak RSS of the last riskmon process %s): sent %d valid and %d invalid declarations; %d assessed (%d lost, %d assessed twice or more), %d dead letters (%d lost, %d duplicated)",
		addr, kills, peak, valid, nInvalid, len(assessed), valid-len(assessed), dupA, len(dead), nInvalid-len(dead), dupD)
	if len(assessed) != valid || len(dead) != nInvalid {
		t.Fatalf("lost declarations: %d of %d assessed, %d of %d dead-lettered", len(assessed), valid, len(dead), nInvalid)
	}
}
