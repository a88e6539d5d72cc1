// Package config is riskmon's detector configuration: the YAML schema, the
// embedded default, strict decoding that reports every problem with its line,
// validation, and the ruleset identifier (name and content hash).
//
// A Config is an immutable value once Load returns it: the engine swaps whole
// configurations, it never edits one in place.
package config

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/riskmon/riskmon/declaration"
)

//go:embed default.yml
var defaultYAML []byte

// DefaultYAML returns the built-in configuration's source.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is one detector configuration (a ruleset).
type Config struct {
	Name      string              `yaml:"name"`
	State     State               `yaml:"state"`
	Engine    Engine              `yaml:"engine"`
	Scoring   Scoring             `yaml:"scoring"`
	Random    Random              `yaml:"random"`
	Model     Model               `yaml:"model"`
	Lists     map[string][]string `yaml:"lists"`
	Detectors []Detector          `yaml:"detectors"`
	// Stream holds stream-mode settings (brokers, topics, addresses). They
	// do not change what the detectors compute, so they are left out of the
	// ruleset id.
	Stream Stream `yaml:"stream"`

	// Ruleset is "name@hash": the hash covers the configuration's content
	// (comments and formatting excluded), so two files that configure the
	// same thing share an id and any change of meaning changes it.
	Ruleset string `yaml:"-"`
	// Source is the file name, or "built-in" for the embedded default.
	Source string `yaml:"-"`
	dec    *Decoder
}

// State bounds the detectors' per-entity memory.
type State struct {
	// CapacityMB caps the per-entity records (an importer's behaviour, a
	// party's inspection counts), updated in place; beyond it, old and
	// unused records are evicted first, and counted.
	CapacityMB int `yaml:"capacity_mb"`
	// PendingMB caps the records of assessed declarations kept until their
	// outcomes arrive (a ring: the oldest go first). fastcache's minimum is
	// 32.
	PendingMB int `yaml:"pending_mb"`
	// PendingDir keeps the records of assessed declarations on disk, in
	// this directory, instead of in memory: an append-only log capped at
	// PendingMB, with only an index in memory (about 40 bytes a record),
	// for outcome windows longer than memory holds. "" keeps them in
	// memory.
	PendingDir string `yaml:"pending_dir"`
	// SharedEntries caps the statistics kept in memory apart from the store
	// because nearly every declaration reads and updates them: peer-group
	// price and mass baselines (928 bytes each) and inspection-history
	// records (12 bytes each).
	SharedEntries int `yaml:"shared_entries"`
}

