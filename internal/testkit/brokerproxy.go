package testkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// ProxiedBroker is a Kafka broker reached through a fault-injecting Proxy.
//
// A Kafka client uses its bootstrap address only for its first request; it
// then connects to the addresses the broker advertises in its metadata (and
// as group coordinator). So the broker advertises the proxy's address: Addr
// is what the program under test is given, and all its traffic to the broker
// crosses the proxy. The test's own clients (the feed, the read-back) should
// not suffer the faults they inject: Direct reaches the broker without the
// proxy, and Transport and Dialer send every connection meant for the proxy
// straight to the broker.
type ProxiedBroker struct {
	Proxy  *Proxy
	Addr   string // the proxy, which the broker advertises
	Direct string // the broker itself
	Kind   string // "embedded" or "kafka"
}

// dial connects to address, or to the broker itself when address is the
// proxy's.
func (b *ProxiedBroker) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if address == b.Addr {
		address = b.Direct
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

// Transport is a kafka-go transport (for a Writer or a Client) that goes
// around the proxy.
func (b *ProxiedBroker) Transport() *kafka.Transport {
	return &kafka.Transport{Dial: b.dial}
}

// Dialer is a kafka-go dialer (for a Reader or a Conn) that goes around the
// proxy.
func (b *ProxiedBroker) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, DialFunc: b.dial}
}

// KfakeBehindProxy starts an in-process kfake broker (the embedded broker's
// engine) that advertises a proxy in front of it, with the given topics of
// partitions partitions. It hands kfake a listener that accepts on a
// private port but reports the proxy's address, which kfake advertises.
func KfakeBehindProxy(tb testing.TB, partitions int, topics ...string) *ProxiedBroker {
	tb.Helper()
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := StartProxy("127.0.0.1:0", real.Addr().String())
	if err != nil {
		real.Close()
		tb.Fatal(err)
	}
	used := false
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(string, string) (net.Listener, error) {
			if used {
				return nil, fmt.Errorf("KfakeBehindProxy: one broker only")
			}
			used = true
			return advertising{real, p.ln.Addr()}, nil
		}),
		kfake.SeedTopics(int32(partitions), topics...),
		kfake.AllowAutoTopicCreation(),
	)
	if err != nil {
		p.Close()
		real.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close(); c.Close() })
	return &ProxiedBroker{Proxy: p, Addr: p.Addr(), Direct: real.Addr().String(), Kind: "embedded"}
}

// advertising is a listener that reports another address than its own.
type advertising struct {
	net.Listener
	addr net.Addr
}

func (a advertising) Addr() net.Addr { return a.addr }

// KafkaBehindProxy starts a dedicated single-node Apache Kafka broker with
// deploy/local-kafka/start on 127.0.0.1:port (its controller on port+1)
// with a second listener, on port+3, which advertises a proxy on port+2.
// Clients that bootstrap through the proxy stay behind it; clients of the
// first listener (Direct) are not affected. The broker is stopped and its
// data wiped when the test ends. Starting it takes 10–20 s.
func KafkaBehindProxy(tb testing.TB, port int) *ProxiedBroker {
	tb.Helper()
	root, err := repoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	data := filepath.Join(os.TempDir(), fmt.Sprintf("riskmon-kafka-proxied-%d", port))
	extra := filepath.Join(os.TempDir(), fmt.Sprintf("riskmon-kafka-proxied-%d.properties", port))
	h := "127.0.0.1:"
	conf := fmt.Sprintf(`listeners=PLAINTEXT://%[1]s%[2]d,CONTROLLER://%[1]s%[3]d,PROXIED://%[1]s%[5]d
advertised.listeners=PLAINTEXT://%[1]s%[2]d,PROXIED://%[1]s%[4]d
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PROXIED:PLAINTEXT
`, h, port, port+1, port+2, port+3)
	env := append(os.Environ(), "KAFKA_PORT="+strconv.Itoa(port), "KAFKA_DATA_DIR="+data, "KAFKA_EXTRA_CONFIG="+extra)
	script := func(name string, more ...string) ([]byte, error) {
		cmd := exec.Command(filepath.Join(root, "deploy/local-kafka", name))
		cmd.Env = append(env, more...)
		return cmd.CombinedOutput()
	}
	stop := func() {
		script("stop", "KAFKA_WIPE=1")
		os.Remove(extra)
	}
	stop() // a broker left behind by an interrupted run
	if err := os.WriteFile(extra, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	if out, err := script("start"); err != nil {
		stop()
		tb.Fatalf("starting Apache Kafka on port %d: %v\n%s", port, err, out)
	}
	p, err := StartProxy(fmt.Sprintf("%s%d", h, port+2), fmt.Sprintf("%s%d", h, port+3))
	if err != nil {
		stop()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close(); stop() })
	tb.Logf("Apache Kafka on %s%d, behind a proxy on %s (started in %v)", h, port, p.Addr(), time.Since(start).Round(100*time.Millisecond))
	return &ProxiedBroker{Proxy: p, Addr: p.Addr(), Direct: fmt.Sprintf("%s%d", h, port), Kind: "kafka"}
}

// repoRoot is the directory of go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
