package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// echoServer answers every connection with what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T) (*Proxy, net.Conn) {
	t.Helper()
	p, err := StartProxy("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

// roundTrip writes msg and reads it back, and returns how long it took.
func roundTrip(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo altered the bytes")
	}
	return time.Since(start)
}

// The proxy's faults, each checked for what it must do at least (a delay at
// least as long as asked) and never for how fast things go: the machine may
// be busy.
func TestProxyFaults(t *testing.T) {
	t.Run("forwards unaltered", func(t *testing.T) {
		_, c := startProxy(t)
		msg := bytes.Repeat([]byte("riskmon "), 100_000)
		roundTrip(t, c, msg)
	})
	t.Run("latency in each direction", func(t *testing.T) {
		p, c := startProxy(t)
		p.SetLatency(100 * time.Millisecond)
		if d := roundTrip(t, c, []byte("ping")); d < 200*time.Millisecond {
			t.Errorf("round trip of %v with 100 ms each way", d)
		}
		p.SetLatency(0)
		roundTrip(t, c, []byte("ping"))
	})
	t.Run("bandwidth", func(t *testing.T) {
		p, c := startProxy(t)
		p.SetBandwidth(200_000)
		// 100 kB at 200 kB/s take at least 0.5 s (the echo back overlaps
		// the way up).
		if d := roundTrip(t, c, make([]byte, 100_000)); d < 500*time.Millisecond {
			t.Errorf("100 kB echoed through 200 kB/s in %v", d)
		}
	})
	t.Run("blackhole holds, then releases", func(t *testing.T) {
		p, c := startProxy(t)
		p.SetBlackhole(true)
		c.Write([]byte("held"))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(make([]byte, 4)); n != 0 || !isTimeout(err) {
			t.Fatalf("read %d bytes (%v) through a blackhole", n, err)
		}
		// A connection made during the blackhole is accepted and held too.
		c2, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		c2.Write([]byte("new!"))
		p.SetBlackhole(false)
		got := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
			t.Fatalf("after the blackhole: %q, %v", got, err)
		}
		c2.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c2, got); err != nil || string(got) != "new!" {
			t.Fatalf("connection made in the blackhole: %q, %v", got, err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		p, c := startProxy(t)
		roundTrip(t, c, []byte("ping"))
		if n := p.ResetAll(); n != 1 {
			t.Errorf("reset %d connections, want 1", n)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("read after a reset: %v, want connection reset", err)
		}
		c2, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		roundTrip(t, c2, []byte("again"))
		if s := p.Stats(); s.Resets != 1 || s.Accepted != 2 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("refuse", func(t *testing.T) {
		p, _ := startProxy(t)
		p.SetRefuse(true)
		c, err := net.Dial("tcp", p.Addr())
		if err == nil {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Errorf("a refused connection read data")
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// The embedded broker behind its proxy advertises the proxy, so a client
// that bootstraps through it stays behind it; the test's own clients go
// around it.
func TestKfakeBehindProxy(t *testing.T) {
	b := KfakeBehindProxy(t, 1, "t")
	conn, err := kafka.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	brokers, err := conn.Brokers()
	conn.Close()
	if err != nil || len(brokers) != 1 || net.JoinHostPort(brokers[0].Host, strconv.Itoa(brokers[0].Port)) != b.Addr {
		t.Fatalf("the broker advertises %v (%v), want the proxy %s", brokers, err, b.Addr)
	}
	before := b.Proxy.Stats()
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: "t", Transport: b.Transport(), RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(context.Background(), kafka.Message{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if after := b.Proxy.Stats(); after.Accepted != before.Accepted {
		t.Errorf("the test's own client crossed the proxy: %+v then %+v", before, after)
	}
	// A client bootstrapped through the proxy, with no rewriting, produces
	// through it.
	w = &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: "t", Transport: &kafka.Transport{}, RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(context.Background(), kafka.Message{Value: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if s := b.Proxy.Stats(); s.BytesUp == 0 || s.Accepted == before.Accepted {
		t.Errorf("a plain client did not cross the proxy: %+v", s)
	}
	// Late produce acknowledgements delay the producer, and resetting the
	// producers' connections touches no other.
	b.Proxy.SetProduceLatency(300 * time.Millisecond)
	w = &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: "t", Transport: &kafka.Transport{}, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Value: []byte("z")}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := w.WriteMessages(context.Background(), kafka.Message{Value: []byte("z")}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("a produce acknowledged in %v with 300 ms of produce latency", d)
	}
	idle, err := kafka.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := idle.Brokers(); err != nil {
		t.Fatal(err)
	}
	if n := b.Proxy.ResetProducers(); n < 1 {
		t.Errorf("reset %d producer connections, want some", n)
	}
	if _, err := idle.Brokers(); err != nil {
		t.Errorf("a connection that never produced was reset: %v", err)
	}
}

// kafkaFrames finds each request's API key however the stream is cut.
func TestKafkaFrames(t *testing.T) {
	var stream []byte
	for _, k := range []int16{18, 3, 0, 0, 1, 12} {
		body := append([]byte{byte(k >> 8), byte(k)}, bytes.Repeat([]byte{0xff}, int(k)*7+3)...)
		n := len(body)
		stream = append(stream, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		stream = append(stream, body...)
	}
	for cut := 1; cut <= 9; cut++ {
		var f kafkaFrames
		var keys []int16
		for b := stream; len(b) > 0; {
			n := min(cut, len(b))
			f.feed(b[:n], func(k int16) { keys = append(keys, k) })
			b = b[n:]
		}
		if fmt.Sprint(keys) != "[18 3 0 0 1 12]" {
			t.Errorf("cut every %d bytes: keys %v", cut, keys)
		}
	}
}

// The same with a dedicated Apache Kafka broker (RISKMON_KAFKA set: Apache
// Kafka tests are wanted and deploy/local-kafka can start one).
func TestKafkaBehindProxy(t *testing.T) {
	if os.Getenv("RISKMON_KAFKA") == "" {
		t.Skip("set RISKMON_KAFKA to run the Apache Kafka tests")
	}
	b := KafkaBehindProxy(t, 19492)
	for addr, want := range map[string]string{b.Addr: b.Addr, b.Direct: b.Direct} {
		conn, err := kafka.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		brokers, err := conn.Brokers()
		conn.Close()
		if err != nil || len(brokers) != 1 || net.JoinHostPort(brokers[0].Host, strconv.Itoa(brokers[0].Port)) != want {
			t.Errorf("through %s the broker advertises %v (%v), want %s", addr, brokers, err, want)
		}
	}
}