// Stream is the stream mode's connection and processing settings. Each can
// also be set by a flag of `riskmon run` and by an environment variable
// (RISKMON_ + the flag name in upper case, '-' as '_'), which win in that
// order: flag, environment, file.
type Stream struct {
	Brokers           []string `yaml:"brokers"`         // none: start the embedded broker
	EmbeddedBroker    string   `yaml:"embedded_broker"` // address of the embedded broker
	DeclarationsTopic string   `yaml:"declarations_topic"`
	OutcomesTopic     string   `yaml:"outcomes_topic"`
	AssessmentsTopic  string   `yaml:"assessments_topic"`
	DeadLetterTopic   string   `yaml:"dead_letter_topic"`
	// ChangelogTopic receives the state riskmon keeps about each importer,
	// on the partition of the importer's declarations (compacted: the latest
	// value of each key), so that an instance that is given a partition
	// another instance held restores that state before it reads the
	// partition. Empty: GROUP-changelog; "none": no changelog and no pending
	// topic (a partition that moves arrives without its importers' history).
	ChangelogTopic string `yaml:"changelog_topic"`
	// PendingTopic receives, beside the changelog, the records of each
	// assessed declaration kept until its outcome arrives, on the same
	// partition: a topic of its own so that its retention (delete, after
	// PendingRetentionHours) bounds it, where the changelog keeps each key
	// forever. Empty: GROUP-pending; "none": they go to the changelog.
	PendingTopic string `yaml:"pending_topic"`
	// PendingRetentionHours is the pending topic's retention.ms when riskmon
	// creates it (create_topics): longer than the longest time from
	// assessment to outcome, or a failover loses the records of the
	// declarations whose outcomes come later.
	PendingRetentionHours int    `yaml:"pending_retention_hours"`
	Group                 string `yaml:"group"`
	MetricsAddr           string `yaml:"metrics_addr"`
	// CreateTopics creates missing topics at start-up with Partitions
	// partitions and ReplicationFactor replicas.
	CreateTopics      bool `yaml:"create_topics"`
	Partitions        int  `yaml:"partitions"`
	ReplicationFactor int  `yaml:"replication_factor"`
	// Workers assess declarations in parallel, each owning the importers
	// that hash to it; 0 (the default) is one per core (GOMAXPROCS). One
	// worker gives exactly `replay --batch 1`'s results on a single
	// partition; more interleave updates of shared statistics by arrival.
	Workers int `yaml:"workers"`
	// LingerMS: how long the producer waits to fill a batch (kafka-go's
	// default of 1 s is far too slow for a clearance decision); 0: no wait.
	LingerMS int `yaml:"linger_ms"`
	// BatchMessages caps the messages of one produce batch (kafka-go's
	// BatchSize). kafka-go reserves room for that many in every batch
	// however few it holds, and writes one batch of a partition at a time.
	BatchMessages int `yaml:"batch_messages"`
	// CommitIntervalMS: how often acknowledged offsets are committed.
	CommitIntervalMS int `yaml:"commit_interval_ms"`
	// ShutdownSeconds bounds a graceful shutdown.
	ShutdownSeconds int `yaml:"shutdown_seconds"`
	// StateDir, when set, holds checkpoints of the detectors' learned state:
	// written every CheckpointSeconds after an offset commit and at
	// shutdown, and restored at start-up when learned under the same ruleset.
	StateDir          string `yaml:"state_dir"`
	CheckpointSeconds int    `yaml:"checkpoint_seconds"`
	// StallSeconds: a partition this instance holds that has messages to
	// read and has given none for this long makes it unready (a stalled
	// fetch, which the broker probe and the group membership do not see).
	StallSeconds int    `yaml:"stall_seconds"`
	LogFormat    string `yaml:"log_format"` // json or console
	LogLevel     string `yaml:"log_level"`  // debug, info, warn, error
	// WebConfigFile protects the metrics endpoint with TLS and/or basic auth,
	// in the format of prometheus/exporter-toolkit (--web.config.file).
	WebConfigFile string `yaml:"web_config_file"`
	TLS           TLS    `yaml:"tls"`
	SASL          SASL   `yaml:"sasl"`
}

// TLS secures the connections to Kafka.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`   // custom CA (PEM); default: the system's
	CertFile           string `yaml:"cert_file"` // client certificate (PEM), optional
	KeyFile            string `yaml:"key_file"`  // its key (PEM)
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL authenticates to Kafka. The password comes from a file or an
// environment variable, never from this file, and is never logged.
type SASL struct {
	Mechanism    string `yaml:"mechanism"` // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: none
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"` // name of the variable holding it
}

// Engine holds processing settings shared by all modes.
type Engine struct {
	// MaxMessageBytes: a larger declaration or outcome is refused (dead letter).
	MaxMessageBytes int `yaml:"max_message_bytes"`
}

// Scoring turns findings into a score and a channel.
type Scoring struct {
	Yellow float64 `yaml:"yellow"` // score at or above which the channel is yellow
	Red    float64 `yaml:"red"`    // score at or above which the channel is red
	// AEOFactor multiplies the score of Authorised Economic Operators.
	AEOFactor float64 `yaml:"aeo_factor"`
	// AEOList names a list of importer ids the administration has certified;
	// they get the AEO factor whatever their declaration says.
	AEOList string `yaml:"aeo_list"`
	// TrustDeclaredAEO: also believe the declaration's importer.aeo flag.
	TrustDeclaredAEO bool        `yaml:"trust_declared_aeo"`
	Calibration      Calibration `yaml:"calibration"`
	// Rates, when set, are inspection-rate targets that replace the fixed
	// thresholds: see Rates.
	Rates *Rates `yaml:"rates"`
}

// Rates hold the inspection load at the officers' capacity: the red and
// yellow thresholds become quantiles of recent scores, so that about Red of
// all declarations go red and Yellow yellow by score or profile (random
// compliance picks come on top and are counted apart), whatever the score
// scale does. Until MinDeclarations have been seen, and whenever a target
// is 0, the fixed thresholds (scoring.yellow, scoring.red) apply.
type Rates struct {
	Red    float64 `yaml:"red"`    // share of declarations to send red, in [0, 1)
	Yellow float64 `yaml:"yellow"` // share to send yellow, in [0, 1)
	// Window is about how many recent declarations the quantiles are taken
	// over: counts decay, halving every Window/2 declarations.
	Window          int `yaml:"window"`
	MinDeclarations int `yaml:"min_declarations"`
}

