package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// The bench's embedded broker runs in a process of its own: it serves
// produce and fetch, its CPU is read apart from the bench's, and it ends
// when the bench lets go of it.
func TestBenchBroker(t *testing.T) {
	t.Setenv("RISKMON_TEST_MAIN", "1") // the child is this test binary, run as riskmon
	start := time.Now()
	b, err := startBenchBroker()
	if err != nil {
		t.Fatal(err)
	}
	defer b.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", b.addr, "bench-broker-test", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Enough work for the broker's CPU to show in /proc (10 ms ticks).
	const n = 20000
	for i := 0; i < n; i += 500 {
		msgs := make([]kafka.Message, 500)
		for j := range msgs {
			msgs[j].Value = []byte(strconv.Itoa(i + j))
		}
		if _, err := conn.WriteMessages(msgs...); err != nil {
			t.Fatal(err)
		}
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.addr}, Topic: "bench-broker-test", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for i := range n {
		if m, err := r.ReadMessage(ctx); err != nil || string(m.Value) != strconv.Itoa(i) {
			t.Fatalf("message %d read back as %q, %v", i, m.Value, err)
		}
	}
	// At most both cores for as long as the process has lived.
	if cpu, most := b.cpu(), 2*time.Since(start)+20*time.Millisecond; cpu <= 0 || cpu > most {
		t.Errorf("the broker's process CPU reads %v, want some and at most %v", cpu, most)
	}
	b.stop()
	if b.cmd.ProcessState == nil || !b.cmd.ProcessState.Exited() {
		t.Fatalf("the broker's process has not exited: %v", b.cmd.ProcessState)
	}
}
