// Command riskmon is a stream-processing risk monitor for customs declarations.
// This file holds flags, subcommands and wiring, nothing else.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	_ "github.com/riskmon/riskmon/detectors"
	"github.com/riskmon/riskmon/pipeline/batch"
	"github.com/riskmon/riskmon/pipeline/engine"
	"github.com/riskmon/riskmon/synth"
)

const usage = `riskmon: a risk monitor for customs declaration streams

usage: riskmon COMMAND [flags]

commands:
  run       stream mode: consume declarations and outcomes from Kafka, write assessments
  demo      run on the embedded broker with a built-in synthetic feed and a live summary
  replay    push a file of declarations through the engine (batch mode)
  compare   replay the same history through two configurations, side by side
  train     train the risk model from history and its inspection outcomes
  validate  check a detector configuration
  gen       write a synthetic declaration stream with planted fraud
  bench     measure stream throughput and latency against a broker
  version   print the version, the commit it was built from and the Go version (also --version)

Run 'riskmon COMMAND --help' for a command's flags.
`

// version is the release, set at build time with
// -ldflags "-X main.version=v1.2.3"; without it, the main module's version
// from the build information is shown.
var version = ""

// versionLine is what riskmon --version prints: the version, the VCS
// revision and commit time the binary was built from, and the Go version.
func versionLine(info *debug.BuildInfo, ok bool) string {
	v, goVersion := version, runtime.Version()
	rev, at, modified := "", "", false
	if ok {
		if v == "" {
			v = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	commit := "commit unknown (built without VCS information)"
	if rev != "" {
		commit = "commit " + rev
		var notes []string
		if at != "" {
			notes = append(notes, at)
		}
		if modified {
			notes = append(notes, "with uncommitted changes")
		}
		if len(notes) > 0 {
			commit += " (" + strings.Join(notes, ", ") + ")"
		}
	}
	return fmt.Sprintf("riskmon %s, %s, %s %s/%s", v, commit, goVersion, runtime.GOOS, runtime.GOARCH)
}

func main() { os.Exit(run(os.Args[1:])) }

// run executes one command line and returns the exit status: 0 on success,
// 1 on a user error (reported on stderr, never as a stack trace).
func run(args []string) int {
	defer func() {
		for _, f := range slices.Backward(cleanups) { // the last made is undone first
			f()
		}
		cleanups = nil
	}()
	if len(args) < 1 {
		fmt.Fprint(os.Stderr, usage)
		return 1
	}
	cmds := map[string]func([]string) error{"run": cmdRun, "demo": cmdDemo, "replay": cmdReplay, "compare": cmdCompare, "validate": cmdValidate, "train": cmdTrain, "gen": cmdGen, "bench": cmdBench}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Print(usage)
		return 0
	}
	if name == "--version" || name == "-version" || name == "version" {
		fmt.Println(versionLine(debug.ReadBuildInfo()))
		return 0
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "riskmon: unknown command %q (commands: run, demo, replay, compare, train, validate, gen, bench, version; see riskmon --help)\n", name)
		return 1
	}
	if err := cmd(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "riskmon %s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 1
	}
	return 0
}

// cleanups run when a command returns.
var cleanups []func()

// newOfflineEngine builds an engine for a command that does not run beside
// the clearance system (replay, train, compare, bench). Such a command
// never touches state.pending_dir, where a running instance keeps its
// records: when the configuration keeps them on disk, this run keeps its
// own in a temporary directory, with the same cap, removed at its end.
func newOfflineEngine(c *config.Config) (*engine.Engine, error) {
	if c.State.PendingDir == "" {
		return engine.New(c)
	}
	dir, err := ownPendingDir()
	if err != nil {
		return nil, err
	}
	cc := *c
	cc.State.PendingDir = dir
	e, err := engine.New(&cc)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { e.Close() })
	return e, nil
}

