package batch

import "sync"

// ordered applies f to every value from in on n goroutines and delivers the
// results in input order. It closes its output when in is closed and all
// results are out.
func ordered[T, U any](in <-chan T, n int, f func(T) U) <-chan U {
	type job struct {
		v   T
		res chan U
	}
	jobs := make(chan job, n)
	queue := make(chan chan U, 2*n)
	out := make(chan U, n)
	go func() {
		for v := range in {
			res := make(chan U, 1)
			queue <- res
			jobs <- job{v, res}
		}
		close(jobs)
		close(queue)
	}()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.res <- f(j.v)
			}
		}()
	}
	go func() {
		for res := range queue {
			out <- <-res
		}
		close(out)
		wg.Wait()
	}()
	return out
}
