package batch

import (
	"math/rand/v2"
	"testing"
	"time"
)

// ordered delivers results in input order even when later inputs finish
// first: four inputs run at once, the last three are let finish in reverse
// order, and nothing may come out until the first one is done.
func TestOrderedOutOfOrderCompletion(t *testing.T) {
	const n = 4
	var (
		started  = make(chan int, n)
		release  [n]chan struct{}
		finished [n]chan struct{}
	)
	for i := range release {
		release[i], finished[i] = make(chan struct{}), make(chan struct{})
	}
	in := make(chan int)
	out := ordered(in, n, func(v int) int {
		started <- v
		<-release[v]
		close(finished[v])
		return v * 10
	})
	go func() {
		for v := range n {
			in <- v
		}
		close(in)
	}()
	for range n {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the four inputs did not start together on four goroutines")
		}
	}
	for v := n - 1; v >= 1; v-- {
		close(release[v])
		<-finished[v]
	}
	select {
	case r, ok := <-out:
		t.Fatalf("got %d (open %v) before the first input finished: results come out in completion order", r, ok)
	case <-time.After(200 * time.Millisecond):
	}
	close(release[0])
	for v := range n {
		select {
		case r, ok := <-out:
			if !ok || r != v*10 {
				t.Fatalf("result %d: got %d (open %v), want %d", v, r, ok, v*10)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("result %d never came", v)
		}
	}
	select {
	case r, ok := <-out:
		if ok {
			t.Fatalf("extra result %d", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("output not closed after the input was")
	}
}

// With random work times and any number of goroutines, every input comes
// out once, in input order, and the output closes.
func TestOrderedRandomDelays(t *testing.T) {
	for _, n := range []int{1, 2, 3, 8} {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		delays := make([]time.Duration, 300)
		for i := range delays {
			delays[i] = time.Duration(rng.IntN(200)) * time.Microsecond
		}
		in := make(chan int)
		out := ordered(in, n, func(v int) int {
			time.Sleep(delays[v])
			return v
		})
		go func() {
			for v := range delays {
				in <- v
			}
			close(in)
		}()
		next := 0
		for v := range out {
			if v != next {
				t.Fatalf("%d goroutines: got %d, want %d", n, v, next)
			}
			next++
		}
		if next != len(delays) {
			t.Fatalf("%d goroutines: %d results of %d", n, next, len(delays))
		}
	}
}