// ownPendingDir makes a temporary directory for the declaration records of
// a run that must not touch state.pending_dir; it is removed when the
// command returns.
func ownPendingDir() (string, error) {
	dir, err := os.MkdirTemp("", "riskmon-pending-")
	if err != nil {
		return "", fmt.Errorf("state.pending_dir: a directory of this run's own: %w", err)
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	return dir, nil
}

func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stdout, "usage: riskmon %s %s\n\nflags:\n", name, synopsis)
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
	}
	fs.SetOutput(io.Discard) // errors are reported once, by run, on one line
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	// The flag package prints the usage on a bad flag too; only --help
	// asks for it (on stdout): an error is one line on stderr, and a
	// command's output redirected to a file does not get the usage.
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return err
		}
		return fmt.Errorf("%v (see riskmon %s --help)", err, fs.Name())
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// distinctFiles refuses a command line that names one file twice where one
// of the two is written: an output (flags outs) that is one of the inputs
// (flags ins) would be emptied before it is read, and two outputs would
// write into one file. "-" is standard input among the inputs and standard
// output among the outputs, compared by the files they are.
func distinctFiles(fs *flag.FlagSet, ins, outs []string) error {
	var seen []fileRef
	for i, name := range append(ins, outs...) {
		r := fileRef{flag: name, path: fs.Lookup(name).Value.String()}
		switch {
		case r.path == "":
			continue
		case r.path == "-" && i < len(ins):
			r.std = os.Stdin
		case r.path == "-":
			r.std = os.Stdout
		}
		if i >= len(ins) {
			for _, s := range seen {
				if sameFile(s, r) {
					return fmt.Errorf("--%s and --%s name the same file, %s: each needs a file of its own", s.flag, name, r.path)
				}
			}
		}
		seen = append(seen, r)
	}
	return nil
}

// A fileRef is a file a flag names: a path, or a standard stream.
type fileRef struct {
	flag, path string
	std        *os.File
}

func (r fileRef) stat() (os.FileInfo, error) {
	if r.std != nil {
		return r.std.Stat()
	}
	return os.Stat(r.path)
}

// abs is the path made absolute, its directory's links followed (the file
// itself may not exist yet).
func (r fileRef) abs() (string, error) {
	dir, base := filepath.Split(r.path)
	if d, err := filepath.EvalSymlinks(filepath.Clean(dir + ".")); err == nil {
		return filepath.Abs(filepath.Join(d, base))
	}
	return filepath.Abs(r.path)
}

// sameFile reports whether a and b name one regular file: the same file
// when both exist (a device such as /dev/null may take two outputs), else
// the same absolute path.
func sameFile(a, b fileRef) bool {
	sa, errA := a.stat()
	sb, errB := b.stat()
	if errA == nil && errB == nil {
		return os.SameFile(sa, sb) && sa.Mode().IsRegular()
	}
	if a.std != nil || b.std != nil {
		return false
	}
	absA, errA := a.abs()
	absB, errB := b.abs()
	return errA == nil && errB == nil && absA == absB
}

// loadConfig loads and validates a configuration; problems become one error
// listing them all.
func loadConfig(path string) (*config.Config, error) {
	c, err := config.Load(path)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			name := path
			if name == "" {
				name = "built-in configuration"
			}
			return nil, fmt.Errorf("%s: %d problem(s):\n%w", name, len(ps), err)
		}
		return nil, err
	}
	return c, nil
}

