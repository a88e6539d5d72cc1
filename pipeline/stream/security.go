package stream

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/riskmon/riskmon/config"
)

// Security is how riskmon connects to Kafka: TLS and SASL, as configured.
type Security struct {
	TLS  *tls.Config
	SASL sasl.Mechanism
}

// NewSecurity reads certificates and the SASL password (from its file or
// environment variable). Errors name the setting, never the secret.
func NewSecurity(st config.Stream) (*Security, error) {
	sec := &Security{}
	if t := st.TLS; t.Enabled || t.CAFile != "" || t.CertFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("stream.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("stream.tls.ca_file %s: no PEM certificate in it", t.CAFile)
			}
			cfg.RootCAs = pool
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("stream.tls.cert_file/key_file: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		sec.TLS = cfg
	}
	if s := st.SASL; s.Mechanism != "" {
		var password string
		if s.PasswordFile != "" {
			b, err := os.ReadFile(s.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("stream.sasl.password_file: %w", err)
			}
			password = strings.TrimRight(string(b), "\r\n")
		} else {
			v, ok := os.LookupEnv(s.PasswordEnv)
			if !ok {
				return nil, fmt.Errorf("stream.sasl.password_env: variable %s is not set", s.PasswordEnv)
			}
			password = v
		}
		var err error
		switch s.Mechanism {
		case "PLAIN":
			sec.SASL = plain.Mechanism{Username: s.Username, Password: password}
		case "SCRAM-SHA-256":
			sec.SASL, err = scram.Mechanism(scram.SHA256, s.Username, password)
		case "SCRAM-SHA-512":
			sec.SASL, err = scram.Mechanism(scram.SHA512, s.Username, password)
		}
		if err != nil {
			return nil, fmt.Errorf("stream.sasl: %w", err)
		}
	}
	return sec, nil
}

// dialer is a kafka-go dialer with the security settings (nil: plaintext).
func (s *Security) dialer() *kafka.Dialer {
	d := &kafka.Dialer{Timeout: 5 * time.Second, DualStack: true}
	if s != nil {
		d.TLS, d.SASLMechanism = s.TLS, s.SASL
	}
	return d
}

// transport is a kafka-go transport of its own (its topic metadata is not
// the default transport's, cached for 6 s and shared with every writer of
// the process), with the security settings.
func (s *Security) transport() *kafka.Transport {
	t := &kafka.Transport{}
	if s != nil {
		t.TLS, t.SASL = s.TLS, s.SASL
	}
	return t
}

// client is a kafka-go client on brokers with a transport of its own
// (transport); done closes the transport's idle connections.
func (s *Security) client(brokers []string, timeout time.Duration) (c *kafka.Client, done func()) {
	tr := s.transport()
	return &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: timeout}, tr.CloseIdleConnections
}
