package testkit

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a fault-injecting TCP proxy for tests: it forwards every
// connection accepted on its address to a target and, on demand, delays the
// bytes (latency), paces them (bandwidth), holds them (blackhole) or resets
// the connections. Faults apply to connections already open and to new ones,
// at once.
//
// Each direction of each connection is a pipe: a reader takes chunks from
// one side as they come and stamps them, a writer hands them to the other
// side once their delay has passed, paced by the proxy's bandwidth limit for
// that direction. The byte stream is never altered: a blackhole holds the
// bytes, it does not drop them, as a network partition does to TCP (the
// peers see silence, and their timeouts decide what happens), and a reset
// closes both sides with RST.
//
// For a Kafka broker the proxy must also be the address the broker
// advertises, or clients go around it after their first metadata request:
// see KfakeBehindProxy and KafkaBehindProxy.
type Proxy struct {
	ln     net.Listener
	target string

	latency   atomic.Int64 // nanoseconds, added in each direction
	produce   atomic.Int64 // nanoseconds, added to the answers on Kafka producer connections
	blackhole atomic.Bool
	fetchHole atomic.Bool // hold the answers on Kafka fetch connections
	refuse    atomic.Bool
	up, down  limiter // client to target, target to client

	mu          sync.Mutex
	conns       map[*proxyConn]struct{}
	closed      bool
	resume      chan struct{} // closed when a blackhole ends
	fetchResume chan struct{} // closed when a fetch blackhole ends

	accepted, resets atomic.Int64
	bytesUp, bytesDn atomic.Int64
	wg               sync.WaitGroup
}

// ProxyStats are a proxy's counters.
type ProxyStats struct {
	Accepted, Open, Resets int64
	BytesUp, BytesDown     int64 // client to target, target to client
}

// StartProxy listens on listen (host:port; port 0 picks one) and forwards to
// target.
func StartProxy(listen, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}, resume: make(chan struct{}), fetchResume: make(chan struct{})}
	close(p.resume) // no blackhole yet
	close(p.fetchResume)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetLatency delays every byte by d in each direction (a round trip gains
// 2d). Bytes already waiting keep the delay they arrived with.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// SetProduceLatency delays by d, on top of the latency, the bytes the
// target sends on connections where the client has sent a Kafka Produce
// request: the broker's acknowledgements come late, and fetches on other
// connections are not slowed. (The proxy reads the Kafka request framing
// of the client's bytes for this: a 4-byte size, then the API key.)
func (p *Proxy) SetProduceLatency(d time.Duration) { p.produce.Store(int64(d)) }

// SetBandwidth limits each direction to bytesPerSecond, shared by all the
// proxy's connections, as on one link; 0 lifts the limit.
func (p *Proxy) SetBandwidth(bytesPerSecond int) {
	p.up.setRate(bytesPerSecond)
	p.down.setRate(bytesPerSecond)
}

// SetBlackhole holds every byte in both directions while on; new
// connections are accepted and held too. Turned off, the held bytes flow
// again, in order, to whichever connection is still open.
func (p *Proxy) SetBlackhole(on bool) { p.hole(&p.blackhole, &p.resume, on) }

// SetFetchBlackhole holds, while on, the broker's answers on the
// connections where the client has sent a Kafka Fetch request, and only
// those: the consumer reads nothing, while its group membership, its
// commits, produces and metadata go on. Turned off, the held answers flow.
func (p *Proxy) SetFetchBlackhole(on bool) { p.hole(&p.fetchHole, &p.fetchResume, on) }

// hole turns a hold on or off: resume is closed when it ends.
func (p *Proxy) hole(flag *atomic.Bool, resume *chan struct{}, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if flag.Load() == on {
		return
	}
	flag.Store(on)
	if on {
		*resume = make(chan struct{})
	} else {
		close(*resume)
	}
}

// SetRefuse makes new connections fail at once (accepted, then reset) while
// on: a broker that is down. Open connections are not touched; see
// ResetAll.
func (p *Proxy) SetRefuse(on bool) { p.refuse.Store(on) }

// ResetAll closes every open connection with RST on both sides and returns
// how many there were.
func (p *Proxy) ResetAll() int { return p.reset(false) }

// ResetProducers resets, as ResetAll, only the connections on which the
// client has sent a Kafka Produce request: produces fail, while group
// membership and fetches go on.
func (p *Proxy) ResetProducers() int { return p.reset(true) }

func (p *Proxy) reset(producersOnly bool) int {
	p.mu.Lock()
	cs := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		if !producersOnly || c.producer.Load() {
			cs = append(cs, c)
		}
	}
	p.mu.Unlock()
	for _, c := range cs {
		c.reset()
	}
	p.resets.Add(int64(len(cs)))
	return len(cs)
}

// Clear lifts every fault.
func (p *Proxy) Clear() {
	p.SetLatency(0)
	p.SetProduceLatency(0)
	p.SetBandwidth(0)
	p.SetRefuse(false)
	p.SetBlackhole(false)
	p.SetFetchBlackhole(false)
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	open := len(p.conns)
	p.mu.Unlock()
	return ProxyStats{Accepted: p.accepted.Load(), Open: int64(open), Resets: p.resets.Load(),
		BytesUp: p.bytesUp.Load(), BytesDown: p.bytesDn.Load()}
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.SetBlackhole(false)
	p.ResetAll()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.accepted.Add(1)
		if p.refuse.Load() {
			rst(c)
			continue
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.serve(c) }()
	}
}