func (r *Rates) setDefaults() { *r = Rates{Window: 5000, MinDeclarations: 1000} }

// SetRates sets the inspection-rate targets (the --red-rate and
// --yellow-rate flags; negative: leave that target as configured), with
// the section's defaults when the configuration has none, and validates the
// result.
func (c *Config) SetRates(red, yellow float64) error {
	if red < 0 && yellow < 0 {
		return nil
	}
	if c.Scoring.Rates == nil {
		c.Scoring.Rates = &Rates{}
		c.Scoring.Rates.setDefaults()
	}
	if red >= 0 {
		c.Scoring.Rates.Red = red
	}
	if yellow >= 0 {
		c.Scoring.Rates.Yellow = yellow
	}
	c.dec = NewDecoder()
	c.validate()
	if len(c.dec.Problems) > 0 {
		return c.dec.Problems
	}
	// The ruleset id names what set the channels: the file's content, and
	// the targets given on the command line.
	if i := strings.Index(c.Ruleset, "+rates:"); i >= 0 {
		c.Ruleset = c.Ruleset[:i]
	}
	c.Ruleset += fmt.Sprintf("+rates:%g/%g", c.Scoring.Rates.Red, c.Scoring.Rates.Yellow)
	return nil
}

// Calibration makes detectors' strengths comparable (see pipeline/engine/calibrate.go).
type Calibration struct {
	Enabled bool `yaml:"enabled"`
	// FullTail is the rarity that earns strength 1 (0.001: a finding as
	// strong as this one on 1 declaration in 1,000).
	FullTail float64 `yaml:"full_tail"`
	// MinDeclarations seen before calibrated strengths are used.
	MinDeclarations int `yaml:"min_declarations"`
}

// Model is the learned risk model: gradient-boosted trees trained on
// inspection outcomes, over the detectors' strengths, the smoothed hit rates
// of the entities a declaration names and the declaration's own figures.
type Model struct {
	Enabled bool `yaml:"enabled"`
	// File starts from a model trained by `riskmon train` (empty: learn
	// from the outcomes as they arrive).
	File string `yaml:"file"`
	// MinLabels: outcomes needed before the first training.
	MinLabels int `yaml:"min_labels"`
	// The model is retrained when the labels seen have grown by
	// RetrainGrowth (a share) since the last training, or by RetrainLabels,
	// whichever comes first.
	RetrainGrowth float64 `yaml:"retrain_growth"`
	RetrainLabels int     `yaml:"retrain_labels"`
	// Window: the most recent labelled declarations kept for training.
	Window int `yaml:"window"`
	// Prior: pseudo-inspections at the overall hit rate that smooth each
	// entity's hit rate.
	Prior float64 `yaml:"prior"`
	// MaxWeight caps the inverse selection-probability weight of one outcome.
	MaxWeight float64 `yaml:"max_weight"`
	// BlendHits sets how fast the model takes over from the rule score: its
	// weight in the blend (in log-odds) is hits / (hits + blend_hits), with
	// hits the (weighted) hits it was trained on.
	BlendHits float64 `yaml:"blend_hits"`
	// RankBy: "probability" (score = 100 × P(hit)) or "expected_revenue"
	// (P(hit) × the revenue a hit on such a declaration yields).
	RankBy string `yaml:"rank_by"`
	// The trees.
	Trees               int     `yaml:"trees"`
	Depth               int     `yaml:"depth"`
	LearningRate        float64 `yaml:"learning_rate"`
	L2                  float64 `yaml:"l2"`
	MinLeafWeight       float64 `yaml:"min_leaf_weight"`
	Bins                int     `yaml:"bins"`
	EarlyStoppingRounds int     `yaml:"early_stopping_rounds"`
	ValidationShare     float64 `yaml:"validation_share"`
}

// Random is compliance sampling: a share of declarations is selected
// regardless of score, so that hit rates measured on it are unbiased.
type Random struct {
	Rate    float64 `yaml:"rate"`
	Channel string  `yaml:"channel"`
	// Salt changes which declarations are drawn without changing how many.
	Salt string `yaml:"salt"`
}

