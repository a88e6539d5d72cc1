// Command mutants checks that riskmon's tests can fail: it applies named
// deliberate bugs (mutants), one at a time, to a scratch copy of the
// repository and runs the tests that should catch each. A mutant is killed
// when a test fails, and survives when every test passes. The working tree is
// never touched.
//
//	go run ./.ci/mutants                 # every mutant
//	go run ./.ci/mutants -run tracker    # mutants whose name matches
//	go run ./.ci/mutants -list           # names, files and tests
//	go run ./.ci/mutants -check          # do the patterns still match? (fast)
//
// A mutant whose text no longer matches its file is an error, never a silent
// skip: the code moved, and the mutant must follow it. So is a mutant that
// does not compile, and a test that fails on the unmutated copy (the
// baseline), which would make every mutant look killed. The exit status is 1
// on any error, and with -strict also on any survivor.
//
// It takes a while (the stream and process tests run for every mutant that
// gets that far, the quality test for the quality mutants), so it runs on a
// schedule rather than on every CI run; see the README.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// A test run: a package and a -run pattern ("" runs them all), with extra
// environment.
type test struct {
	pkg, run string
	env      []string
}

func (t test) String() string {
	s := t.pkg
	if t.run != "" {
		s += " -run " + t.run
	}
	if len(t.env) > 0 {
		s = strings.Join(t.env, " ") + " " + s
	}
	return s
}

// An edit replaces old by new in a file; old must occur exactly once.
type edit struct{ file, old, new string }

type mutant struct {
	name  string
	why   string // the bug, in words
	edits []edit
	tests []test // run in order until one fails
}

// Test runs used by several mutants, cheapest first.
var (
	tracker   = test{pkg: "./pipeline/stream", run: "^TestTracker"}
	stream    = test{pkg: "./pipeline/stream"}
	cmd       = test{pkg: "./cmd/riskmon"}
	config    = test{pkg: "./config"}
	decl      = test{pkg: "./declaration"}
	engine    = test{pkg: "./pipeline/engine"}
	batch     = test{pkg: "./pipeline/batch"}
	dets      = test{pkg: "./detectors"}
	quality   = test{pkg: "./pipeline/batch", run: "^TestDetectionQuality$", env: []string{"RISKMON_QUALITY=1"}}
	ordered   = test{pkg: "./pipeline/batch", run: "^TestOrdered"}
	determin  = test{pkg: "./pipeline/batch", run: "^TestReplayDeterministic$|^TestOrdered"}
	stall     = test{pkg: "./pipeline/stream", run: "^TestConsumerStall$"}
	handover  = test{pkg: "./pipeline/stream", run: "^(TestCheckpointHandover|TestStreamCheckpoint)$"}
	engineAll = []test{engine, batch}
)

func one(file, old, new string) []edit { return []edit{{file, old, new}} }

const (
	trackerGo = "pipeline/stream/tracker.go"
	streamGo  = "pipeline/stream/stream.go"
	engineGo  = "pipeline/engine/engine.go"
	ratesGo   = "pipeline/engine/rates.go"
	configGo  = "config/config.go"
	decodeGo  = "declaration/decode.go"
	jsonGo    = "declaration/json.go"
	cmdGo     = "cmd/riskmon/stream.go"
)

