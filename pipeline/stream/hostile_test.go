package stream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
)

// hostileCorpus builds malformed messages from valid declarations: truncated
// and broken JSON, wrong types, non-finite and huge numbers, negative masses,
// thousands of items, oversized messages, invalid UTF-8, deep nesting,
// duplicate item lines and duplicate keys, empty messages.
func hostileCorpus(valid [][]byte, limit int) (msgs [][]byte, kinds map[string]int) {
	r := rand.New(rand.NewPCG(7, 7))
	kinds = map[string]int{}
	add := func(kind string, b []byte) {
		msgs = append(msgs, b)
		kinds[kind]++
	}
	pick := func() string { return string(valid[r.IntN(len(valid))]) }
	for i := 0; i < 300; i++ {
		v := pick()
		add("truncated", []byte(v[:1+r.IntN(len(v)-2)]))
	}
	for n := 0; n < 100; {
		v := pick()
		at := 1 + r.IntN(len(v)-2)
		junk := []string{",,", "}", "]", ":", "{{", "\"", "\\u12"}[r.IntN(7)]
		b := []byte(v[:at] + junk + v[at:])
		if json.Valid(b) { // junk inside a string can leave valid JSON: not malformed
			continue
		}
		add("broken", b)
		n++
	}
	wrong := []struct{ from, to string }{
		{`"gross_mass_kg":`, `"gross_mass_kg":"heavy","x":`}, {`"customs_value":`, `"customs_value":[1],"x":`},
		{`"items":[`, `"items":{"a":[`}, {`"importer":{`, `"importer":["`}, {`"line":`, `"line":true,"x":`},
		{`"lodged_at":"`, `"lodged_at":"yesterday","x":"`}, {`"currency":"`, `"currency":"dollars","x":"`},
	}
	for i := 0; i < 210; i++ {
		w := wrong[i%len(wrong)]
		add("wrong type", []byte(strings.Replace(pick(), w.from, w.to, 1)))
	}
	for _, n := range []string{"1e999", "-1e999", "1e400", "123456789e400", "NaN", "Infinity"} {
		for i := 0; i < 20; i++ {
			add("non-finite", []byte(strings.Replace(pick(), `"customs_value":`, `"customs_value":`+n+`,"x":`, 1)))
		}
	}
	for i := 0; i < 100; i++ {
		add("negative mass", []byte(strings.Replace(pick(), `"gross_mass_kg":`, `"gross_mass_kg":-`, 1)))
	}
	item := `{"line":%d,"hs_code":"851713","origin":"CN","gross_mass_kg":1,"customs_value":1}`
	for _, n := range []int{1000, 3000} {
		var b strings.Builder
		b.WriteString(`{"id":"MANY","lodged_at":"2026-11-02T09:14:05Z","office":"O","importer":{"id":"I"},"currency":"USD","items":[`)
		for i := 1; i <= n; i++ {
			if i > 1 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, item, i)
		}
		b.WriteString("]}")
		add("thousands of items", []byte(b.String()))
	}
	for i := 0; i < 3; i++ {
		add("oversized", append([]byte(`{"id":"BIG","pad":"`), append(bytes.Repeat([]byte("x"), limit+100), `"}`...)...))
	}
	for i := 0; i < 100; i++ {
		v := []byte(pick())
		v[10+r.IntN(20)] = 0xff
		add("invalid UTF-8", v)
	}
	for i := 0; i < 50; i++ {
		depth := 400 + r.IntN(5000)
		add("deep nesting", []byte(strings.Repeat(`{"a":`, depth)+"1"+strings.Repeat("}", depth)))
	}
	for i := 0; i < 50; i++ {
		v := pick()
		add("duplicate line", []byte(strings.Replace(v, `"items":[`, `"items":[{"line":1,"hs_code":"851713","origin":"CN","gross_mass_kg":1,"customs_value":1},{"line":1,"hs_code":"851713","origin":"CN","gross_mass_kg":1,"customs_value":1},`, 1)))
	}
	for i := 0; i < 50; i++ {
		add("duplicate key", []byte(strings.Replace(pick(), `"office":`, `"office":"X","office":`, 1)))
	}
	for i := 0; i < 50; i++ {
		add("empty", []byte{})
	}
	for i := 0; i < 20; i++ {
		add("whitespace", []byte("   \n\t "))
	}
	for i := 0; i < 20; i++ {
		add("not an object", []byte([]string{`[]`, `"x"`, `42`, `null`, `true`}[i%5]))
	}
	return msgs, kinds
}