func (p *Proxy) serve(client net.Conn) {
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		rst(client)
		return
	}
	c := &proxyConn{client: client, upstream: upstream, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.reset()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(c, client, upstream, &p.up, &p.bytesUp, true) }()
	go func() { defer wg.Done(); p.pipe(c, upstream, client, &p.down, &p.bytesDn, false) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// chunk is bytes read from one side, due on the other at due.
type chunk struct {
	b   []byte
	due time.Time
	err error // the read error that ends the direction, with b empty
}

// pipe forwards src to dst with the proxy's faults until either side fails,
// then closes the connection (both sides).
func (p *Proxy) pipe(c *proxyConn, src, dst net.Conn, lim *limiter, count *atomic.Int64, fromClient bool) {
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		var frames kafkaFrames
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				delay := time.Duration(p.latency.Load())
				if fromClient {
					frames.feed(buf[:n], func(apiKey int16) {
						switch apiKey {
						case 0:
							c.producer.Store(true)
						case 1:
							c.fetcher.Store(true)
						}
					})
				} else if c.producer.Load() {
					delay += time.Duration(p.produce.Load())
				}
				q <- chunk{b: buf[:n], due: time.Now().Add(delay)}
			}
			if err != nil {
				q <- chunk{err: err}
				return
			}
		}
	}()
	defer func() {
		c.close()
		for range q { // let the reader finish
		}
	}()
	for ch := range q {
		if ch.err != nil {
			return
		}
		if !p.hold(c, !fromClient) {
			return
		}
		if d := time.Until(ch.due); d > 0 {
			time.Sleep(d)
		}
		for b := ch.b; len(b) > 0; {
			n := min(len(b), 16<<10)
			lim.wait(n)
			if !p.hold(c, !fromClient) {
				return
			}
			if _, err := dst.Write(b[:n]); err != nil {
				return
			}
			count.Add(int64(n))
			b = b[n:]
		}
	}
}

// hold waits while a blackhole is on, or for an answer on a fetch
// connection while a fetch blackhole is; it reports false when the
// connection was closed meanwhile.
func (p *Proxy) hold(c *proxyConn, answer bool) bool {
	for p.blackhole.Load() || answer && c.fetcher.Load() && p.fetchHole.Load() {
		var resume chan struct{}
		p.mu.Lock()
		switch {
		case p.blackhole.Load():
			resume = p.resume
		case answer && c.fetcher.Load() && p.fetchHole.Load():
			resume = p.fetchResume
		}
		p.mu.Unlock()
		if resume == nil {
			continue // turned off meanwhile
		}
		select {
		case <-resume:
		case <-c.done:
			return false
		}
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

type proxyConn struct {
	client, upstream net.Conn
	producer         atomic.Bool // the client has sent a Kafka Produce request
	fetcher          atomic.Bool // the client has sent a Kafka Fetch request
	once             sync.Once
	done             chan struct{}
	doneOnce         sync.Once
}

func (c *proxyConn) markDone() { c.doneOnce.Do(func() { close(c.done) }) }

func (c *proxyConn) close() {
	c.once.Do(func() {
		c.client.Close()
		c.upstream.Close()
	})
	c.markDone()
}

// reset closes both sides with RST instead of FIN.
func (c *proxyConn) reset() {
	c.once.Do(func() {
		rst(c.client)
		rst(c.upstream)
	})
	c.markDone()
}

func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// limiter paces bytes at a rate shared by its users; rate 0 is no limit.
type limiter struct {
	mu   sync.Mutex
	rate int
	next time.Time // when the bytes reserved so far have gone through
}

func (l *limiter) setRate(r int) {
	l.mu.Lock()
	l.rate = r
	l.next = time.Time{}
	l.mu.Unlock()
}

// wait blocks for as long as n bytes take at the rate, after the bytes
// reserved before them.
func (l *limiter) wait(n int) {
	l.mu.Lock()
	if l.rate <= 0 {
		l.mu.Unlock()
		return
	}
	now := time.Now()
	start := l.next
	if start.Before(now) {
		start = now
	}
	l.next = start.Add(time.Duration(float64(n) / float64(l.rate) * float64(time.Second)))
	until := l.next
	l.mu.Unlock()
	time.Sleep(time.Until(until))
}

// kafkaFrames follows the framing of Kafka requests in a byte stream: each
// is a 4-byte big-endian size, then the request, which starts with its
// 2-byte API key.
type kafkaFrames struct {
	hdr  [6]byte
	n    int   // header bytes held
	skip int64 // bytes left of the current request after its header
}

func (f *kafkaFrames) feed(b []byte, onRequest func(apiKey int16)) {
	for len(b) > 0 {
		if f.skip > 0 {
			k := min(int64(len(b)), f.skip)
			f.skip -= k
			b = b[k:]
			continue
		}
		k := copy(f.hdr[f.n:], b)
		f.n += k
		b = b[k:]
		if f.n < len(f.hdr) {
			return
		}
		size := int64(f.hdr[0])<<24 | int64(f.hdr[1])<<16 | int64(f.hdr[2])<<8 | int64(f.hdr[3])
		onRequest(int16(f.hdr[4])<<8 | int16(f.hdr[5]))
		f.n, f.skip = 0, max(size-2, 0)
	}
}