var mutants = []mutant{
	// The commit tracker: at-least-once rests on it.
	{name: "tracker-commits-highest-ack", why: "the tracker commits the highest acknowledged offset, skipping earlier pending ones",
		edits: one(trackerGo, "i < len(ps.pending) && ps.done[ps.pending[i]]; i++ {", "i < len(ps.pending) && ps.pending[i] <= offset; i++ {"),
		tests: []test{tracker, stream}},
	{name: "tracker-commits-at-fetch", why: "an offset is committable as soon as it is fetched",
		edits: one(trackerGo, "\tps.pending = append(ps.pending, offset)\n\tt.inFlight.Add(1)\n", "\tps.committable = offset\n"),
		tests: []test{tracker, stream}},
	{name: "stream-commits-at-fetch", why: "offsets committed at fetch, before assessment and acknowledgement",
		edits: one(streamGo, "\t\t\tcontinue // fetched in a generation that has ended\n\t\t}\n",
			"\t\t\tcontinue // fetched in a generation that has ended\n\t\t}\n\t\ts.tracker.done(m.Topic, m.Partition, m.Offset, f.epoch)\n"),
		tests: []test{stream, cmd}},
	{name: "tracker-done-ignores-epoch", why: "a late acknowledgement of an ended generation counts in the new one",
		edits: one(trackerGo, "if !ok || epoch != t.epoch {\n\t\treturn\n\t}", "if !ok {\n\t\treturn\n\t}"),
		tests: []test{tracker, stream}},
	{name: "tracker-add-ignores-epoch", why: "a message fetched in an ended generation is processed",
		edits: one(trackerGo, "if !ok || epoch != t.epoch {\n\t\treturn false", "if !ok {\n\t\treturn false"),
		tests: []test{tracker, stream}},
	{name: "tracker-committed-ignores-epoch", why: "a commit of an ended generation returning late marks the new one's offsets committed",
		edits: one(trackerGo, "ok && c.epoch == t.epoch {", "ok {"),
		tests: []test{tracker, stream}},
	{name: "tracker-recommits", why: "commits offers positions already committed",
		edits: one(trackerGo, "ps.committable > ps.committed {", "ps.committable >= ps.committed {"),
		tests: []test{tracker, stream}},
	{name: "tracker-pending-never-drains", why: "the in-flight count never goes down (shutdown waits, readiness lies)",
		edits: one(trackerGo, "t.inFlight.Add(-int64(i))", "t.inFlight.Add(0)"),
		tests: []test{tracker, stream}},
	{name: "tracker-assign-keeps-partitions", why: "a rebalance keeps the partitions of the ended generation",
		edits: one(trackerGo, "\tt.parts = make(map[partition]*partState, len(parts))\n", ""),
		tests: []test{tracker, stream}},

	// Scoring and channels.
	{name: "channel-thresholds-strict", why: "`>=` turned into `>` at both channel thresholds",
		edits: one(ratesGo, "(score >= c.edge && u < c.frac)", "(score > c.edge && u < c.frac)"), tests: engineAll},
	{name: "channel-red-strict", why: "a score exactly at the red threshold is not red (`>` instead of `>=`)",
		edits: one(ratesGo, "red: cut{s.Red, 1}", "red: cut{s.Red + 1e-9, 1}"), tests: engineAll},
	{name: "channel-yellow-strict", why: "a score exactly at the yellow threshold is not yellow (`>` instead of `>=`)",
		edits: one(ratesGo, "yellow: cut{s.Yellow, 1}", "yellow: cut{s.Yellow + 1e-9, 1}"), tests: engineAll},
	{name: "score-weight-ignored", why: "every finding is worth 50 points at full strength, whatever its weight",
		edits: one(engineGo, "min(max(fs[i].Weight*fs[i].Score, 0), 100)", "min(max(50*fs[i].Score, 0), 100)"), tests: engineAll},
	{name: "score-sum-not-noisy-or", why: "points are summed (capped at 100) instead of combined by noisy-OR",
		edits: one(engineGo, "combined = 100 * (1 - keep)", "combined = min(sum, 100)"), tests: engineAll},
	{name: "aeo-factor-ignored", why: "Authorised Economic Operators get no reduction",
		edits: one(engineGo, "final *= s.AEOFactor", "final *= 1"), tests: engineAll},
	{name: "profile-force-ignored", why: "a profile's forced channel is ignored",
		edits: one(engineGo, "if hasForce {\n\t\ta.Channel, a.SelectedBy = forced, \"profile\"", "if false {\n\t\ta.Channel, a.SelectedBy = forced, \"profile\""),
		tests: engineAll},
	{name: "random-pick-keeps-channel", why: "a random compliance pick is marked random but stays green",
		edits: one(engineGo, "a.Channel, a.SelectedBy = max(a.Channel, rs.randChan), \"random\"", "a.SelectedBy = \"random\""),
		tests: engineAll},

	// Reload and checkpoints.
	{name: "reload-no-swap", why: "Engine.Reload never swaps the ruleset (SIGHUP \"succeeds\", nothing changes)",
		edits: one(engineGo, "\te.rs.Store(rs)\n\treturn ch, nil\n}", "\t_ = rs\n\treturn ch, nil\n}"),
		tests: []test{engine, batch, stream, cmd}},
	{name: "reload-forgets-calibration", why: "a reload resets the calibration of detectors whose name and kind are unchanged",
		edits: one(engineGo, "rs.takeCalibration(old.calibration(), old.kind)", "_ = old"),
		tests: []test{engine, batch, cmd}},
	{name: "reload-ignores-kind-change", why: "a detector whose kind changed keeps the old kind's calibration",
		edits: one(engineGo, "|| kinds[name] != rs.kind[name] {", "{"),
		tests: []test{engine, batch, cmd}},
	{name: "checkpoint-ignores-ruleset", why: "checkpoint restore ignores a ruleset mismatch",
		edits: one("pipeline/engine/checkpoint.go", "if meta.Ruleset != cfg.Ruleset {", "if false && meta.Ruleset != cfg.Ruleset {"),
		tests: []test{engine, batch, stream}},
	{name: "sighup-ignored", why: "SIGHUP is caught but reloads nothing",
		edits: one(cmdGo, "_, _ = sv.reload(\"signal\")", "_ = \"signal\""), tests: []test{cmd}},
	{name: "sighup-not-caught", why: "no SIGHUP handler: a SIGHUP kills the process",
		edits: one(cmdGo, "signal.Notify(hup, syscall.SIGHUP)", "signal.Notify(hup, syscall.SIGUSR2)"), tests: []test{cmd}},

	// Outcomes.
	{name: "engine-outcomes-ignored", why: "the engine hands outcomes to no detector",
		edits: one(engineGo, "\t\t\tl.LearnOutcome(o, section(rec, rs.tags[i]))\n", "\t\t\t_, _ = l, i\n"), tests: engineAll},
	{name: "stream-outcomes-not-applied", why: "stream mode never applies outcomes",
		edits: one(streamGo, "if m.Topic == s.Config.OutcomesTopic {\n\t\t\ts.Metrics.Outcomes.Inc()",
			"if m.Topic == s.Config.OutcomesTopic && it.err == nil {\n\t\t\ts.tracker.done(m.Topic, m.Partition, m.Offset, it.epoch)\n\t\t\tcontinue\n\t\t}\n\t\tif m.Topic == s.Config.OutcomesTopic {\n\t\t\ts.Metrics.Outcomes.Inc()"),
		tests: []test{stream, cmd}},
	{name: "stream-invalid-outcome-dropped", why: "invalid outcome messages dropped without a dead letter",
		edits: one(streamGo, "if it.err != nil {\n\t\t\t\ts.deadLetter(produceCtx, it)\n\t\t\t\tcontinue",
			"if it.err != nil {\n\t\t\t\ts.tracker.done(m.Topic, m.Partition, m.Offset, it.epoch)\n\t\t\t\tcontinue"),
		tests: []test{stream, cmd}},
	{name: "replay-outcomes-early", why: "replay applies each outcome as soon as it is read, before its inspected_at",
		edits: one("pipeline/batch/replay.go", "for due.Len() > 0 && !due.peek().InspectedAt.After(eventTime) {", "for due.Len() > 0 {"),
		tests: []test{batch}},
	{name: "entities-new-record-used", why: "the entity table counts a new record as used, so a flood of importers seen once pushes out those seen again and again",
		edits: one("detectors/entities.go", "used := byte(0)", "used := byte(1)"),
		tests: []test{dets}},
	{name: "entities-tag-only", why: "an entity lookup trusts the index cell's 32-bit tag without checking the full hash",
		edits: one("detectors/entities.go", "sameTag(c, h) && binary.LittleEndian.Uint64(s.slotOf(splitRef(slotOfCell(c)))) == h", "sameTag(c, h)"),
		tests: []test{dets}},
	{name: "stall-not-unready", why: "a consumer whose fetches go unanswered stays ready: the stalled partitions are measured but not reported",
		edits: one("pipeline/stream/lag.go", "\t\ts.setStalled(strings.Join(stalled, \", \"))", "\t\ts.setStalled(strings.Join(stalled[:0], \", \"))"),
		tests: []test{stall, stream}},
	{name: "lag-frozen-while-stalled", why: "the instance's lag gauge is set only when a message is fetched, so it stays at its last value while nothing is read",
		edits: one("pipeline/stream/lag.go", "\t\t\t\ts.Metrics.Lag.WithLabelValues(topic, strconv.Itoa(a.ID)).Set(float64(n))", "\t\t\t\t_ = n"),
		tests: []test{stall, stream}},
	{name: "rule-share-to-model", why: "with the model scoring, the rule score's part of the score goes to the model's finding, so a profile that raised P(hit) shows 0 points",
		edits: one("pipeline/engine/model.go", "\t\t\t\t\ta.Findings[j].Points += pts\n\t\t\t\t\trest -= pts\n", "\t\t\t\t\ta.Findings[j].Points += 0 * pts\n"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestModelAssessments$"}, batch}},
	{name: "changelog-without-combined-record", why: "the importer's changelog message leaves out its combined record",
		edits: one("pipeline/stream/changelog.go", "\t\timp = append(imp, detectors.Write{Key: rk, Value: v})", "\t\t_ = v"),
		tests: []test{stream}},
	{name: "restore-ignores-checkpoint", why: "a restart reads every changelog partition from its start, whatever its checkpoint already holds",
		edits: one("pipeline/stream/changelog.go", "\tfrom, known := c.handover[topic][part]\n", "\tfrom, known := int64(0), false\n"),
		tests: []test{handover, stream}},
	{name: "restore-skips-tail", why: "a restart from a checkpoint reads nothing of the changelog, not even what was written after the checkpoint",
		edits: one("pipeline/stream/changelog.go", "\tif last > from {\n", "\tif last > from && !known {\n"),
		tests: []test{handover, stream}},
	{name: "pending-not-restored", why: "a partition's restore reads the changelog but not the pending topic, so the declarations assessed before a failover are not known when their outcomes come",
		edits: one("pipeline/stream/changelog.go", "\tfor _, topic := range s.Config.HandoverTopics() {\n\t\tif err := c.restoreTopic(", "\tfor _, topic := range []string{s.Config.Changelog()} {\n\t\tif err := c.restoreTopic("),
		tests: []test{handover, stream}},
	{name: "outcomes-before-restore", why: "after a failover the outcomes partition is read while its declarations' records are still being restored, so waiting outcomes find no record",
		edits: one("pipeline/stream/consumer.go", "\t\t\t\tcase c.s.Config.OutcomesTopic:\n\t\t\t\t\twait = restoring[a.ID]\n", "\t\t\t\tcase c.s.Config.OutcomesTopic:\n"),
		tests: []test{{pkg: "./pipeline/stream", run: "^TestOutcomesWaitForRestore$"}, stream}},
	{name: "missed-generations-kept", why: "an instance that rejoins after generations it missed keeps its partitions' state as complete and does not restore what others wrote meanwhile",
		edits: one("pipeline/stream/consumer.go", "\tif c.lastGen != 0 && genID != c.lastGen+1 {\n\t\tclear(c.restored)\n", "\tif c.lastGen != 0 && genID != c.lastGen+1 {\n"),
		tests: []test{{pkg: "./pipeline/stream", run: "^TestToRestore$"}, stream}},
	{name: "repeat-learned-again", why: "a declaration redelivered or resubmitted under an id already assessed is learned from a second time",
		edits: one(engineGo, "repeat := w.repeat || ds.store.HasDecl(key)\n", "repeat := w.repeat && ds.store.HasDecl(key)\n"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestRepeatLearnedOnce$"}, batch}},
	{name: "repeat-in-batch-missed", why: "a repeat of an earlier declaration of the same micro-batch under another importer is learned again when the two fall in different lanes, so the assessments depend on the number of workers",
		edits: one("pipeline/engine/batch.go", "ws[i].d, ws[i].a, ws[i].timed, ws[i].repeat = d, nil, false, again", "ws[i].d, ws[i].a, ws[i].timed, ws[i].repeat = d, nil, false, again && false"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestReplayWorkersIdentical$"}, batch}},
	{name: "evaluation-counts-repeats", why: "the evaluation counts a declaration id assessed twice twice, its hit and revenue with it",
		edits: one("pipeline/batch/evaluate.go", "\t\tcase again:\n\t\t\tev.Repeated++\n", "\t\tcase again && false:\n\t\t\tev.Repeated++\n"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestEvaluate$"}, batch}},
	{name: "evaluation-at-last-repeat", why: "the evaluation counts a repeated id at its last assessment, made against state that had learned from the declaration itself",
		edits: one("pipeline/batch/evaluate.go", "\t\tcase again:\n\t\t\tev.Repeated++\n", "\t\tcase again:\n\t\t\tev.Repeated++\n\t\t\tfor j := range s {\n\t\t\t\tif s[j].ID == x.ID {\n\t\t\t\t\ts[j] = *x\n\t\t\t\t}\n\t\t\t}\n"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestEvaluate$"}, batch}},
	{name: "handover-kept-after-eviction", why: "a checkpoint records the changelog's offsets although an entity record was evicted while the state was measured and saved, so a restart skips records the state no longer holds",
		edits: one("pipeline/stream/changelog.go", "\tif store.Evicted() != m.evicted {\n", "\tif false && store.Evicted() != m.evicted {\n"),
		tests: []test{{pkg: "./pipeline/stream", run: "^TestHandoverConfirmed$"}, stream}},
	{name: "handover-kept-after-rebalance", why: "a checkpoint records offsets measured in a generation that ended before the save, when another instance may have written the partition's records",
		edits: one("pipeline/stream/changelog.go", "\tif m == nil || m.c.epoch.Load() != m.epoch || m.c.gen.Load() == nil {\n", "\tif m == nil || m.c.gen.Load() == nil {\n"),
		tests: []test{{pkg: "./pipeline/stream", run: "^TestHandoverConfirmed$"}, stream}},
	{name: "stale-holder-hands-over", why: "an instance that does not hold an importer's partition in the current generation hands the importer's outcome records over, overwriting the owner's",
		edits: one("pipeline/stream/changelog.go", "\t_, ok := c.restored[part]\n\treturn ok\n", "\treturn true\n"),
		tests: []test{{pkg: "./pipeline/stream", run: "^TestHandoverConfirmed$"}, stream}},
	{name: "measure-ignores-evictions", why: "a checkpoint records the changelog offset of a partition held since before an entity record was evicted, so a restart does not read back the importer records that eviction dropped",
		edits: one("pipeline/stream/changelog.go", "\t\t\tevictedSince[p] = m.evicted > c.heldSince[p]\n", "\t\t\tevictedSince[p] = false\n"),
		tests: []test{{pkg: "./pipeline/stream", run: "^TestMeasureHandover$"}, stream}},
	{name: "repeat-inspected-again", why: "closed-loop replay inspects a repeated declaration again when its repeat's channel is yellow or red",
		edits: one("pipeline/batch/replay.go", "a.Channel != declaration.Green && !a.Repeat {", "a.Channel != declaration.Green {"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestRepeatLearnedOnce$"}, batch}},
	{name: "evaluation-repeat-after-warmup", why: "the evaluation counts an id first assessed in the warm-up at its repeat, which was scored against state that may hold its own outcome",
		edits: one("pipeline/batch/evaluate.go", "\t\tcase before:\n\t\t\tev.Before++\n", "\t\tcase before:\n\t\t\tev.Before++\n\t\t\tdelete(seen, h)\n"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestEvaluate"}, batch}},
	{name: "config-same-wire-topics", why: "validate accepts a configuration whose assessments go to its declarations topic, read back as declarations",
		edits: one("config/config.go", "if k, dup := others[n.topic]; dup && n.topic != \"\" {", "if k, dup := others[n.topic]; false && dup && n.topic != \"\" {"),
		tests: []test{config}},
	{name: "cli-same-file-written", why: "replay --output names its --input and empties it before reading it",
		edits: one("cmd/riskmon/main.go", "\t\t\t\tif sameFile(s, r) {", "\t\t\t\tif false && sameFile(s, r) {"),
		tests: []test{{pkg: "./cmd/riskmon", run: "^TestSameFileRefused$"}}},
	{name: "cli-usage-on-bad-flag", why: "a mistyped flag prints the whole usage on stdout, into the file stdout is redirected to",
		edits: one("cmd/riskmon/main.go", "\tfs.Usage = func() {}\n\terr := fs.Parse(args)", "\terr := fs.Parse(args)"),
		tests: []test{{pkg: "./cmd/riskmon", run: "^TestUserErrors$"}}},
	{name: "evaluation-window-ignores-to", why: "an evaluation of a period also counts the declarations lodged after it",
		edits: one("pipeline/batch/evaluate.go", "\treturn w.To.IsZero() || x.LodgedAt.Before(w.To), false\n", "\treturn true, false\n"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestEvaluateWindow$"}, batch}},
	{name: "evaluation-window-from-exclusive", why: "an evaluation of a period leaves out the declarations lodged at its first instant",
		edits: one("pipeline/batch/evaluate.go", "\t\tbefore = x.LodgedAt.Before(w.From)\n", "\t\tbefore = !x.LodgedAt.After(w.From)\n"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestEvaluateWindow$"}, batch}},
	{name: "eval-from-flag-ignored", why: "replay and compare evaluate after the warm-up share although --eval-from names a period",
		edits: one("cmd/riskmon/main.go", "\tif *f.from != \"\" {\n", "\tif false {\n"),
		tests: []test{{pkg: "./cmd/riskmon", run: "^TestGenReplay$"}}},
	{name: "compare-known-direction", why: "compare counts the known hits moved to a stricter channel as moved to a lighter one, and the other way round",
		edits: one("pipeline/batch/compare.go", "\t\tif x.Candidate.Channel < x.Base.Channel {\n\t\t\tm = &c.Lighter\n", "\t\tif x.Candidate.Channel > x.Base.Channel {\n\t\t\tm = &c.Lighter\n"),
		tests: []test{{pkg: "./pipeline/batch", run: "^TestCompare"}, batch}},
	{name: "history-not-learning", why: "the history detector stops learning from outcomes",
		edits: one("detectors/history.go", "func (h *history) LearnOutcome(o *declaration.Outcome, v []byte) {\n", "func (h *history) LearnOutcome(o *declaration.Outcome, v []byte) {\n\tif o != nil {\n\t\treturn\n\t}\n"),
		tests: []test{dets, engine, batch, quality}},

	// Concurrency.
	{name: "batch-lane-by-declaration", why: "a micro-batch deals declarations into lanes by declaration id, so one importer's declarations are assessed in several lanes, each blind to the others' writes",
		edits: one("pipeline/engine/batch.go", "xxhash.Sum64String(ws[i].d.Importer.ID) % uint64(lanes)", "xxhash.Sum64String(ws[i].d.ID) % uint64(lanes)"),
		tests: []test{determin, batch}},
	{name: "score-read-survives-eviction", why: "a detector's Learn writes back the record its Score read even when the store evicted that record in between",
		edits: one("detectors/detector.go", "\tif s.evictions() != r.mark {", "\tif false && s.evictions() != r.mark {"),
		tests: []test{dets}},
	{name: "decl-log-index-keeps-deleted", why: "the declaration log deletes its oldest segment at the cap but its index still points into it",
		edits: one("detectors/decllog.go", "\t\t\tif uint32(loc>>32) == old.seq {", "\t\t\tif false && uint32(loc>>32) == old.seq {"),
		tests: []test{dets}},
	{name: "decl-log-restart-keeps-later-writes", why: "a restart from a checkpoint keeps what the declaration log took after the checkpoint",
		edits: one("detectors/decllog.go", "\t\tif seq < first || seq > last {", "\t\tif seq < first {"),
		tests: []test{dets, engine}},
	{name: "decl-log-fresh-start-keeps-records", why: "a store started without history leaves the segments of an earlier run in state.pending_dir",
		edits: one("detectors/decllog.go", "\t\tfor _, seq := range sh.existing() {\n\t\t\tname := filepath.Join(l.dir, segmentName(i, seq))", "\t\tfor _, seq := range sh.existing()[:0] {\n\t\t\tname := filepath.Join(l.dir, segmentName(i, seq))"),
		tests: []test{dets}},
	{name: "decl-log-deletes-what-a-checkpoint-needs", why: "the declaration log deletes at once the segments its cap drops, though the checkpoint a restart would start from still holds them",
		edits: one("detectors/decllog.go", "\t\tif sh.keep {", "\t\tif false && sh.keep {"),
		tests: []test{dets}},
	{name: "decl-log-keeps-retired-files", why: "the segments the declaration log's cap dropped are never deleted from disk",
		edits: one("detectors/decllog.go", "\t\tif r.saves+2 <= sh.saves {", "\t\tif false && r.saves+2 <= sh.saves {"),
		tests: []test{dets}},
	{name: "decl-log-any-shard", why: "declaration log shards chosen otherwise than the batch end shares out the declaration writes",
		edits: one("detectors/decllog.go", "return &l.shards[h%logShards]", "return &l.shards[h%(logShards-3)]"),
		tests: []test{dets, batch}},
	{name: "batch-end-decl-by-bucket", why: "the batch end shares out declaration writes by fastcache bucket, so that one log shard is appended to by several goroutines",
		edits: one("detectors/store.go", "\t\t\treturn w.bucket % logShards", "\t\t\treturn w.bucket"),
		tests: []test{dets}},
	{name: "decl-log-any-mark", why: "a restart takes a checkpoint's mark of another run of the directory for its own",
		edits: one("detectors/decllog.go", "l.id == \"\" || l.id != m.ID {", "l.id == \"\" {"),
		tests: []test{dets}},
	{name: "unit-value-memo-survives-drop", why: "unit_value's Learn measures an item against the peer group its Score read even when an earlier item's update dropped that group",
		edits: one("detectors/unit_value.go", " && u.peers.table.Dropped() == l.drops", ""),
		tests: []test{dets}},
	{name: "batch-end-supersedes-declarations", why: "a batch's end leaves out a declaration write superseded in its overlay, so what the pending ring holds depends on how the batch was shared out",
		edits: one("detectors/store.go", "if !w.decl && o.vals[0][w.key] != j {", "if o.vals[ns(w.decl)][w.key] != j {"),
		tests: []test{dets}},
	{name: "stream-worker-by-offset", why: "worker chosen by offset instead of importer",
		edits: one(streamGo, "workers[xxhash.Sum64String(it.d.Importer.ID)%uint64(len(workers))]", "workers[xxhash.Sum64String(strconv.FormatInt(m.Offset, 10))%uint64(len(workers))]"),
		tests: []test{stream, cmd}},
	{name: "ordered-completion-order", why: "replay's ordered map emits in completion order",
		edits: []edit{
			{"pipeline/batch/ordered.go", "j.res <- f(j.v)", "out <- f(j.v)"},
			{"pipeline/batch/ordered.go", "for res := range queue {\n\t\t\tout <- <-res\n\t\t}\n\t\tclose(out)\n\t\twg.Wait()", "for range queue {\n\t\t}\n\t\twg.Wait()\n\t\tclose(out)"},
		},
		tests: []test{ordered, determin, batch}},

	// Configuration validation.
	{name: "config-pending-bound-moved", why: "state.pending_mb of 32 refused",
		edits: one(configGo, "c.State.PendingMB < 32", "c.State.PendingMB <= 32"), tests: []test{config}},
	{name: "config-shared-entries-unchecked", why: "state.shared_entries range check removed",
		edits: one(configGo, "if c.State.SharedEntries < 1000 {", "if false {"), tests: []test{config}},
	{name: "config-max-message-bytes-unchecked", why: "engine.max_message_bytes range check removed",
		edits: one(configGo, "if c.Engine.MaxMessageBytes < 1024 {", "if false {"), tests: []test{config}},
	{name: "config-yellow-no-upper-bound", why: "scoring.yellow above 100 accepted",
		edits: one(configGo, "s.Yellow <= 0 || s.Yellow > 100", "s.Yellow <= 0"), tests: []test{config}},
	{name: "config-red-zero-accepted", why: "scoring.red of 0 accepted",
		edits: one(configGo, "s.Red <= 0 || s.Red > 100", "s.Red < 0 || s.Red > 100"), tests: []test{config}},
	{name: "config-red-below-yellow", why: "scoring.red below scoring.yellow accepted",
		edits: one(configGo, "} else if s.Red < s.Yellow {", "} else if false {"), tests: []test{config}},
	{name: "config-aeo-factor-negative", why: "a negative scoring.aeo_factor accepted",
		edits: one(configGo, "s.AEOFactor < 0 || s.AEOFactor > 1", "s.AEOFactor > 1"), tests: []test{config}},
	{name: "config-full-tail-half", why: "scoring.calibration.full_tail of 0.5 accepted",
		edits: one(configGo, "c.FullTail >= 0.5", "c.FullTail > 0.5"), tests: []test{config}},
	{name: "config-min-declarations-unchecked", why: "a negative scoring.calibration.min_declarations accepted",
		edits: one(configGo, "if s.Calibration.MinDeclarations < 0 {", "if false {"), tests: []test{config}},
	{name: "config-random-rate-negative", why: "a negative random.rate accepted",
		edits: one(configGo, "c.Random.Rate < 0 || c.Random.Rate > 1", "c.Random.Rate > 1"), tests: []test{config}},
	{name: "config-weight-negative", why: "a negative detector weight accepted",
		edits: one(configGo, "(*det.Weight < 0 || *det.Weight > 100)", "(*det.Weight > 100)"), tests: []test{config}},
	{name: "config-stream-ints-zero", why: "stream partitions, workers, intervals of 0 accepted",
		edits: one(configGo, "if v < 1 {\n\t\t\td.Problemf(k, \"must be >= 1, got %d\", v)", "if v < 0 {\n\t\t\td.Problemf(k, \"must be >= 1, got %d\", v)"),
		tests: []test{config}},
	{name: "config-linger-unchecked", why: "a negative stream.linger_ms accepted",
		edits: one(configGo, "if st.LingerMS < 0 {", "if false {"), tests: []test{config}},
	{name: "config-window-below-min-labels", why: "model.window below model.min_labels accepted",
		edits: one(configGo, "m.Window < m.MinLabels || m.Window < 100", "m.Window < 100"), tests: []test{config}},
	{name: "config-depth-zero", why: "model.depth of 0 accepted",
		edits: one(configGo, "m.Depth < 1 || m.Depth > 12", "m.Depth < 0 || m.Depth > 12"), tests: []test{config}},
	{name: "config-learning-rate-zero", why: "model.learning_rate of 0 accepted",
		edits: one(configGo, "m.LearningRate <= 0 || m.LearningRate > 1", "m.LearningRate < 0 || m.LearningRate > 1"), tests: []test{config}},
	{name: "config-bins-one", why: "model.bins of 1 accepted",
		edits: one(configGo, "m.Bins < 2 || m.Bins > 255", "m.Bins < 1 || m.Bins > 255"), tests: []test{config}},
	{name: "config-rates-yellow-one", why: "a scoring.rates.yellow of 1 accepted",
		edits: one(configGo, "r.Yellow < 0 || r.Yellow >= 1", "r.Yellow < 0 || r.Yellow > 1"), tests: []test{config}},
	{name: "config-rates-window-bound-moved", why: "a scoring.rates.window of 1000 refused",
		edits: one(configGo, "r.Window < 1000", "r.Window <= 1000"), tests: []test{config}},
	{name: "config-log-format-unchecked", why: "any stream.log_format accepted",
		edits: one(configGo, "st.LogFormat != \"json\" && st.LogFormat != \"console\"", "st.LogFormat == \"\""), tests: []test{config}},
	{name: "ruleset-id-covers-stream", why: "the stream section (deployment settings) changes the ruleset id",
		edits: one(configGo, "if m.Content[i].Value == \"stream\" {", "if m.Content[i].Value == \"(none)\" {"), tests: []test{config}},
	{name: "config-validation-share-negative", why: "a negative model.validation_share accepted",
		edits: one(configGo, "m.ValidationShare < 0 || m.ValidationShare >= 0.5", "m.ValidationShare >= 0.5"), tests: []test{config}},

	// Declaration decoding (spec: declaration.md).
	{name: "decode-gross-mass-zero", why: "gross mass 0 accepted",
		edits: one(decodeGo, "} else if it.GrossMassKg <= 0 {", "} else if it.GrossMassKg < 0 {"), tests: []test{decl}},
	{name: "decode-duplicate-lines", why: "duplicate item lines accepted",
		edits: one(decodeGo, "if d.Items[j].Line == d.Items[i].Line {", "if false && d.Items[j].Line == d.Items[i].Line {"), tests: []test{decl}},
	{name: "decode-1000-items", why: "1,000 items accepted",
		edits: one(decodeGo, "case len(items) > MaxItems:", "case len(items) > MaxItems+1:"), tests: []test{decl}},
	{name: "decode-infinite-accepted", why: "numbers too large for a float64 (infinite) accepted",
		edits: one("declaration/reader.go", "if math.IsInf(f, 0) || math.IsNaN(f) {", "if math.IsNaN(f) {"), tests: []test{decl}},
	{name: "json-control-character", why: "a raw control character inside a string accepted",
		edits: one(jsonGo, "for c := 0; c < 0x20; c++ {", "for c := 0; c < 0x09; c++ {"), tests: []test{decl}},
	{name: "json-leading-zero", why: "a number with a leading zero (01) accepted",
		edits: one(jsonGo, "case s.i < len(s.b) && s.b[s.i] == '0':\n\t\ts.i++", "case s.i < len(s.b) && s.b[s.i] == '0':\n\t\ts.digits()"), tests: []test{decl}},
	{name: "json-trailing-garbage", why: "bytes after the declaration's closing brace accepted",
		edits: one(jsonGo, "if s.ws(); s.err == nil && s.i < len(s.b) {", "if s.ws(); false {"), tests: []test{decl}},
	{name: "json-unknown-duplicate", why: "a key repeated in an object riskmon does not read accepted",
		edits: one(jsonGo, "if string(k) == string(m.key) {", "if string(k) == string(m.key) && false {"), tests: []test{decl}},
	{name: "json-fast-float-16-digits", why: "decimals of 16 or more digits converted by the fast path (not exact)",
		edits: one(jsonGo, "digits <= 15 && exp >= -22", "digits <= 19 && exp >= -22"), tests: []test{decl}},
	{name: "json-surrogate-pair", why: "a surrogate pair escape decoded as two replacement characters",
		edits: one(jsonGo, "if r2, ok := s.hex4(s.i + 4); ok &&", "if r2, ok := s.hex4(s.i + 4); false && ok &&"), tests: []test{decl}},
	{name: "decode-line-zero", why: "item line 0 accepted",
		edits: one(decodeGo, "case line < 1 || line > 1e9:", "case line < 0 || line > 1e9:"), tests: []test{decl}},
	{name: "decode-hs-11-digits", why: "an 11-digit HS code accepted",
		edits: one(decodeGo, "n < 6 || n > 10 || !allDigits(it.HSCode)", "n < 6 || n > 11 || !allDigits(it.HSCode)"), tests: []test{decl}},
	{name: "decode-importer-id-36", why: "a 36-character importer id accepted",
		edits: one(decodeGo, "n < 1 || n > 35 {", "n < 1 || n > 36 {"), tests: []test{decl}},
	{name: "decode-negative-value", why: "a slightly negative customs value accepted",
		edits: one(decodeGo, "} else if it.CustomsValue < 0 {", "} else if it.CustomsValue < -0.75 {"), tests: []test{decl}},
	{name: "decode-outcome-negative-revenue", why: "a slightly negative outcome revenue accepted",
		edits: one("declaration/outcome.go", "ok && oc.Revenue < 0 {", "ok && oc.Revenue < -0.25 {"), tests: []test{decl}},

	// A declaration's record.
	{name: "declrecord-redelivery-learned", why: "a redelivered outcome learned again (the record not marked done)",
		edits: one(engineGo, "\t\te.store.SetDecl(key, []byte{doneMark})", "\t\t_ = doneMark"), tests: []test{engine}},
	{name: "declrecord-history-section-lost", why: "history's section of the declaration's record not kept (its outcome teaches the importer only)",
		edits: one(engineGo, "if p := l.Pending(d, a, rec); len(p) >= len(rec) {", "if p := l.Pending(d, a, rec); len(p) < 0 {"), tests: []test{engine}},

	// The pending record's compact form.
	{name: "half-ties-away", why: "features rounded to binary16 with ties away from zero instead of to even",
		edits: one("pipeline/engine/half.go", "rem > 0x1000 || rem == 0x1000 && k&1 == 1", "rem >= 0x1000"), tests: []test{engine}},
	{name: "pending-derives-every-id", why: "an id left out of the pending record as derived when it does not derive",
		edits: one("pipeline/engine/model.go", "if isDerived(k, ids) {", "if isDerived(k, ids) || true {"), tests: []test{engine}},

	// The learned model, for the quality floors.
	{name: "model-never-scores", why: "the learned model trains but never scores (rules alone)",
		edits: one(engineGo, "if model != nil && model.lay == rs.lay {", "if false && model != nil && model.lay == rs.lay {"),
		tests: []test{engine, batch, quality}},

	// Quality floors alone: the same bugs, judged by the detection-quality
	// test only (run with -run '^quality-').
	{name: "quality-history-not-learning", why: "the history detector stops learning from outcomes (quality test only)",
		edits: one("detectors/history.go", "func (h *history) LearnOutcome(o *declaration.Outcome, v []byte) {\n", "func (h *history) LearnOutcome(o *declaration.Outcome, v []byte) {\n\tif o != nil {\n\t\treturn\n\t}\n"),
		tests: []test{quality}},
	{name: "quality-model-never-scores", why: "rules alone (quality test only)",
		edits: one(engineGo, "if model != nil && model.lay == rs.lay {", "if false && model != nil && model.lay == rs.lay {"),
		tests: []test{quality}},
}

type result struct {
	status string // killed, survived, error
	detail string
	took   time.Duration
}

func main() {
	runRe := flag.String("run", "", "run only the mutants whose name matches this regular expression")
	skipRe := flag.String("skip", "", "skip the mutants whose name matches this regular expression")
	list := flag.Bool("list", false, "list the mutants and exit")
	keep := flag.Bool("keep", false, "keep the scratch copy")
	strict := flag.Bool("strict", false, "exit 1 when a mutant survives")
	noBaseline := flag.Bool("no-baseline", false, "skip the run of the tests on the unmutated copy")
	timeout := flag.Duration("timeout", 6*time.Minute, "go test -timeout for each test run")
	verbose := flag.Bool("v", false, "print the output of failing baseline runs and of mutants that error")
	check := flag.Bool("check", false, "only check that every mutant's text matches its file once, without running tests")
	flag.Parse()

	sel := mutants[:0:0]
	for _, m := range mutants {
		if (*runRe == "" || regexp.MustCompile(*runRe).MatchString(m.name)) && (*skipRe == "" || !regexp.MustCompile(*skipRe).MatchString(m.name)) {
			sel = append(sel, m)
		}
	}
	if *list {
		for _, m := range sel {
			files := map[string]bool{}
			for _, e := range m.edits {
				files[e.file] = true
			}
			var fs, ts []string
			for f := range files {
				fs = append(fs, f)
			}
			for _, t := range m.tests {
				ts = append(ts, t.String())
			}
			fmt.Printf("%-36s %s\n%36s   %s; tests: %s\n", m.name, m.why, "", strings.Join(fs, ", "), strings.Join(ts, "; "))
		}
		return
	}
	if len(sel) == 0 {
		fatalf("no mutant matches")
	}
	if *check {
		root, err := repoRoot()
		if err != nil {
			fatalf("%v", err)
		}
		bad := 0
		for _, m := range sel {
			for _, e := range m.edits {
				b, err := os.ReadFile(filepath.Join(root, e.file))
				if n := bytes.Count(b, []byte(e.old)); err != nil || n != 1 {
					bad++
					fmt.Printf("%-36s error: pattern found %d times in %s (want once): %q\n", m.name, n, e.file, e.old)
				}
			}
		}
		fmt.Printf("%d mutants, %d patterns that do not match once\n", len(sel), bad)
		if bad > 0 {
			os.Exit(1)
		}
		return
	}

	root, err := repoRoot()
	if err != nil {
		fatalf("%v", err)
	}
	scratch, err := os.MkdirTemp("", "riskmon-mutants-")
	if err != nil {
		fatalf("%v", err)
	}
	if !*keep {
		defer os.RemoveAll(scratch)
	}
	if err := copyTree(root, scratch); err != nil {
		fatalf("copying %s: %v", root, err)
	}
	start := time.Now()
	fmt.Printf("mutants: %d, scratch copy of %s in %s\n", len(sel), root, scratch)

	errors := 0
	baselineBad := map[string]bool{}
	if !*noBaseline {
		seen := map[string]bool{}
		for _, m := range sel {
			for _, t := range m.tests {
				if seen[t.String()] {
					continue
				}
				seen[t.String()] = true
				t0 := time.Now()
				ok, out := runTest(scratch, t, *timeout)
				fmt.Printf("baseline %-70s %s (%.0fs)\n", t, map[bool]string{true: "ok", false: "FAILS"}[ok], time.Since(t0).Seconds())
				if !ok {
					baselineBad[t.String()] = true
					errors++
					if *verbose {
						fmt.Println(indent(out))
					}
				}
			}
		}
	}

	results := make([]result, len(sel))
	for i, m := range sel {
		t0 := time.Now()
		results[i] = runMutant(scratch, m, *timeout, baselineBad)
		results[i].took = time.Since(t0)
		r := results[i]
		fmt.Printf("%-36s %-8s %s (%.0fs)\n", m.name, r.status, firstLine(r.detail), r.took.Seconds())
		if r.status == "error" {
			errors++
			if *verbose {
				fmt.Println(indent(r.detail))
			}
		}
	}

	killed, survived := 0, 0
	fmt.Printf("\n| mutant | bug | result |\n|---|---|---|\n")
	for i, m := range sel {
		r := results[i]
		switch r.status {
		case "killed":
			killed++
		case "survived":
			survived++
		}
		fmt.Printf("| %s | %s | %s: %s |\n", m.name, m.why, r.status, firstLine(r.detail))
	}
	fmt.Printf("\ntotal %d: %d killed, %d survived, %d errors, in %s\n", len(sel), killed, survived, len(sel)-killed-survived, time.Since(start).Round(time.Second))
	if errors > 0 || (*strict && survived > 0) {
		if !*keep {
			os.RemoveAll(scratch) // os.Exit skips the deferred removal
		}
		os.Exit(1)
	}
}

// runMutant applies m's edits to the scratch copy, runs its tests and puts
// the files back.
func runMutant(dir string, m mutant, timeout time.Duration, baselineBad map[string]bool) result {
	orig := map[string][]byte{}
	defer func() {
		for f, b := range orig {
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				fatalf("restoring %s: %v", f, err)
			}
		}
	}()
	for _, e := range m.edits {
		path := filepath.Join(dir, e.file)
		b, err := os.ReadFile(path)
		if err != nil {
			return result{status: "error", detail: err.Error()}
		}
		if _, saved := orig[e.file]; !saved {
			orig[e.file] = b
		}
		if n := bytes.Count(b, []byte(e.old)); n != 1 {
			return result{status: "error", detail: fmt.Sprintf("pattern found %d times in %s (want once): %q", n, e.file, e.old)}
		}
		if err := os.WriteFile(path, bytes.Replace(b, []byte(e.old), []byte(e.new), 1), 0o644); err != nil {
			return result{status: "error", detail: err.Error()}
		}
	}
	for _, t := range m.tests {
		if baselineBad[t.String()] {
			return result{status: "error", detail: "the baseline fails: " + t.String()}
		}
		ok, out := runTest(dir, t, timeout)
		if ok {
			continue
		}
		if strings.Contains(out, "[build failed]") || strings.Contains(out, "[setup failed]") {
			return result{status: "error", detail: "does not build: " + t.String() + "\n" + out}
		}
		return result{status: "killed", detail: "by " + t.pkg + " " + failedTests(out)}
	}
	var ts []string
	for _, t := range m.tests {
		ts = append(ts, t.String())
	}
	return result{status: "survived", detail: strings.Join(ts, "; ")}
}

func runTest(dir string, t test, timeout time.Duration) (bool, string) {
	args := []string{"test", "-count=1", "-vet=off", "-timeout", timeout.String()}
	if t.run != "" {
		args = append(args, "-run", t.run)
	}
	args = append(args, t.pkg)
	c := exec.Command("go", args...)
	c.Dir = dir
	c.Env = append(os.Environ(), t.env...)
	out, err := c.CombinedOutput()
	return err == nil, string(out)
}

var failRe = regexp.MustCompile(`(?m)^--- FAIL: (\S+)`)

// failedTests names the top-level tests that failed, or the timeout.
func failedTests(out string) string {
	var names []string
	for _, m := range failRe.FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	if strings.Contains(out, "panic: test timed out") {
		names = append(names, "(test timed out)")
	} else if len(names) == 0 && strings.Contains(out, "panic:") {
		names = append(names, "(panic)")
	}
	if len(names) == 0 {
		return "(failed)"
	}
	return strings.Join(names, ", ")
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the riskmon module")
	}
	return filepath.Dir(mod), nil
}

// copyTree copies the repository's files, without .git.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutants: "+format+"\n", args...)
	os.Exit(1)
}