// Detector is one configured detector instance.
type Detector struct {
	Name    string   `yaml:"name"`
	Kind    string   `yaml:"kind"`
	Enabled *bool    `yaml:"enabled"`
	Weight  *float64 `yaml:"weight"`
	// Calibrate maps the detector's strengths to tail probabilities learned
	// from the stream (see scoring.calibration); default true, except for
	// profile detectors, whose points are the analyst's.
	Calibrate *bool     `yaml:"calibrate"`
	Params    yaml.Node `yaml:"params"`

	// Decoded is the kind's parameter struct, decoded from Params and
	// validated, with the kind's defaults for keys left out.
	Decoded any `yaml:"-"`
}

// Kind is what a detector kind declares once about its configuration: its
// parameter struct with defaults filled in. If the struct has a method
// Validate(*ParamsContext), it is called after decoding.
type Kind struct {
	Name          string
	DefaultWeight float64
	NewParams     func() any
	// Build is the detectors package's constructor for the kind, kept here
	// so that there is one registry of kinds; config never calls it.
	Build any
}

var kinds = map[string]Kind{}

// RegisterKind makes a detector kind known to configuration decoding. Kinds
// register themselves from their package's init.
func RegisterKind(k Kind) {
	if _, dup := kinds[k.Name]; dup {
		panic("config: detector kind registered twice: " + k.Name)
	}
	kinds[k.Name] = k
}

// LookupKind returns a registered detector kind.
func LookupKind(name string) (Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// KindNames lists the registered detector kinds, sorted.
func KindNames() []string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParamsContext is handed to a parameter struct's Validate method.
type ParamsContext struct {
	Config *Config
	Path   string // "detectors[2].params"
}

// Problemf reports a problem at key (relative to the params block).
func (pc *ParamsContext) Problemf(key, format string, args ...any) {
	pc.Config.dec.Problemf(pc.Path+"."+key, format, args...)
}

// List returns the named list and whether it exists.
func (pc *ParamsContext) List(name string) ([]string, bool) {
	l, ok := pc.Config.Lists[name]
	return l, ok
}

// IsEnabled reports whether the detector runs (default true).
func (d *Detector) IsEnabled() bool { return d.Enabled == nil || *d.Enabled }

// EnabledDetectors is how many of the configuration's detectors run.
func (c *Config) EnabledDetectors() int {
	n := 0
	for i := range c.Detectors {
		if c.Detectors[i].IsEnabled() {
			n++
		}
	}
	return n
}

// defaults are set before decoding, so a Config is never half-filled.
func defaults() *Config {
	return &Config{
		State:  State{CapacityMB: 64, PendingMB: 64, SharedEntries: 200000},
		Engine: Engine{MaxMessageBytes: 1 << 20},
		Scoring: Scoring{Yellow: 40, Red: 70, AEOFactor: 0.7, TrustDeclaredAEO: true,
			Calibration: Calibration{Enabled: true, FullTail: 0.001, MinDeclarations: 1000}},
		Random: Random{Rate: 0.01, Channel: "red"},
		Model: Model{Enabled: true, MinLabels: 500, RetrainGrowth: 0.5, RetrainLabels: 20000, Window: 200000, Prior: 5,
			MaxWeight: 1, BlendHits: 200, RankBy: "probability", Trees: 200, Depth: 6, LearningRate: 0.05, L2: 1, MinLeafWeight: 5,
			Bins: 64, EarlyStoppingRounds: 20, ValidationShare: 0.2},
		Stream: Stream{EmbeddedBroker: "127.0.0.1:9092", DeclarationsTopic: "declarations", OutcomesTopic: "outcomes",
			AssessmentsTopic: "assessments", DeadLetterTopic: "dead-letters", Group: "riskmon", MetricsAddr: "127.0.0.1:9740",
			CreateTopics: true, Partitions: 1, ReplicationFactor: 1, Workers: 0, LingerMS: 2, BatchMessages: 100, CommitIntervalMS: 500,
			ShutdownSeconds: 15, CheckpointSeconds: 60, StallSeconds: 120, PendingRetentionHours: 720, LogFormat: "json", LogLevel: "info"},
	}
}

// Default returns the built-in configuration.
func Default() *Config {
	c, err := Parse(defaultYAML, "built-in")
	if err != nil {
		panic("built-in configuration is invalid: " + err.Error())
	}
	return c
}

// Load reads and parses a configuration file; an empty path means the
// built-in default.
func Load(path string) (*Config, error) {
	if path == "" {
		return Parse(defaultYAML, "built-in")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, path)
}

// Parse decodes and validates a configuration. The error is Problems when the
// content is at fault; detector parameters are decoded by their kind's schema
// (see RegisterKind) and checked in the same pass.
func Parse(b []byte, source string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		// "yaml: line 3: did not find …": the line is the problem's own.
		msg := yamlLinePrefix.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")
		return nil, Problems{{Line: yamlErrLine(err), Key: "(file)", Msg: "not valid YAML: " + msg}}
	}
	c := defaults()
	c.Source = source
	c.dec = NewDecoder()
	if root.Kind == 0 {
		c.dec.Problemf("(file)", "is empty")
	} else {
		c.dec.Decode(&root, c, "")
	}
	c.validate()
	if len(c.dec.Problems) > 0 {
		c.dec.Problems.Sort()
		return nil, c.dec.Problems
	}
	c.Ruleset = c.Name + "@" + contentHash(&root)
	return c, nil
}

