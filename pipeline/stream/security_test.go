package stream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// testCA makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, writes the CA and the client's certificate and key to dir, and
// returns the server's TLS configuration, which requires a client
// certificate signed by the CA, and the CA file.
func testCA(t *testing.T, dir string) (*tls.Config, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "riskmon test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, srv, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cli := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "riskmon"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cliDER, err := x509.CreateCertificate(rand.Reader, cli, caCert, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(clientKey)
	os.WriteFile(filepath.Join(dir, "client.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER}), 0o644)
	os.WriteFile(filepath.Join(dir, "client.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}, caFile
}

// Stream mode over TLS with a custom CA and a client certificate, and SASL
// (PLAIN and SCRAM-SHA-512), on a broker that requires all three; the password comes from a file or the
// environment and appears in no log line. A wrong password gets nothing
// through.
func TestStreamTLSAndSASL(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			dir := t.TempDir()
			serverTLS, caFile := testCA(t, dir)
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.Superuser(mech, "riskmon", secret),
				kfake.SeedTopics(1, "d", "o", "a", "dl", "d2", "o2", "a2", "dl2", "riskmon-changelog", "riskmon-fresh-changelog", "riskmon-pending", "riskmon-fresh-pending"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			brokers := c.ListenAddrs()
			pwFile := filepath.Join(dir, "password")
			os.WriteFile(pwFile, []byte(secret+"\n"), 0o600)
			cfg := config.Default()
			cfg.Stream.DeclarationsTopic, cfg.Stream.OutcomesTopic, cfg.Stream.AssessmentsTopic, cfg.Stream.DeadLetterTopic = "d", "o", "a", "dl"
			cfg.Stream.TLS = config.TLS{Enabled: true, CAFile: caFile, CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client.key")}
			cfg.Stream.SASL = config.SASL{Mechanism: mech, Username: "riskmon", PasswordFile: pwFile}
			if mech == "SCRAM-SHA-512" {
				t.Setenv("RISKMON_TEST_KAFKA_PASSWORD", secret)
				cfg.Stream.SASL.PasswordFile, cfg.Stream.SASL.PasswordEnv = "", "RISKMON_TEST_KAFKA_PASSWORD"
			}
			sec, err := NewSecurity(cfg.Stream)
			if err != nil {
				t.Fatal(err)
			}
			e, _ := engine.New(cfg)
			logs := &testkit.SyncBuffer{}
			s := &Stream{Engine: e, Config: cfg.Stream, Metrics: NewMetrics(e), Log: zerolog.New(logs), Security: sec}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx, brokers) }()

			decls, _ := testkit.GenDecls(t, 200, 3)
			w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "d", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
				BatchTimeout: 2 * time.Millisecond, Transport: sec.transport()}
			msgs := keyedMessages(decls)
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				t.Fatal(err)
			}
			w.Close()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "a", Dialer: sec.dialer(), MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
			rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
			n := 0
			for ; n < len(decls); n++ {
				if _, err := r.ReadMessage(rctx); err != nil {
					break
				}
			}
			rcancel()
			r.Close()
			cancel()
			<-done
			if n != len(decls) {
				t.Fatalf("%d of %d assessments over TLS and %s\n%s", n, len(decls), mech, logs.String())
			}
			if strings.Contains(logs.String(), secret) {
				t.Error("the password appears in the log")
			}
			families, _ := s.Metrics.Registry.Gather()
			var mb strings.Builder
			for _, f := range families {
				mb.WriteString(f.String())
			}
			if strings.Contains(mb.String(), secret) || strings.Contains(mb.String(), pwFile) {
				t.Error("the password or its file appears in the metrics")
			}

			// A wrong password: on a fresh group and fresh topics (nothing
			// committed that could hide a stream that never starts), no
			// assessment is produced and the stream is not ready. The same
			// set-up with the right password then assesses everything: the
			// check can fail.
			fresh := cfg.Stream
			fresh.Group, fresh.DeclarationsTopic, fresh.OutcomesTopic, fresh.AssessmentsTopic, fresh.DeadLetterTopic = "riskmon-fresh", "d2", "o2", "a2", "dl2"
			w2 := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "d2", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
				BatchTimeout: 2 * time.Millisecond, Transport: sec.transport()}
			if err := w2.WriteMessages(context.Background(), msgs...); err != nil {
				t.Fatal(err)
			}
			w2.Close()
			// runFor runs the stream for d, or until want assessments are
			// acknowledged.
			runFor := func(password string, d time.Duration, want int) (*Stream, string) {
				t.Helper()
				os.WriteFile(pwFile, []byte(password), 0o600)
				st := fresh
				st.SASL = config.SASL{Mechanism: mech, Username: "riskmon", PasswordFile: pwFile}
				sec2, err := NewSecurity(st)
				if err != nil {
					t.Fatal(err)
				}
				e2, _ := engine.New(cfg)
				logs2 := &testkit.SyncBuffer{}
				s2 := &Stream{Engine: e2, Config: st, Metrics: NewMetrics(e2), Log: zerolog.New(logs2), Security: sec2}
				ctx2, cancel2 := context.WithTimeout(context.Background(), d)
				defer cancel2()
				var acked atomic.Int64
				s2.OnAssessed = func(*declaration.Assessment, *declaration.Declaration, time.Duration) {
					if acked.Add(1) == int64(want) {
						cancel2()
					}
				}
				s2.Run(ctx2, brokers)
				return s2, logs2.String()
			}
			countA2 := func() int {
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "a2", Dialer: sec.dialer(), MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
				defer r.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				n := 0
				for ; ; n++ {
					if _, err := r.ReadMessage(ctx); err != nil {
						return n
					}
				}
			}
			s2, logs2 := runFor("wrong", 5*time.Second, 0)
			if ok, why := s2.ReadyState(); ok {
				t.Errorf("ready with a wrong password: %s", why)
			}
			if strings.Contains(logs2, `"wrong"`) {
				t.Error("the wrong password appears in the log")
			}
			if n := countA2(); n != 0 {
				t.Errorf("%d assessments produced with a wrong password", n)
			}
			runFor(secret, 8*time.Second, len(decls))
			if n := countA2(); n != len(decls) {
				t.Errorf("with the right password on the same fresh group: %d of %d assessments", n, len(decls))
			}
		})
	}
}

