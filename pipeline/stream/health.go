package stream

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// health is what readiness is made of, written by the consumer, the
// producer's completion hook and the broker probe.
type health struct {
	running   atomic.Bool
	lastOK    atomic.Int64 // unix nanos of the last acknowledged produce
	lastFail  atomic.Int64 // unix nanos of the last failed produce
	probeOK   atomic.Int64 // unix nanos of the last successful broker probe
	probeFail atomic.Int64 // unix nanos of the last failed broker probe

	mu       sync.Mutex
	failErr  error  // the last produce failure
	probeErr error  // the last probe failure
	stalled  string // the partitions held that have messages to read and give none (lag.go)
}

// ReadyState reports whether the stream is ready, and why not when it is
// not: the consumer is a member of its group (with or without partitions,
// with or without traffic), no partition it holds has messages to read and
// gave none for stream.stall_seconds, the last produce did not fail (or a
// later one succeeded), and the last probe of the brokers (every 2 s)
// reached one. The reason names every condition that fails, for /readyz.
func (s *Stream) ReadyState() (bool, string) {
	h := &s.health
	cons := s.consumer.Load()
	if !h.running.Load() || cons == nil {
		return false, "not ready: stream is not running"
	}
	var fails []string
	joined, why := cons.membership(time.Now(), time.Unix(0, h.probeFail.Load()))
	if !joined {
		fails = append(fails, why)
	}
	h.mu.Lock()
	failErr, probeErr, stalled := h.failErr, h.probeErr, h.stalled
	h.mu.Unlock()
	if stalled != "" {
		fails = append(fails, "consumer stalled on "+stalled)
	}
	// A failure counts while outputs still wait for the broker: a late
	// report of an attempt whose outputs were since acknowledged must not
	// keep an idle stream unready.
	if at := h.lastFail.Load(); at > h.lastOK.Load() && (s.retries.len() > 0 || s.tracker.pending() > 0) {
		fails = append(fails, fmt.Sprintf("producer: last produce failed at %s: %v", time.Unix(0, at).UTC().Format(time.RFC3339), failErr))
	}
	if h.probeFail.Load() > h.probeOK.Load() {
		fails = append(fails, fmt.Sprintf("broker probe failing: %v", probeErr))
	}
	if len(fails) > 0 {
		return false, "not ready: " + strings.Join(fails, "; ")
	}
	return true, "ready: " + why + ", producer healthy"
}

// setStalled records the stalled partitions ("" for none) and logs when a
// stall begins and ends.
func (s *Stream) setStalled(stalled string) {
	h := &s.health
	h.mu.Lock()
	was := h.stalled
	h.stalled = stalled
	h.mu.Unlock()
	switch {
	case was == "" && stalled != "":
		s.Log.Error().Str("partitions", stalled).Msg("consumer stalled: partitions held have messages to read and give none; not ready")
	case was != "" && stalled == "":
		s.Log.Info().Msg("consumer reading again")
	}
	s.updateReady()
}

func (s *Stream) updateReady() {
	if ok, _ := s.ReadyState(); ok {
		s.Metrics.Ready.Set(1)
	} else {
		s.Metrics.Ready.Set(0)
	}
}

// produceFailed records a failed produce for readiness, and logs only the
// first failure after a success, so that a broker refusing thousands of
// messages does not flood the log.
func (s *Stream) produceFailed(err error, n int) {
	h := &s.health
	s.Metrics.ProduceErrors.Inc()
	h.mu.Lock()
	h.failErr = err
	h.mu.Unlock()
	wasHealthy := h.lastFail.Load() <= h.lastOK.Load()
	h.lastFail.Store(time.Now().UnixNano())
	if wasHealthy {
		s.Log.Error().Err(err).Int("messages", n).Msg("produce failed; retrying with backoff, not ready until a produce succeeds")
		s.updateReady()
	}
}

// produceSucceeded records an acknowledged produce.
func (s *Stream) produceSucceeded() {
	h := &s.health
	wasFailing := h.lastFail.Load() > h.lastOK.Load()
	h.lastOK.Store(time.Now().UnixNano())
	if wasFailing {
		s.Log.Info().Msg("produce succeeded again")
		s.updateReady()
	}
}

// probeLoop checks every 2 s that a broker answers a metadata request, so
// that readiness falls when the brokers are gone even with no traffic. It
// also refreshes the readiness gauge, which the time a rebalance has taken
// changes without any event.
func (s *Stream) probeLoop(brokers []string, stop <-chan struct{}) {
	h := &s.health
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var err error
		for _, b := range brokers {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, derr := s.Security.dialer().DialContext(ctx, "tcp", b)
			cancel()
			if err = derr; err == nil {
				conn.SetDeadline(time.Now().Add(time.Second))
				_, err = conn.Brokers()
				conn.Close()
			}
			if err == nil {
				break
			}
		}
		now := time.Now().UnixNano()
		if err == nil {
			if h.probeFail.Load() > h.probeOK.Load() {
				s.Log.Info().Strs("brokers", brokers).Msg("a broker answers again")
			}
			h.probeOK.Store(now)
		} else {
			h.mu.Lock()
			h.probeErr = fmt.Errorf("no broker of %v answers: %w", brokers, err)
			h.mu.Unlock()
			if h.probeFail.Load() <= h.probeOK.Load() {
				s.Log.Error().Err(err).Strs("brokers", brokers).Msg("no broker answers: not ready")
			}
			h.probeFail.Store(now)
		}
		s.updateReady()
	}
}