var (
	yamlLineRe     = regexp.MustCompile(`line (\d+)`)
	yamlLinePrefix = regexp.MustCompile(`^line \d+: `)
)

func yamlErrLine(err error) int {
	var n int
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &n)
	}
	return n
}

// contentHash hashes the document re-encoded without comments, in block
// style and with every scalar but null as its text, so that editing a
// comment, the layout or the quoting keeps the ruleset id. The
// stream section (deployment settings) is left out, and of
// state.pending_dir only that there is one: where the records are kept
// changes what the cap holds, the directory's name nothing.
func contentHash(doc *yaml.Node) string {
	root := copyNode(doc) // the detectors' parameters are decoded from doc later
	stripComments(root)
	if len(root.Content) == 1 && root.Content[0].Kind == yaml.MappingNode {
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "stream" {
				m.Content = append(m.Content[:i:i], m.Content[i+2:]...)
				i -= 2
				continue
			}
			if st := m.Content[i+1]; m.Content[i].Value == "state" && st.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(st.Content); j += 2 {
					if v := st.Content[j+1]; st.Content[j].Value == "pending_dir" && v.Value != "" && v.Tag != "!!null" {
						v.Value, v.Tag, v.Style = "on disk", "!!str", 0
					}
				}
			}
		}
	}
	b, err := yaml.Marshal(root)
	if err != nil {
		panic(err) // a tree yaml.v3 just parsed always re-encodes
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

// copyNode copies a node tree (an alias still points into the original).
func copyNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = copyNode(k)
	}
	return &c
}

