package stream

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is the in-process Kafka-protocol broker that `riskmon run` starts
// when no brokers are configured (franz-go's kfake). It speaks the Kafka
// protocol on loopback, so any Kafka client (kcat, kafka-go, the Java client)
// can produce to and consume from it. It keeps messages in memory only: it is
// for trying riskmon out and for tests, not for production.
type Embedded struct {
	cluster *kfake.Cluster
	Addr    string
}

// StartEmbedded starts the broker on addr (host:port, loopback) with the
// given topics, each with partitions partitions.
func StartEmbedded(addr string, partitions int, topics ...string) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker address %q: bad port", addr)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, portStr))
		}),
		kfake.SeedTopics(int32(partitions), topics...),
		kfake.AllowAutoTopicCreation(),
	)
	if err != nil {
		return nil, fmt.Errorf("starting the embedded broker on %s: %w", addr, err)
	}
	return &Embedded{cluster: c, Addr: c.ListenAddrs()[0]}, nil
}

// Close stops the broker.
func (e *Embedded) Close() { e.cluster.Close() }
