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
		return fmt.Errorf("%s %s required (train needs --input, --outcomes and --output)", strings.Join(missing, " and "), verb)
	}
	if err := distinctFiles(fs, []string{"input", "outcomes", "config"}, []string{"output"}); err != nil {
		return err
	}
	c, eng, err := loadEngine(*cfgPath)
	if err != nil {
		return err
	}
	// The model is written to a file of its own beside --output and renamed
	// over it once complete: a directory that cannot take it is found
	// before the replay, and a failed run leaves an earlier model whole.
	tmp, err := os.CreateTemp(filepath.Dir(*output), ".riskmon-train-*")
	if err != nil {
		return fmt.Errorf("--output %s: %w", *output, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
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
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("--output %s: %w", *output, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("--output %s: %w", *output, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--output %s: %w", *output, err)
	}
	if err := os.Rename(tmp.Name(), *output); err != nil {
		return fmt.Errorf("--output %s: %w", *output, err)
	}
	fmt.Fprintf(os.Stderr, "train: %d declarations, %d outcomes applied, %d labelled (%d outcomes matched no declaration, %d not yet due when the input ends were not used)\n",
		st.Assessed, st.OutcomesApplied, labels, unmatched, st.OutcomesRead-st.OutcomesApplied)
	fmt.Fprintf(os.Stderr, "model: %s\nwrote %s (%d bytes)\n", t, *output, len(b))
	return nil
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