func stripComments(n *yaml.Node) {
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	// Quoting is layout too: x, "x" and 'x' are one string, and 2402 and
	// "2402" one HS prefix (the decoder reads each by its field's type, and
	// refuses a quoted number where a number is due). So every scalar but
	// null is hashed as its text; null stays apart (pending_dir: ~ is in
	// memory, "~" a directory).
	n.Style &^= yaml.FlowStyle | yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		stripComments(c)
	}
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func (c *Config) validate() {
	d := c.dec
	if c.Name == "" {
		d.Problemf("name", "is required: 1-63 letters, digits, '_', '.' or '-'")
	} else if !nameRe.MatchString(c.Name) {
		d.Problemf("name", "must be 1-63 letters, digits, '_', '.' or '-', got %q", c.Name)
	}
	if c.State.CapacityMB < 1 {
		d.Problemf("state.capacity_mb", "must be >= 1, got %d", c.State.CapacityMB)
	}
	if c.State.PendingMB < 32 {
		d.Problemf("state.pending_mb", "must be >= 32, got %d", c.State.PendingMB)
	}
	if c.State.SharedEntries < 1000 {
		d.Problemf("state.shared_entries", "must be >= 1000, got %d", c.State.SharedEntries)
	}
	if c.Engine.MaxMessageBytes < 1024 {
		d.Problemf("engine.max_message_bytes", "must be >= 1024, got %d", c.Engine.MaxMessageBytes)
	}
	s := c.Scoring
	if s.Yellow <= 0 || s.Yellow > 100 {
		d.Problemf("scoring.yellow", "must be in (0, 100], got %g", s.Yellow)
	}
	if s.Red <= 0 || s.Red > 100 {
		d.Problemf("scoring.red", "must be in (0, 100], got %g", s.Red)
	} else if s.Red < s.Yellow {
		d.Problemf("scoring.red", "must be >= scoring.yellow (%g), got %g", s.Yellow, s.Red)
	}
	if r := s.Rates; r != nil {
		if r.Red < 0 || r.Red >= 1 {
			d.Problemf("scoring.rates.red", "must be in [0, 1), got %g", r.Red)
		}
		if r.Yellow < 0 || r.Yellow >= 1 {
			d.Problemf("scoring.rates.yellow", "must be in [0, 1), got %g", r.Yellow)
		} else if r.Red+r.Yellow >= 1 {
			d.Problemf("scoring.rates.yellow", "scoring.rates.red + yellow must be < 1, got %g", r.Red+r.Yellow)
		}
		if r.Window < 1000 {
			d.Problemf("scoring.rates.window", "must be >= 1000, got %d", r.Window)
		}
		if r.MinDeclarations < 0 {
			d.Problemf("scoring.rates.min_declarations", "must be >= 0, got %d", r.MinDeclarations)
		}
	}
	if s.AEOFactor < 0 || s.AEOFactor > 1 {
		d.Problemf("scoring.aeo_factor", "must be in [0, 1], got %g", s.AEOFactor)
	}
	if c := s.Calibration; c.FullTail <= 0 || c.FullTail >= 0.5 {
		d.Problemf("scoring.calibration.full_tail", "must be in (0, 0.5), got %g", c.FullTail)
	}
	if s.Calibration.MinDeclarations < 0 {
		d.Problemf("scoring.calibration.min_declarations", "must be >= 0, got %d", s.Calibration.MinDeclarations)
	}
	if s.AEOList != "" {
		if _, ok := c.Lists[s.AEOList]; !ok {
			d.Problemf("scoring.aeo_list", "names list %q, which is not defined under lists", s.AEOList)
		}
	}
	if c.Random.Rate < 0 || c.Random.Rate > 1 {
		d.Problemf("random.rate", "must be in [0, 1], got %g", c.Random.Rate)
	}
	if _, ok := declaration.ParseChannel(c.Random.Channel); !ok || c.Random.Channel == "green" {
		d.Problemf("random.channel", "must be yellow or red, got %q", c.Random.Channel)
	}
	c.Model.validate(d)
	c.Stream.validate(d)
	for name := range c.Lists {
		if !nameRe.MatchString(name) {
			d.Problemf("lists."+name, "list names must be letters, digits, '_', '.' or '-'")
		}
	}
	seen := map[string]int{}
	for i := range c.Detectors {
		det := &c.Detectors[i]
		p := fmt.Sprintf("detectors[%d]", i)
		if det.Name == "" {
			d.Problemf(p+".name", "is required: 1-63 letters, digits, '_', '.' or '-'")
		} else if !nameRe.MatchString(det.Name) {
			d.Problemf(p+".name", "must be 1-63 letters, digits, '_', '.' or '-', got %q", det.Name)
		} else if j, dup := seen[det.Name]; dup {
			d.Problemf(p+".name", "%q is already the name of detectors[%d]", det.Name, j)
		} else {
			seen[det.Name] = i
		}
		if det.Kind == "" {
			d.Problemf(p+".kind", "is required")
		}
		if det.Weight != nil && (*det.Weight < 0 || *det.Weight > 100) {
			d.Problemf(p+".weight", "must be in [0, 100], got %g", *det.Weight)
		}
		if det.Kind == "" {
			continue
		}
		k, ok := kinds[det.Kind]
		if !ok {
			d.Problemf(p+".kind", "unknown detector kind %q (known kinds: %s)", det.Kind, strings.Join(KindNames(), ", "))
			continue
		}
		params := k.NewParams()
		if det.Params.Kind != 0 {
			d.Decode(&det.Params, params, p+".params")
		}
		if v, ok := params.(interface{ Validate(*ParamsContext) }); ok {
			v.Validate(&ParamsContext{Config: c, Path: p + ".params"})
		}
		det.Decoded = params
	}
}

// WeightOr returns the configured weight, or def when none is set.
func (d *Detector) WeightOr(def float64) float64 {
	if d.Weight == nil {
		return def
	}
	return *d.Weight
}

// Validate checks stream settings; it is called by Parse and again after
// flags and environment variables have been applied.
func (st *Stream) Validate() error {
	d := NewDecoder()
	st.validate(d)
	if len(d.Problems) > 0 {
		return d.Problems
	}
	return nil
}