func cmdValidate(args []string) error {
	fs := newFlags("validate", "[--config FILE]")
	path := fs.String("config", "", "configuration file (default: the built-in configuration)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*path)
	if err != nil {
		return err
	}
	mem := *c
	mem.State.PendingDir = "" // building the detectors is the check; the directory is the running instance's
	if _, err := engine.New(&mem); err != nil {
		return err
	}
	enabled := c.EnabledDetectors()
	fmt.Printf("%s: ok, ruleset %s, %d detectors (%d enabled)\n", c.Source, c.Ruleset, len(c.Detectors), enabled)
	if enabled == 0 {
		fmt.Printf("%s: warning: %s\n", c.Source, noDetectors)
	}
	return nil
}

// noDetectors warns of a configuration that names no detector: `detectors`
// left out of a file is an empty list, not the built-in one.
const noDetectors = "no detector is enabled: every declaration scores 0 until a trained model scores it (`detectors` left out of a file is an empty list, not the built-in configuration's eight; start from `config/default.yml`)"

func openIn(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(path)
}

// outFile is an output file or stdout; Close reports write errors.
func createOut(path string) (io.WriteCloser, error) {
	if path == "" || path == "-" {
		return nopWriteCloser{os.Stdout}, nil
	}
	return os.Create(path)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// evalFlags choose the part of a replayed stream that --truth evaluates:
// it starts after a warm-up share of the stream, or at a lodgement date,
// and may end at one.
type evalFlags struct {
	fs       *flag.FlagSet
	warmup   *float64
	from, to *string
}

func addEvalFlags(fs *flag.FlagSet) *evalFlags {
	return &evalFlags{fs: fs,
		warmup: fs.Float64("eval-warmup", 0.5, "share of the stream, from its start, left out of the evaluation while the detectors learn"),
		from:   fs.String("eval-from", "", "start the evaluation at the declarations lodged from this date (2006-01-02, midnight UTC) or time (RFC 3339) instead of after --eval-warmup: what is lodged before is the warm-up"),
		to:     fs.String("eval-to", "", "end the evaluation before the declarations lodged from this date or time (it starts after --eval-warmup, or at --eval-from)"),
	}
}

// window checks the flags and returns the evaluation's window.
func (f *evalFlags) window() (batch.Window, error) {
	var w batch.Window
	parseWhen := func(name, v string) (time.Time, error) {
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			return t, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return t, fmt.Errorf("--%s: %q is neither a date (2006-01-02) nor a time (RFC 3339, 2006-01-02T15:04:05Z)", name, v)
		}
		return t, nil
	}
	var err error
	if *f.from != "" {
		if w.From, err = parseWhen("eval-from", *f.from); err != nil {
			return w, err
		}
	}
	if *f.to != "" {
		if w.To, err = parseWhen("eval-to", *f.to); err != nil {
			return w, err
		}
	}
	if w.From.IsZero() {
		if *f.warmup < 0 || *f.warmup >= 1 {
			return w, fmt.Errorf("--eval-warmup must be in [0, 1), got %g", *f.warmup)
		}
		w.Warmup = *f.warmup
		return w, nil
	}
	warmupGiven := false
	f.fs.Visit(func(fl *flag.Flag) { warmupGiven = warmupGiven || fl.Name == "eval-warmup" })
	if warmupGiven {
		return w, errors.New("--eval-warmup and --eval-from both say where the evaluation starts: give one or the other")
	}
	if !w.To.IsZero() && !w.From.Before(w.To) { // From is set here
		return w, fmt.Errorf("--eval-from %s is not before --eval-to %s", *f.from, *f.to)
	}
	return w, nil
}

func cmdReplay(args []string) error {
	fs := newFlags("replay", "--input FILE [--outcomes FILE] [--truth FILE] [--output FILE] [--config FILE] [--report FILE.html]")
	input := fs.String("input", "", "declarations, JSON Lines ('-' for stdin)")
	outcomes := fs.String("outcomes", "", "inspection outcomes, JSON Lines, applied by event time")
	truth := fs.String("truth", "", "ground truth (an outcome for every declaration): print the evaluation table")
	output := fs.String("output", "-", "assessments, JSON Lines ('-' for stdout)")
	deadLetters := fs.String("dead-letters", "", "also write a dead-letter record (original bytes, line, reason) per invalid line of --input or --outcomes to this file")
	cfgPath := fs.String("config", "", "configuration file (default: the built-in configuration)")
	modelPath := fs.String("model", "", "start from a model trained by riskmon train (default: model.file of the configuration)")
	verbose := fs.Bool("v", false, "also print one line per model training")
	closed := fs.Bool("closed-loop", false, "inspections follow riskmon's own channels: every yellow or red declaration gets its --truth outcome 7 days after lodgement, no other does (replaces --outcomes)")
	ef := addEvalFlags(fs)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the replay to this file (for go tool pprof)")
	report := fs.String("report", "", "also write a self-contained HTML report here")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "assess each micro-batch on this many goroutines, by importer (the assessments do not depend on it)")
	batchSize := fs.Int("batch", engine.BatchSize, "declarations per micro-batch; 1 assesses one at a time on one core, exactly as stream mode's single worker")
	rf := addRateFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *workers < 1 || *batchSize < 1 {
		return fmt.Errorf("--workers and --batch must be >= 1, got %d and %d", *workers, *batchSize)
	}
	if err := distinctFiles(fs, []string{"input", "outcomes", "truth", "config", "model"}, []string{"output", "dead-letters", "report", "cpuprofile"}); err != nil {
		return err
	}
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	if *input == "" {
		return errors.New("--input is required (a file of declarations, or - for stdin)")
	}
	window, err := ef.window()
	if err != nil {
		return err
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if err := rf.apply(c); err != nil {
		return err
	}
	eng, err := newOfflineEngine(c)
	if err != nil {
		return err
	}
	if *modelPath == "" {
		*modelPath = c.Model.File
	}
	if err := loadModel(eng, *modelPath); err != nil {
		return err
	}
	var truthByID map[string]*declaration.Outcome
	if *truth != "" {
		if truthByID, err = readTruth(*truth); err != nil {
			return err
		}
	}
	in, err := openIn(*input)
	if err != nil {
		return err
	}
	defer in.Close()
	opts := batch.ReplayOptions{Input: in, InputName: *input, Errors: os.Stderr, KeepScores: truthByID != nil || *report != "", KeepFindings: *report != "",
		Workers: *workers, Batch: *batchSize}
	var outcomesByID map[string]*declaration.Outcome // the report's score distributions without truth
	if *report != "" && truthByID == nil && *outcomes != "" {
		if outcomesByID, err = readTruth(*outcomes); err != nil {
			return err
		}
	}
	var reportFile *os.File
	if *report != "" {
		if reportFile, err = os.Create(*report); err != nil {
			return err
		}
		defer reportFile.Close()
	}
	if *closed {
		if truthByID == nil || *outcomes != "" {
			return errors.New("--closed-loop needs --truth (the outcomes of the inspections riskmon selects) and no --outcomes")
		}
		opts.ClosedLoop, opts.InspectDelay = truthByID, 7*24*time.Hour
	}
	if *outcomes != "" {
		f, err := os.Open(*outcomes)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.Outcomes, opts.OutcomesName = f, *outcomes
	}
	out, err := createOut(*output)
	if err != nil {
		return err
	}
	opts.Output = out
	if *deadLetters != "" {
		f, err := os.Create(*deadLetters)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.DeadLetters = f
	}
	if *verbose {
		eng.OnModelTrained(func(t *engine.Trained, err error) {
			if err != nil {
				fmt.Fprintf(os.Stderr, "model: %v\n", err)
				return
			}
			fmt.Fprintln(os.Stderr, "model: "+t.String())
		})
	}
	p := startProgress("replay", "declarations", inputSize(*input), true)
	opts.Input, opts.Errors = p.reader(opts.Input), p.stderr()
	st, err := batch.Replay(eng, opts)
	p.finish()
	if cerr := out.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if st.Assessed == 0 {
		return errNoDeclaration(*input, st.Lines)
	}
	fmt.Fprint(os.Stderr, st.Summary(c.Ruleset, eng.Detectors()))
	if t := eng.Model(); t != nil {
		labels, unmatched := eng.ModelLabels()
		fmt.Fprintf(os.Stderr, "model at the end: %s; %d labels learned, %d outcomes matched no declaration\n", t, labels, unmatched)
	}
	fmt.Fprint(os.Stderr, st.Monitor.Table(st.Scores, truthByID))
	if truthByID != nil {
		fmt.Fprint(os.Stderr, batch.Evaluate(st.Scores, truthByID, window).Table())
	}
	if reportFile != nil {
		r := &batch.Report{Title: "riskmon replay", Input: *input, Sides: []*batch.Side{batch.NewSide("replay", eng, st, truthByID, window)},
			Truth: truthByID, Outcomes: outcomesByID, Window: window}
		if err := batch.WriteReport(reportFile, r); err != nil {
			return err
		}
		if err := reportFile.Close(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote the report to %s\n", *report)
	}
	return nil
}

// errNoDeclaration is the error of a command whose input held no valid
// declaration: an empty or all-invalid input is a mistake to report (exit 1),
// not a summary of zeros. Each invalid line has been reported before it.
func errNoDeclaration(input string, lines int) error {
	if input == "-" {
		input = "standard input"
	}
	if lines == 0 {
		return fmt.Errorf("%s holds no declaration: it is empty", input)
	}
	if lines == 1 {
		return fmt.Errorf("%s holds no valid declaration: its only line is invalid", input)
	}
	return fmt.Errorf("%s holds no valid declaration: all %d lines are invalid", input, lines)
}

func readTruth(path string) (map[string]*declaration.Outcome, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]*declaration.Outcome{}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		o, err := declaration.DecodeOutcome([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %v", path, i+1, err)
		}
		m[o.DeclarationID] = o
	}
	return m, nil
}

func cmdGen(args []string) error {
	fs := newFlags("gen", "--count N [--seed S] [--importers N] [--days D] [--inspect-rate F] [--output FILE] [--outcomes FILE] [--truth FILE]")
	count := fs.Int("count", 0, "number of declarations")
	importers := fs.Int("importers", 0, "distinct importers the stream names, each lodging at least once, with a long tail of small traders (plus about count/1500 missing traders; needs count >= 1.02 x N; default: about count/25 traders, not all of whom lodge)")
	days := fs.Int("days", 0, "span of the stream in days (default max(30, count/300): 300 declarations a day)")
	seed := fs.Uint64("seed", 1, "random seed: same seed, same bytes")
	output := fs.String("output", "-", "declarations, JSON Lines ('-' for stdout)")
	outcomes := fs.String("outcomes", "", "write the outcomes of a random inspected sample here")
	truth := fs.String("truth", "", "write the ground truth for every declaration here")
	inspect := fs.Float64("inspect-rate", 0.03, "share of declarations in the random inspected sample")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := distinctFiles(fs, nil, []string{"output", "outcomes", "truth"}); err != nil {
		return err
	}
	if *count < 1 {
		return fmt.Errorf("--count must be >= 1, got %d", *count)
	}
	if *inspect <= 0 || *inspect > 1 {
		return fmt.Errorf("--inspect-rate must be in (0, 1], got %g", *inspect)
	}
	if *importers < 0 || *importers > *count {
		return fmt.Errorf("--importers must be in [0, --count], got %d", *importers)
	}
	if *days < 0 {
		return fmt.Errorf("--days must be >= 0 (0: the default), got %d", *days)
	}
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	open := func(path string) (io.Writer, error) {
		if path == "" {
			return nil, nil
		}
		f, err := createOut(path)
		if err != nil {
			return nil, err
		}
		closers = append(closers, f)
		return f, nil
	}
	var w synth.Writers
	var err error
	if w.Declarations, err = open(*output); err != nil {
		return err
	}
	if *outcomes != "" {
		if w.Outcomes, err = open(*outcomes); err != nil {
			return err
		}
	}
	if *truth != "" {
		if w.Truth, err = open(*truth); err != nil {
			return err
		}
	}
	p := startProgress("gen", "declarations", int64(*count), false)
	w.Declarations = p.writer(w.Declarations)
	err = synth.Write(synth.Options{Count: *count, Seed: *seed, InspectRate: *inspect, Importers: *importers, Days: *days}, w)
	p.finish()
	if err != nil {
		return err
	}
	for _, c := range closers {
		if err := c.Close(); err != nil {
			return err
		}
	}
	closers = nil
	return nil
}

// startCPUProfile starts a CPU profile written to path (none when path is
// empty); stop ends it.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
