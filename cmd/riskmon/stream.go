package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
	"github.com/riskmon/riskmon/pipeline/stream"
	"github.com/riskmon/riskmon/synth"
)

// streamFlags are the settings of the command line (spec: cli.md) that
// override the configuration file. Each may also come from RISKMON_<FLAG>
// ('-' and '.' as '_'); a flag wins over the environment, which wins over
// the file.
type streamFlags struct {
	fs   *flag.FlagSet
	vals map[string]*string
}

// setting is one overridable setting: its flag, its type for --help, where
// it lives in the configuration, and its meaning.
type setting struct {
	name, typ, help string
	field           func(c *config.Config) any // pointer to the configuration field
}

var settings = []setting{
	{"brokers", "list", "Kafka bootstrap brokers, comma-separated (none: start the embedded broker)", func(c *config.Config) any { return &c.Stream.Brokers }},
	{"embedded-broker", "address", "address of the embedded broker", func(c *config.Config) any { return &c.Stream.EmbeddedBroker }},
	{"declarations-topic", "string", "declarations topic", func(c *config.Config) any { return &c.Stream.DeclarationsTopic }},
	{"outcomes-topic", "string", "outcomes topic", func(c *config.Config) any { return &c.Stream.OutcomesTopic }},
	{"assessments-topic", "string", "assessments topic", func(c *config.Config) any { return &c.Stream.AssessmentsTopic }},
	{"dead-letter-topic", "string", "dead-letter topic", func(c *config.Config) any { return &c.Stream.DeadLetterTopic }},
	{"changelog-topic", "string", "compacted topic of per-importer state, handed over with a partition (default GROUP-changelog; none: no changelog)", func(c *config.Config) any { return &c.Stream.ChangelogTopic }},
	{"pending-topic", "string", "topic of the declarations' records until their outcomes, handed over with a partition, deleted after pending_retention_hours (default GROUP-pending; none: in the changelog)", func(c *config.Config) any { return &c.Stream.PendingTopic }},
	{"group", "string", "consumer group", func(c *config.Config) any { return &c.Stream.Group }},
	{"metrics-addr", "address", "metrics and health address", func(c *config.Config) any { return &c.Stream.MetricsAddr }},
	{"workers", "int", "assessment workers, by importer hash (0: one per core; 1: exactly replay --batch 1)", func(c *config.Config) any { return &c.Stream.Workers }},
	{"partitions", "int", "partitions of topics riskmon creates", func(c *config.Config) any { return &c.Stream.Partitions }},
	{"log-format", "string", "json or console", func(c *config.Config) any { return &c.Stream.LogFormat }},
	{"log-level", "string", "debug, info, warn or error", func(c *config.Config) any { return &c.Stream.LogLevel }},
	{"state-dir", "path", "directory for checkpoints of the learned state (none: no checkpoints)", func(c *config.Config) any { return &c.Stream.StateDir }},
	{"web.config.file", "path", "TLS and basic auth for the metrics endpoint, in prometheus/exporter-toolkit's format", func(c *config.Config) any { return &c.Stream.WebConfigFile }},
	{"model", "path", "start from a risk model trained by riskmon train (model.file)", func(c *config.Config) any { return &c.Model.File }},
}

// rateFlags are --red-rate and --yellow-rate (and RISKMON_RED_RATE,
// RISKMON_YELLOW_RATE): inspection-rate targets over the configuration's
// scoring.rates, on run, demo, replay and compare.
type rateFlags struct{ red, yellow *string }

func addRateFlags(fs *flag.FlagSet) *rateFlags {
	return &rateFlags{
		red: fs.String("red-rate", "", "inspection-rate target: share of declarations sent red by score or profile, random picks apart; "+
			"the red threshold follows recent scores (`float` in [0, 1), default scoring.rates.red or fixed thresholds, env RISKMON_RED_RATE)"),
		yellow: fs.String("yellow-rate", "", "inspection-rate target for yellow, as --red-rate (`float` in [0, 1), default scoring.rates.yellow, "+
			"0 when only --red-rate is given, env RISKMON_YELLOW_RATE)"),
	}
}