// TestStreamKafkaSASLSSL runs stream mode against Apache Kafka configured
// for SASL_SSL (deploy/local-kafka/start-sasl-ssl), with PLAIN and then
// SCRAM-SHA-512, when RISKMON_KAFKA_SASL_SSL names it and RISKMON_KAFKA_CA
// its CA (.ci/run sets both).
func TestStreamKafkaSASLSSL(t *testing.T) {
	addr, ca := os.Getenv("RISKMON_KAFKA_SASL_SSL"), os.Getenv("RISKMON_KAFKA_CA")
	if addr == "" || ca == "" {
		t.Skip("set RISKMON_KAFKA_SASL_SSL=host:port and RISKMON_KAFKA_CA=ca.pem to run (.ci/run does)")
	}
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Setenv("RISKMON_TEST_SASL_PASSWORD", "riskmon-secret")
			h := startStream(t, nil, func(c *config.Config) {
				c.Stream.TLS = config.TLS{Enabled: true, CAFile: ca}
				c.Stream.SASL = config.SASL{Mechanism: mech, Username: "riskmon", PasswordEnv: "RISKMON_TEST_SASL_PASSWORD"}
			}, addr)
			defer h.stop()
			sec := h.stream.Security
			decls, _ := testkit.GenDecls(t, 300, 8)
			w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: h.cfg.Stream.DeclarationsTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
				BatchTimeout: 2 * time.Millisecond, Transport: sec.transport()}
			msgs := keyedMessages(decls)
			if err := WriteMessages(w, msgs...); err != nil {
				t.Fatal(err)
			}
			w.Close()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: h.cfg.Stream.AssessmentsTopic, Dialer: sec.dialer(), MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for i := 0; i < len(decls); i++ {
				if _, err := r.ReadMessage(ctx); err != nil {
					t.Fatalf("read %d of %d assessments over SASL_SSL (%s): %v", i, len(decls), mech, err)
				}
			}
			t.Logf("%d declarations assessed over SASL_SSL with %s on Apache Kafka", len(decls), mech)
		})
	}
}
