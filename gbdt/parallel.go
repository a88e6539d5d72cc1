package gbdt

import (
	"runtime"
	"sync"
)

// parallel splits 0..n-1 into up to GOMAXPROCS contiguous ranges and calls
// fn on each in its own goroutine, returning when all are done. Callers
// only let fn write state owned by its range, so results do not depend on
// how the range is split.
func parallel(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { fn(lo, hi) })
	}
	wg.Wait()
}