// apply sets the targets given by flag or environment (a flag wins).
func (rf *rateFlags) apply(c *config.Config) error {
	var given []string // where the values came from, for errors
	get := func(name string, flagVal *string) (float64, error) {
		v, from := *flagVal, "--"+name
		if v == "" {
			v, from = os.Getenv(envName(name)), envName(name)
		}
		if v == "" {
			return -1, nil
		}
		given = append(given, from)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f >= 1 {
			return 0, fmt.Errorf("%s: %q is not a share in [0, 1)", from, v)
		}
		return f, nil
	}
	red, err := get("red-rate", rf.red)
	if err != nil {
		return err
	}
	yellow, err := get("yellow-rate", rf.yellow)
	if err != nil {
		return err
	}
	if err := c.SetRates(red, yellow); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(given, ", "), err)
	}
	return nil
}

func envName(flagName string) string {
	return "RISKMON_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

func addStreamFlags(fs *flag.FlagSet) *streamFlags {
	sf := &streamFlags{fs: fs, vals: map[string]*string{}}
	def := config.Default()
	for _, s := range settings {
		d := formatSetting(s.field(def))
		if d == "" {
			d = "none"
		}
		d = ", default " + d
		if strings.Contains(s.help, "(default ") { // the help says what the empty default means
			d = ""
		}
		// The back-quoted type is what --help shows after the flag's name
		// (the flag is a string so that "not given" can be told apart).
		sf.vals[s.name] = fs.String(s.name, "", fmt.Sprintf("%s (`%s`%s, env %s)", s.help, s.typ, d, envName(s.name)))
	}
	return sf
}

func formatSetting(p any) string {
	switch p := p.(type) {
	case *string:
		return *p
	case *int:
		return strconv.Itoa(*p)
	case *[]string:
		return strings.Join(*p, ",")
	}
	panic(fmt.Sprintf("setting of type %T", p))
}

// apply overlays environment variables, then flags, on the file's settings,
// and validates the result.
func (sf *streamFlags) apply(c *config.Config) error {
	set := map[string]string{}
	from := map[string]string{} // where each value came from, for errors
	for _, s := range settings {
		if v, ok := os.LookupEnv(envName(s.name)); ok {
			set[s.name], from[s.name] = v, envName(s.name)
		}
	}
	sf.fs.Visit(func(f *flag.Flag) {
		if _, ok := sf.vals[f.Name]; ok {
			set[f.Name], from[f.Name] = f.Value.String(), "--"+f.Name
		}
	})
	for _, s := range settings {
		v, ok := set[s.name]
		if !ok {
			continue
		}
		switch p := s.field(c).(type) {
		case *string:
			*p = v
		case *[]string:
			*p = splitList(v)
		case *int:
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a whole number", from[s.name], v)
			}
			*p = n
		}
	}
	if err := c.Stream.Validate(); err != nil {
		// The problems name the file's keys; a value that came from a flag
		// or the environment is named by it too.
		msg := err.Error()
		for _, s := range settings {
			if f, ok := from[s.name]; ok {
				key := "stream." + strings.ReplaceAll(s.name, "-", "_") + ":"
				msg = strings.ReplaceAll(msg, key, f+" ("+strings.TrimSuffix(key, ":")+"):")
			}
		}
		return errors.New(msg)
	}
	return nil
}

// newLogger logs to stderr as JSON, or as zerolog's console format, in colour
// only when stderr is a terminal (not in a file, a pipe or a journal).
func newLogger(st config.Stream) zerolog.Logger {
	level, _ := zerolog.ParseLevel(st.LogLevel)
	var l zerolog.Logger
	if st.LogFormat == "console" {
		l = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly, NoColor: !isTerminal(os.Stderr)})
	} else {
		l = zerolog.New(os.Stderr)
	}
	return l.Level(level).With().Timestamp().Str("service", "riskmon").Logger()
}

// service is a running stream mode: engine, broker (embedded or not),
// metrics server and the stream itself.
type service struct {
	cfg      *config.Config
	log      zerolog.Logger
	engine   *engine.Engine
	stream   *stream.Stream
	brokers  []string
	embedded *stream.Embedded
	http     *http.Server

	// load reads the configuration as at start-up (file, then the flags
	// and environment over it), for reloads; reloadMu serialises them.
	load     func() (*config.Config, error)
	reloadMu sync.Mutex
}

