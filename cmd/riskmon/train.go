package main

import (
	"errors"
	"fmt"
	"io"
	"os"

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
	if *input == "" || *outcomes == "" || *output == "" {
		return errors.New("--input, --outcomes and --output are required")
	}
	_, eng, err := loadEngine(*cfgPath)
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
	t, err := eng.TrainNow()
	if err != nil {
		return err
	}
	b, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	if err := os.WriteFile(*output, b, 0o644); err != nil {
		return err
	}
	labels, unmatched := eng.ModelLabels()
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