func (st *Stream) validate(d *Decoder) {
	for k, v := range map[string]string{"stream.declarations_topic": st.DeclarationsTopic, "stream.outcomes_topic": st.OutcomesTopic,
		"stream.assessments_topic": st.AssessmentsTopic, "stream.dead_letter_topic": st.DeadLetterTopic, "stream.group": st.Group,
		"stream.embedded_broker": st.EmbeddedBroker, "stream.metrics_addr": st.MetricsAddr} {
		if v == "" {
			d.Problemf(k, "must not be empty")
		}
	}
	for k, v := range map[string]int{"stream.partitions": st.Partitions, "stream.replication_factor": st.ReplicationFactor,
		"stream.commit_interval_ms": st.CommitIntervalMS, "stream.shutdown_seconds": st.ShutdownSeconds,
		"stream.checkpoint_seconds": st.CheckpointSeconds, "stream.stall_seconds": st.StallSeconds,
		"stream.pending_retention_hours": st.PendingRetentionHours} {
		if v < 1 {
			d.Problemf(k, "must be >= 1, got %d", v)
		}
	}
	// The four topics of the wire contract are four topics (assessments
	// written to the declarations topic would be read back as
	// declarations), and the topics riskmon writes state to (below) must be
	// topics of their own.
	others := map[string]string{} // topic: its key
	for _, n := range []struct{ key, topic string }{{"declarations_topic", st.DeclarationsTopic}, {"outcomes_topic", st.OutcomesTopic},
		{"assessments_topic", st.AssessmentsTopic}, {"dead_letter_topic", st.DeadLetterTopic}} {
		if k, dup := others[n.topic]; dup && n.topic != "" {
			d.Problemf("stream."+n.key, "%q is also stream.%s", n.topic, k)
			continue
		}
		others[n.topic] = n.key
	}
	if cl := st.Changelog(); cl != "" {
		if k, ok := others[cl]; ok {
			d.Problemf("stream.changelog_topic", "%q is also stream.%s", cl, k)
		}
		if p := st.Pending(); p != cl {
			others[cl] = "changelog_topic"
			if k, ok := others[p]; ok {
				d.Problemf("stream.pending_topic", "%q is also stream.%s", p, k)
			}
		} else if st.PendingTopic != "none" {
			d.Problemf("stream.pending_topic", "%q is also stream.changelog_topic (none keeps the declarations' records in the changelog)", p)
		}
	}
	if st.Workers < 0 {
		d.Problemf("stream.workers", "must be >= 0 (0: one per core), got %d", st.Workers)
	}
	if st.LingerMS < 0 {
		d.Problemf("stream.linger_ms", "must be >= 0, got %d", st.LingerMS)
	}
	if st.BatchMessages < 1 {
		d.Problemf("stream.batch_messages", "must be >= 1, got %d", st.BatchMessages)
	}
	switch st.SASL.Mechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if st.SASL.Username == "" {
			d.Problemf("stream.sasl.username", "is required with mechanism %s", st.SASL.Mechanism)
		}
		if (st.SASL.PasswordFile == "") == (st.SASL.PasswordEnv == "") {
			d.Problemf("stream.sasl.password_file", "set exactly one of password_file and password_env")
		}
	default:
		d.Problemf("stream.sasl.mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", st.SASL.Mechanism)
	}
	if (st.TLS.CertFile == "") != (st.TLS.KeyFile == "") {
		d.Problemf("stream.tls.cert_file", "cert_file and key_file go together")
	}
	if st.LogFormat != "json" && st.LogFormat != "console" {
		d.Problemf("stream.log_format", "must be json or console, got %q", st.LogFormat)
	}
	switch st.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		d.Problemf("stream.log_level", "must be debug, info, warn or error, got %q", st.LogLevel)
	}
}