// startService starts the engine, the broker when none is configured, the
// metrics server and the stream. load reads the configuration again for a
// reload (SIGHUP, POST /-/reload, --config.watch).
func startService(ctx context.Context, cfg *config.Config, log zerolog.Logger, load func() (*config.Config, error)) (*service, error) {
	var eng *engine.Engine
	var err error
	if dir := cfg.Stream.StateDir; dir != "" {
		var restored bool
		var why string
		eng, restored, why, err = engine.NewFromState(cfg, dir)
		if err != nil {
			return nil, err
		}
		log.Info().Bool("restored", restored).Str("dir", dir).Msg("detector state: " + why)
	} else if eng, err = engine.New(cfg); err != nil {
		return nil, err
	}
	if note := eng.Store().DeclNote(); note != "" {
		log.Info().Msg("declaration records: " + note)
	}
	st := cfg.Stream
	sec, err := stream.NewSecurity(st)
	if err != nil {
		return nil, err
	}
	sv := &service{cfg: cfg, log: log, engine: eng, brokers: st.Brokers, load: load}
	if len(sv.brokers) == 0 {
		sv.embedded, err = stream.StartEmbedded(st.EmbeddedBroker, st.Partitions, st.DeclarationsTopic, st.OutcomesTopic, st.AssessmentsTopic, st.DeadLetterTopic)
		if err != nil {
			return nil, err
		}
		sv.brokers = []string{sv.embedded.Addr}
		log.Info().Str("address", sv.embedded.Addr).Strs("topics", []string{st.DeclarationsTopic, st.OutcomesTopic, st.AssessmentsTopic, st.DeadLetterTopic}).
			Int("partitions", st.Partitions).Msg("no brokers configured: started the embedded Kafka-protocol broker (in memory, for trying riskmon out)")
	}
	if st.CreateTopics {
		// A broker that is not up yet is waited for, with backoff, rather
		// than the process exiting and being restarted in a loop.
		for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 30*time.Second) {
			err := stream.EnsureTopics(ctx, sv.brokers, st, sec)
			if err == nil {
				break
			}
			log.Error().Err(err).Strs("brokers", sv.brokers).Dur("retry_in", backoff).Msg("cannot reach the brokers to check the topics")
			select {
			case <-ctx.Done():
				sv.close()
				return nil, ctx.Err()
			case <-time.After(backoff):
			}
		}
	}
	// A model restored from the checkpoint has learned since the file was
	// written: it stays, and the file only starts an engine without one.
	if m := eng.Model(); m != nil && cfg.Model.File != "" {
		log.Info().Str("model", m.Name).Str("file", cfg.Model.File).Msg("kept the model restored from the checkpoint; the model file is not loaded")
	} else if err := loadModel(eng, cfg.Model.File); err != nil {
		sv.close()
		return nil, err
	}
	metrics := stream.NewMetrics(eng)
	eng.OnModelTrained(func(t *engine.Trained, err error) {
		switch {
		case err != nil:
			metrics.ModelTrainings.WithLabelValues("failure").Inc()
			log.Error().Err(err).Msg("model training failed; the previous model stays")
		case t.Active:
			metrics.ModelTrainings.WithLabelValues("active").Inc()
			log.Info().Str("model", t.Name).Int("labels", t.Labels).Float64("validation_auc", t.Report.ValidAUC).Msg("model: " + t.String())
		default:
			metrics.ModelTrainings.WithLabelValues("inactive").Inc()
			log.Info().Str("model", t.Name).Int("labels", t.Labels).Float64("validation_auc", t.Report.ValidAUC).Msg("model: " + t.String())
		}
	})
	sv.stream = &stream.Stream{Engine: eng, Config: st, Metrics: metrics, Log: log, Security: sec}
	eng.ObserveDetectors(func(name string, d time.Duration) { metrics.DetectorSeconds.WithLabelValues(name).Observe(d.Seconds()) })

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{Registry: metrics.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, why := sv.stream.ReadyState()
		if !ready {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, why)
	})
	// Prometheus' convention: POST (or PUT) /-/reload does what SIGHUP does.
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST or PUT to reload the configuration", http.StatusMethodNotAllowed)
			return
		}
		atRestart, err := sv.reload("http")
		if err != nil {
			http.Error(w, "configuration reload refused; the running configuration stays: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "configuration reloaded: ruleset", sv.engine.Config().Ruleset)
		if len(atRestart) > 0 {
			fmt.Fprintln(w, "read at start-up only, these take effect at the next restart:", strings.Join(atRestart, ", "))
		}
	})
	ln, err := net.Listen("tcp", st.MetricsAddr)
	if err != nil {
		sv.close()
		return nil, fmt.Errorf("metrics address %s: %w", st.MetricsAddr, err)
	}
	sv.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if st.WebConfigFile != "" {
		if err := web.Validate(st.WebConfigFile); err != nil {
			ln.Close()
			sv.close()
			return nil, fmt.Errorf("--web.config.file %s: %w", st.WebConfigFile, err)
		}
	}
	webCfg := st.WebConfigFile
	go web.Serve(ln, sv.http, &web.FlagConfig{WebConfigFile: &webCfg}, slog.New(slog.DiscardHandler))
	log.Info().Str("metrics", "http://"+ln.Addr().String()+"/metrics").Str("ruleset", cfg.Ruleset).Strs("brokers", sv.brokers).
		Int("workers", st.Workers).Msg("riskmon started")
	if cfg.EnabledDetectors() == 0 {
		log.Warn().Str("ruleset", cfg.Ruleset).Msg(noDetectors)
	}
	return sv, nil
}

