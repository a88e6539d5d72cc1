package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/batch"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// cmdCompare replays the same history through two configurations and shows
// them side by side (see batch.Compare).
func cmdCompare(args []string) error {
	fs := newFlags("compare", "--input FILE [--outcomes FILE] [--truth FILE] [--base A.yml] --candidate B.yml [--report FILE.html] [--changed FILE] [--top N]")
	input := fs.String("input", "", "declarations, JSON Lines ('-' for stdin)")
	outcomes := fs.String("outcomes", "", "inspection outcomes, JSON Lines, applied by event time in both replays")
	truth := fs.String("truth", "", "ground truth (an outcome for every declaration): compare the evaluations")
	basePath := fs.String("base", "", "the configuration in use (default: the built-in configuration)")
	candPath := fs.String("candidate", "", "the configuration proposed")
	report := fs.String("report", "", "also write a self-contained HTML report here")
	changed := fs.String("changed", "", "write every declaration that changes channel here, JSON Lines, the largest score change first")
	top := fs.Int("top", 10, "list this many of the declarations that change channel, the largest score change first (the HTML report lists at least 25)")
	closed := fs.Bool("closed-loop", false, "inspections follow each configuration's own channels: every yellow or red declaration gets its --truth outcome 7 days after lodgement (replaces --outcomes)")
	ef := addEvalFlags(fs)
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "assess each micro-batch of each replay on this many goroutines, by importer (the result does not depend on it)")
	rf := addRateFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := distinctFiles(fs, []string{"input", "outcomes", "truth", "base", "candidate"}, []string{"report", "changed"}); err != nil {
		return err
	}
	if *input == "" {
		return errors.New("--input is required (a file of declarations, or - for stdin)")
	}
	if *candPath == "" {
		return errors.New("--candidate is required (the configuration to compare with --base, or with the built-in one)")
	}
	window, err := ef.window()
	if err != nil {
		return err
	}
	if *workers < 1 {
		return fmt.Errorf("--workers must be >= 1, got %d", *workers)
	}
	if *top < 0 {
		return fmt.Errorf("--top must be >= 0, got %d", *top)
	}
	if *closed && (*truth == "" || *outcomes != "") {
		return errors.New("--closed-loop needs --truth (the outcomes of the inspections each configuration selects) and no --outcomes")
	}
	build := func(path string) (*config.Config, *engine.Engine, error) {
		c, err := loadConfig(path)
		if err != nil {
			return nil, nil, err
		}
		if err := rf.apply(c); err != nil {
			return nil, nil, err
		}
		e, err := newOfflineEngine(c)
		if err != nil {
			return nil, nil, err
		}
		return c, e, loadModel(e, c.Model.File)
	}
	_, base, err := build(*basePath)
	if err != nil {
		return err
	}
	_, cand, err := build(*candPath)
	if err != nil {
		return err
	}
	var truthByID, outcomesByID map[string]*declaration.Outcome
	if *truth != "" {
		if truthByID, err = readTruth(*truth); err != nil {
			return err
		}
	}
	opts := batch.CompareOptions{InputName: *input, Truth: truthByID, Window: window, Workers: *workers}
	if *closed {
		opts.ClosedLoop, opts.InspectDelay = true, 7*24*time.Hour
	}
	size := inputSize(*input)
	if *input == "-" {
		// Both replays read the input: keep standard input in memory.
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		opts.OpenInput = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		size = int64(len(b))
	} else {
		if _, err := os.Stat(*input); err != nil {
			return err
		}
		opts.OpenInput = func() (io.ReadCloser, error) { return os.Open(*input) }
	}
	if *outcomes != "" {
		if _, err := os.Stat(*outcomes); err != nil {
			return err
		}
		opts.OpenOutcomes = func() (io.ReadCloser, error) { return os.Open(*outcomes) }
		opts.OutcomesName = *outcomes
		if *report != "" && truthByID == nil {
			if outcomesByID, err = readTruth(*outcomes); err != nil {
				return err
			}
		}
	}
	// Create the output files first: a typo in a path should not cost a
	// whole comparison.
	var reportFile, changedFile *os.File
	if *report != "" {
		if reportFile, err = os.Create(*report); err != nil {
			return err
		}
		defer reportFile.Close()
	}
	if *changed != "" {
		if changedFile, err = os.Create(*changed); err != nil {
			return err
		}
		defer changedFile.Close()
	}
	p := startProgress("compare", "declarations through both", 2*size, true)
	p.passes = 2
	opts.Read, opts.Errors = p.reader, p.stderr()
	cmp, err := batch.Compare(base, cand, opts)
	p.finish()
	if err != nil {
		return err
	}
	if cmp.Base.Stats.Assessed == 0 {
		return errNoDeclaration(*input, cmp.Base.Stats.Lines)
	}
	fmt.Print(cmp.Summary(*top))
	if changedFile != nil {
		if err := cmp.WriteChanged(changedFile); err != nil {
			return err
		}
		if err := changedFile.Close(); err != nil {
			return err
		}
		fmt.Printf("wrote %d changed declarations to %s\n", len(cmp.Changed), *changed)
	}
	if reportFile != nil {
		r := &batch.Report{Title: "riskmon compare", Input: *input, Sides: []*batch.Side{cmp.Base, cmp.Candidate}, Comparison: cmp,
			Truth: truthByID, Outcomes: outcomesByID, Window: window, TopChanged: max(*top, 25)}
		if err := batch.WriteReport(reportFile, r); err != nil {
			return err
		}
		if err := reportFile.Close(); err != nil {
			return err
		}
		fmt.Printf("wrote the report to %s\n", *report)
	}
	return nil
}
