package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/pipeline/batch"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// cmdTrain replays history with its outcomes through the engine, so that every
// labelled declaration has the features it had when it was assessed, then
// trains the model on all of them and writes it.
func cmdTrain(args []string) error {
	fs := newFlags("train", "--input FILE --outcomes FILE --output MODEL [--config FILE]")
	input := fs.String("input", "", "declarations, JSON Lines, in lodgement order")
	outcomes := fs.String("outcomes", "", "inspection outcomes of those declarations, JSON Lines")
	output := fs.String("output", "", "write the trained model here (start riskmon with --model FILE or model.file)")
	cfgPath := fs.String("config", "", "configuration file (default: the built-in configuration); train under the configuration you will run")
	if err := parse(fs, args); err != nil {
		return err
	}
	var missing []string
	for _, f := range []string{"input", "outcomes", "output"} {
		if fs.Lookup(f).Value.String() == "" {
			missing = append(missing, "--"+f)
		}
	}
	if len(missing) > 0 {
		verb := "are"
		if len(missing) == 1 {
			verb = "is"
		}
		list := strings.Join(missing, " and ")
		if len(missing) == 3 {
			list = missing[0] + ", " + missing[1] + " and " + missing[2]
		}
		return fmt.Errorf("%s %s required (train needs --input, --outcomes and --output)", list, verb)
	}
	if err := distinctFiles(fs, []string{"input", "outcomes", "config"}, []string{"output"}); err != nil {
		return err
	}
	c, eng, err := loadEngine(*cfgPath)
	if err != nil {
		return err
	}
	out, err := checkModelOutput(*output) // before the replay, which takes a while
	if err != nil {
		return err
	}
	in, err := openIn(*input)
	if err != nil {
		return err
	}
	defer in.Close()
	of, err := os.Open(*outcomes)
	if err != nil {
		return err
	}
	defer of.Close()
	p := startProgress("train: replaying", "declarations", inputSize(*input), true)
	st, err := batch.Replay(eng, batch.ReplayOptions{Input: p.reader(in), InputName: *input, Outcomes: of, OutcomesName: *outcomes,
		Output: io.Discard, Errors: p.stderr()})
	p.finish()
	if err != nil {
		return err
	}
	if st.Assessed == 0 {
		return errNoDeclaration(*input, st.Lines)
	}
	labels, unmatched := eng.ModelLabels()
	if labels < c.Model.MinLabels {
		return fmt.Errorf("%d labelled declarations (%d outcomes matched no declaration), fewer than model.min_labels (%d): too few to train on; give more outcomes, or lower model.min_labels in --config",
			labels, unmatched, c.Model.MinLabels)
	}
	t, err := eng.TrainNow()
	if err != nil {
		return err
	}
	b, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	if err := out.write(b); err != nil {
		return fmt.Errorf("--output %s: %w", *output, err)
	}
	fmt.Fprintf(os.Stderr, "train: %d declarations, %d outcomes applied, %d labelled (%d outcomes matched no declaration, %d not yet due when the input ends were not used)\n",
		st.Assessed, st.OutcomesApplied, labels, unmatched, st.OutcomesRead-st.OutcomesApplied)
	fmt.Fprintf(os.Stderr, "model: %s\nwrote %s (%d bytes)\n", t, *output, len(b))
	return nil
}

// modelOutput is how train writes --output. A regular file (or a new one)
// is written beside itself and renamed over, so that a failed run leaves an
// earlier model whole; a link is followed to its file; anything else (a
// device) is written through.
type modelOutput struct {
	path     string      // links followed
	replace  bool        // write beside it and rename over it
	mode     os.FileMode // the existing file's, kept
	existing bool
}

// checkModelOutput finds how to write path, and that it can be written.
func checkModelOutput(path string) (modelOutput, error) {
	o := modelOutput{path: path, replace: true, mode: 0o644}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		o.path = r
	}
	st, err := os.Stat(o.path)
	switch {
	case err == nil && st.IsDir():
		return o, fmt.Errorf("--output %s is a directory", path)
	case err == nil && !st.Mode().IsRegular():
		o.replace = false
		f, err := os.OpenFile(o.path, os.O_WRONLY, 0)
		if err != nil {
			return o, fmt.Errorf("--output %s: %w", path, err)
		}
		return o, f.Close()
	case err == nil:
		o.mode, o.existing = st.Mode().Perm(), true
	}
	f, err := os.CreateTemp(filepath.Dir(o.path), ".riskmon-train-*") // the directory takes a file
	if err != nil {
		return o, fmt.Errorf("--output %s: %w", path, err)
	}
	f.Close()
	os.Remove(f.Name())
	return o, nil
}

func (o modelOutput) write(b []byte) error {
	if !o.replace {
		return os.WriteFile(o.path, b, 0)
	}
	tmp := filepath.Join(filepath.Dir(o.path), fmt.Sprintf(".%s.riskmon-train-%d", filepath.Base(o.path), os.Getpid()))
	os.Remove(tmp)                                                        // left by a run killed with this pid
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, o.mode) // a new file's mode under the umask
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && o.existing {
		err = f.Chmod(o.mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, o.path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// loadEngine loads a configuration (the built-in one for "") and builds an
// engine on it, for the batch commands.
func loadEngine(path string) (*config.Config, *engine.Engine, error) {
	c, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	eng, err := newOfflineEngine(c)
	return c, eng, err
}

// loadModel starts the engine from a model file (--model, model.file).
func loadModel(eng *engine.Engine, path string) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = eng.LoadModel(b, path)
	return err
}