func (sv *service) close() {
	if sv.http != nil {
		sv.http.Close()
	}
	if sv.embedded != nil {
		sv.embedded.Close()
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func cmdRun(args []string) error {
	// SIGHUP is caught from the start: its default action ends the
	// process, and an operator may send it as soon as the process exists.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	fs := newFlags("run", "[--config FILE] [--red-rate R] [--yellow-rate Y] [stream flags]")
	cfgPath := fs.String("config", "", "configuration file (default: the built-in configuration)")
	watch := fs.Bool("config.watch", false, "reload the configuration file when its content changes (checked every 2 s), as for a Kubernetes ConfigMap")
	sf := addStreamFlags(fs)
	rf := addRateFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *watch && *cfgPath == "" {
		return errors.New("--config.watch needs --config FILE")
	}
	load := configLoader(*cfgPath, sf, rf, nil, nil)
	cfg, err := load()
	if err != nil {
		return err
	}
	log := newLogger(cfg.Stream)
	ctx, stop := signalContext()
	defer stop()
	sv, err := startService(ctx, cfg, log, load)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	defer sv.close()
	go sv.reloadOnHUP(ctx, hup)
	if *watch {
		go sv.watchConfig(ctx, *cfgPath, 2*time.Second)
	}
	err = sv.stream.Run(ctx, sv.brokers)
	log.Info().Msg("stopped")
	return err
}

// configLoader reads the configuration as at start-up and at each reload:
// the file, then before (when set) on the file's settings, then the
// environment and the flags over them, then after (when set).
func configLoader(path string, sf *streamFlags, rf *rateFlags, before, after func(*config.Config)) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		c, err := loadConfig(path)
		if err != nil {
			return nil, err
		}
		if before != nil {
			before(c)
		}
		if err := sf.apply(c); err != nil {
			return nil, err
		}
		if err := rf.apply(c); err != nil {
			return nil, err
		}
		if after != nil {
			after(c)
		}
		return c, nil
	}
}

// reloadOnHUP reloads the configuration on each SIGHUP.
func (sv *service) reloadOnHUP(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_, _ = sv.reload("signal") // logged and counted by reload
		}
	}
}

// watchConfig reloads the configuration when the file's content changes,
// checking every interval. It compares content, not modification times: a
// Kubernetes ConfigMap volume swaps a symbolic link, and an editor may write
// a file twice within a second.
func (sv *service) watchConfig(ctx context.Context, path string, interval time.Duration) {
	last, _ := os.ReadFile(path)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := os.ReadFile(path)
		if err != nil || bytes.Equal(b, last) {
			continue
		}
		last = b
		_, _ = sv.reload("watch") // logged and counted by reload
	}
}