func (m *Model) validate(d *Decoder) {
	for k, v := range map[string]int{"min_labels": m.MinLabels, "retrain_labels": m.RetrainLabels, "trees": m.Trees} {
		if v < 1 {
			d.Problemf("model."+k, "must be >= 1, got %d", v)
		}
	}
	if m.Window < m.MinLabels || m.Window < 100 {
		d.Problemf("model.window", "must be >= 100 and >= model.min_labels (%d), got %d", m.MinLabels, m.Window)
	}
	if m.RetrainGrowth <= 0 {
		d.Problemf("model.retrain_growth", "must be > 0, got %g", m.RetrainGrowth)
	}
	if m.Prior <= 0 {
		d.Problemf("model.prior", "must be > 0, got %g", m.Prior)
	}
	if m.BlendHits < 0 {
		d.Problemf("model.blend_hits", "must be >= 0, got %g", m.BlendHits)
	}
	if m.MaxWeight < 1 {
		d.Problemf("model.max_weight", "must be >= 1, got %g", m.MaxWeight)
	}
	if m.RankBy != "probability" && m.RankBy != "expected_revenue" {
		d.Problemf("model.rank_by", "must be probability or expected_revenue, got %q", m.RankBy)
	}
	if m.Depth < 1 || m.Depth > 12 {
		d.Problemf("model.depth", "must be in [1, 12], got %d", m.Depth)
	}
	if m.LearningRate <= 0 || m.LearningRate > 1 {
		d.Problemf("model.learning_rate", "must be in (0, 1], got %g", m.LearningRate)
	}
	if m.L2 < 0 {
		d.Problemf("model.l2", "must be >= 0, got %g", m.L2)
	}
	if m.MinLeafWeight < 0 {
		d.Problemf("model.min_leaf_weight", "must be >= 0, got %g", m.MinLeafWeight)
	} else if m.MinLeafWeight == 0 && m.L2 == 0 {
		d.Problemf("model.min_leaf_weight", "must be > 0 when model.l2 is 0: a leaf with no weight would have no value")
	}
	if m.Bins < 2 || m.Bins > 255 {
		d.Problemf("model.bins", "must be in [2, 255], got %d", m.Bins)
	}
	if m.EarlyStoppingRounds < 0 {
		d.Problemf("model.early_stopping_rounds", "must be >= 0, got %d", m.EarlyStoppingRounds)
	}
	if m.ValidationShare < 0 || m.ValidationShare >= 0.5 {
		d.Problemf("model.validation_share", "must be in [0, 0.5), got %g", m.ValidationShare)
	} else if m.ValidationShare == 0 && m.EarlyStoppingRounds > 0 {
		d.Problemf("model.validation_share", "must be > 0 with early stopping (model.early_stopping_rounds %d): it judges the rounds", m.EarlyStoppingRounds)
	}
}

// Changelog is the changelog topic's name ("" when there is none).
func (s *Stream) Changelog() string {
	switch s.ChangelogTopic {
	case "none":
		return ""
	case "":
		return s.Group + "-changelog"
	}
	return s.ChangelogTopic
}

// Pending is the topic of the declarations' records kept until their
// outcomes: "" without a changelog, the changelog itself when pending_topic
// is none.
func (s *Stream) Pending() string {
	switch {
	case s.Changelog() == "":
		return ""
	case s.PendingTopic == "none":
		return s.Changelog()
	case s.PendingTopic == "":
		return s.Group + "-pending"
	}
	return s.PendingTopic
}

// StateTopic is the topic a state record goes to: a declaration's record
// to the pending topic, every other to the changelog ("" without one).
func (s *Stream) StateTopic(decl bool) string {
	if decl {
		return s.Pending()
	}
	return s.Changelog()
}

// HandoverTopics are the topics of the state handed over with a partition:
// the changelog and the pending topic, each once (none without a
// changelog).
func (s *Stream) HandoverTopics() []string {
	cl, p := s.Changelog(), s.Pending()
	switch {
	case cl == "":
		return nil
	case p == cl:
		return []string{cl}
	}
	return []string{cl, p}
}

// RestartOnly names the settings that differ between a running
// configuration and a reloaded one but are read at start-up only (state.*
// and stream.*, as state.capacity_mb), so that a reload can say they take
// effect at the next restart instead of seeming to apply them.
func RestartOnly(running, reloaded *Config) []string {
	var keys []string
	var walk func(prefix string, a, b reflect.Value)
	walk = func(prefix string, a, b reflect.Value) {
		for i := range a.NumField() {
			name := prefix + "." + strings.Split(a.Type().Field(i).Tag.Get("yaml"), ",")[0]
			fa, fb := a.Field(i), b.Field(i)
			if fa.Kind() == reflect.Struct {
				walk(name, fa, fb)
			} else if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				keys = append(keys, name)
			}
		}
	}
	walk("state", reflect.ValueOf(running.State), reflect.ValueOf(reloaded.State))
	walk("stream", reflect.ValueOf(running.Stream), reflect.ValueOf(reloaded.Stream))
	return keys
}