// TestHostileInput sends more than a thousand malformed messages through the
// broker: each one gets a dead letter with a reason, the stream stays up and
// goes on assessing, and memory stays bounded.
func TestHostileInput(t *testing.T) {
	brokers := embeddedOrKafka(t, 1, true)
	_, raw := testkit.GenDecls(t, 400, 31)
	valid := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	const limit = 256 << 10
	corpus, kinds := hostileCorpus(valid, limit)
	h := startStream(t, brokers, func(c *config.Config) { c.Engine.MaxMessageBytes = limit })
	defer h.stop()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: h.cfg.Stream.DeclarationsTopic, Balancer: &kafka.Hash{},
		BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll, BatchBytes: 900 << 10, Transport: &kafka.Transport{}}
	var msgs []kafka.Message
	for _, m := range corpus {
		msgs = append(msgs, kafka.Message{Value: m})
	}
	msgs = append(msgs, kafka.Message{Value: nil}) // a tombstone
	for _, v := range valid[:50] {                 // and valid declarations after it all
		msgs = append(msgs, kafka.Message{Value: v})
	}
	for len(msgs) > 0 {
		n := min(len(msgs), 100)
		if err := WriteMessages(w, msgs[:n]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
	w.Close()
	dls := consume(t, brokers, h.cfg.Stream.DeadLetterTopic, len(corpus)+1, 60*time.Second)
	assessed := consume(t, brokers, h.cfg.Stream.AssessmentsTopic, 50, 30*time.Second)
	reasons := map[string]int{}
	for _, m := range dls {
		var dl struct {
			Reason string `json:"reason"`
			Kind   string `json:"kind"`
		}
		if err := json.Unmarshal(m.Value, &dl); err != nil || dl.Reason == "" {
			t.Fatalf("dead letter without a reason: %s", m.Value)
		}
		reasons[dl.Kind]++
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("sent %d malformed messages (%v) and a tombstone: %d dead letters (by field: %v), %d valid declarations assessed after them; heap in use %.0f MB",
		len(corpus), kinds, len(dls), reasons, len(assessed), float64(ms.HeapInuse)/(1<<20))
	if len(corpus) < 1000 {
		t.Errorf("corpus of %d messages, want at least 1000", len(corpus))
	}
	if ms.HeapInuse > 512<<20 {
		t.Errorf("heap in use %d MB", ms.HeapInuse>>20)
	}
}

// A 10 MB message, on a broker that accepts it: dead-lettered for its size
// with its first 64 KiB and its full size, and the stream goes on.
func TestHugeMessage(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "d", "o", "a", "dl"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "33554432"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	h := startStream(t, brokers, func(cfg *config.Config) {
		cfg.Stream.DeclarationsTopic, cfg.Stream.OutcomesTopic, cfg.Stream.AssessmentsTopic, cfg.Stream.DeadLetterTopic = "d", "o", "a", "dl"
	})
	defer h.stop()
	_, raw := testkit.GenDecls(t, 3, 2)
	huge := append([]byte(`{"id":"HUGE","pad":"`), append(bytes.Repeat([]byte("x"), 10_000_000), `"}`...)...)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "d", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchBytes: 32 << 20, BatchTimeout: 2 * time.Millisecond, Transport: &kafka.Transport{}}
	msgs := []kafka.Message{{Value: huge}}
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		msgs = append(msgs, kafka.Message{Value: l})
	}
	for _, m := range msgs { // one at a time: the huge one alone in its batch
		if err := WriteMessages(w, m); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	dl := consume(t, brokers, "dl", 1, 30*time.Second)[0]
	var d struct {
		Reason    string `json:"reason"`
		Bytes     int    `json:"original_bytes"`
		Truncated bool   `json:"original_truncated"`
		Original  string `json:"original"`
	}
	if err := json.Unmarshal(dl.Value, &d); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Reason, "message of 10000022 bytes is larger than the 1048576-byte limit") || !d.Truncated ||
		d.Bytes != 10000022 || len(d.Original) != declaration.MaxDeadLetterOriginal || len(dl.Value) > 100_000 {
		t.Errorf("dead letter of %d bytes: reason %q, truncated %v, size %d, original %d bytes", len(dl.Value), d.Reason, d.Truncated, d.Bytes, len(d.Original))
	}
	if got := consume(t, brokers, "a", 3, 30*time.Second); len(got) != 3 {
		t.Errorf("%d assessments after the huge message", len(got))
	}
}