// reload reads the configuration again and swaps it into the engine. A
// configuration with problems is refused, with every problem in the log and
// the failure in the metrics; the running one stays. Stream settings
// (brokers, topics, workers, addresses) are read at start-up only: those
// that changed are returned, and logged as taking effect at the next
// restart. The state's sizes and place are too, and count in the ruleset
// id: a change of them is refused.
func (sv *service) reload(trigger string) (atRestart []string, err error) {
	sv.reloadMu.Lock()
	defer sv.reloadMu.Unlock()
	m := sv.stream.Metrics
	old := sv.engine.Config()
	cfg, err := sv.load()
	if err == nil {
		// Compared with the file as read at start-up, not with the last
		// reload: a setting changed twice is still not applied. The state's
		// sizes and place are part of the configuration (and, but for the
		// directory's name, of the ruleset id) that must say what computes
		// the assessments: a change of them is refused (restart to apply
		// it). The stream settings do not count in the id: the rest is
		// applied and they are named.
		var state []string
		for _, k := range config.RestartOnly(sv.cfg, cfg) {
			if strings.HasPrefix(k, "state.") {
				state = append(state, k)
			} else {
				atRestart = append(atRestart, k)
			}
		}
		if len(state) > 0 {
			err = fmt.Errorf("%s: read at start-up only (the running configuration would no longer say what runs); restart riskmon to change it", strings.Join(state, ", "))
		}
	}
	var change engine.ReloadChange
	if err == nil {
		change, err = sv.engine.ReloadSummary(cfg)
	}
	// A scrape gathers the metrics concurrently: it may see the counter
	// move before the gauge does, or the reverse.
	if err != nil {
		m.ReloadOK.Set(0)
		m.Reloads.WithLabelValues("failure").Inc()
		sv.log.Error().Err(err).Str("trigger", trigger).Str("ruleset", old.Ruleset).Msg("configuration reload refused; the running configuration stays")
		return nil, err
	}
	m.ReloadOK.Set(1)
	m.Reloads.WithLabelValues("success").Inc()
	sv.log.Info().Str("trigger", trigger).Str("from", old.Ruleset).Str("to", cfg.Ruleset).
		Strs("detectors_kept", change.Kept).Strs("detectors_fresh", change.Fresh).Strs("detectors_removed", change.Removed).
		Bool("model_kept", change.ModelKept).Msg("configuration reloaded")
	if len(atRestart) > 0 {
		sv.log.Warn().Strs("settings", atRestart).Msg("these settings are read at start-up only: they take effect at the next restart, and the running ones stay until then")
	}
	return atRestart, nil
}

func cmdDemo(args []string) error {
	fs := newFlags("demo", "[--rate N] [--seed S] [--duration D] [--config FILE] [--red-rate R] [--yellow-rate Y] [stream flags]")
	rate := fs.Int("rate", 500, "declarations per second produced by the built-in synthetic feed")
	seed := fs.Uint64("seed", 1, "seed of the synthetic feed")
	duration := fs.Duration("duration", 0, "stop after this long (default: run until interrupted)")
	cfgPath := fs.String("config", "", "configuration file (default: the built-in configuration)")
	sf := addStreamFlags(fs)
	rf := addRateFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *rate < 1 {
		return fmt.Errorf("--rate must be >= 1, got %d", *rate)
	}
	// The live summary is the output, so the log says little; the demo
	// always runs on the embedded broker.
	// The demo learns from synthetic declarations: it never checkpoints into
	// the state_dir a configuration file names for an instance (--state-dir
	// on the command line still counts), and keeps the declaration records
	// of a configuration with state.pending_dir in a directory of its own.
	var pendingDir string
	quiet := func(c *config.Config) {
		c.Stream.LogFormat, c.Stream.LogLevel = "console", "error"
		c.Stream.StateDir = ""
		if c.State.PendingDir != "" {
			if pendingDir == "" {
				pendingDir, _ = ownPendingDir()
			}
			c.State.PendingDir = pendingDir // "" (in memory) if it could not be made
		}
	}
	embeddedOnly := func(c *config.Config) { c.Stream.Brokers = nil }
	load := configLoader(*cfgPath, sf, rf, quiet, embeddedOnly)
	cfg, err := load()
	if err != nil {
		return err
	}
	live := newLiveSummary()
	tty := isTerminal(os.Stdout)
	log := newLogger(cfg.Stream)
	if tty && isTerminal(os.Stderr) {
		// The dashboard redraws the terminal every second and would wipe
		// log lines written under it: it shows the latest ones itself.
		log = log.Output(zerolog.ConsoleWriter{Out: live, NoColor: true, TimeFormat: time.TimeOnly})
	}
	ctx, stop := signalContext()
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	sv, err := startService(ctx, cfg, log, load)
	if err != nil {
		return err
	}
	defer sv.close()
	sv.stream.OnAssessed = live.add
	info := demoInfo{broker: sv.brokers[0], metrics: cfg.Stream.MetricsAddr, topic: cfg.Stream.AssessmentsTopic,
		ruleset: cfg.Ruleset, rate: *rate, seed: *seed}
	for _, l := range introLines(info) {
		fmt.Println(l)
	}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); feed(ctx, sv.brokers, cfg.Stream, *rate, *seed, live, log) }()
	go func() { defer wg.Done(); live.print(ctx, os.Stdout, tty, info) }()
	err = sv.stream.Run(ctx, sv.brokers)
	wg.Wait()
	return err
}

// feed produces the synthetic stream at a steady rate, with each inspection
// outcome once the generator's event time passes its inspected_at. Each
// declaration is stamped lodged_at = now and each outcome inspected_at = now
// as they are produced, so that lodged-to-assessed latency is real; the
// generator's own timeline only orders outcomes after their declarations.
func feed(ctx context.Context, brokers []string, st config.Stream, rate int, seed uint64, live *liveSummary, log zerolog.Logger) {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Hash{}, BatchTimeout: 2 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, rate/100)
	var pending []*declaration.Outcome
	var decls []*declaration.Declaration
	var outcomes []*declaration.Outcome
	var batch []kafka.Message
	nDecl := 0
	errStop := errors.New("stop")
	// The generator plans a whole stream before the first record, so the
	// feed takes ten minutes' worth at a time, with the next seed after.
	var err error
	for round := uint64(0); err == nil; round++ {
		err = synth.Generate(synth.Options{Count: max(10_000, rate*600), Seed: seed + round, IDPrefix: fmt.Sprintf("DEMO%dR%d-", seed, round)}, func(r synth.Record) error {
			d := r.Decl
			decls = append(decls, d)
			nDecl++
			if r.Inspected {
				pending = append(pending, r.Truth)
				sort.Slice(pending, func(i, j int) bool { return pending[i].InspectedAt.Before(pending[j].InspectedAt) })
			}
			for len(pending) > 0 && !pending[0].InspectedAt.After(d.LodgedAt) {
				outcomes = append(outcomes, pending[0])
				pending = pending[1:]
			}
			if nDecl < perTick {
				return nil
			}
			select {
			case <-ctx.Done():
				return errStop
			case <-tick.C:
			}
			now := time.Now().UTC()
			batch = batch[:0]
			for _, d := range decls {
				d.LodgedAt = now
				batch = append(batch, kafka.Message{Topic: st.DeclarationsTopic, Key: []byte(d.Importer.ID), Value: d.AppendJSON(nil)})
			}
			for _, o := range outcomes {
				o.InspectedAt = now
				batch = append(batch, kafka.Message{Topic: st.OutcomesTopic, Key: []byte(o.ImporterID), Value: o.AppendJSON(nil)})
			}
			decls, outcomes = decls[:0], outcomes[:0]
			if err := w.WriteMessages(ctx, batch...); err != nil {
				if ctx.Err() != nil {
					return errStop
				}
				log.Error().Err(err).Msg("demo feed: produce failed")
			}
			live.produced(nDecl)
			nDecl = 0
			return nil
		})
	}
	if err != nil && !errors.Is(err, errStop) {
		log.Error().Err(err).Msg("demo feed stopped")
	}
}
