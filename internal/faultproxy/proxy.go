// Package faultproxy is a TCP proxy for tests that cuts, pauses and refuses the connections
// between the code under test and MariaDB or RabbitMQ, to prove that nothing is lost when the
// network misbehaves. NewTLS makes it terminate TLS too, so tests can put a TLS front on a
// plaintext service.
package faultproxy

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections accepted on Addr to a target address.
type Proxy struct {
	target   string
	listener net.Listener

	mu      sync.Mutex
	cond    *sync.Cond
	conns   map[net.Conn]struct{}
	paused  bool
	refuse  bool
	closed  bool
	accepts int
	wg      sync.WaitGroup
}

// New listens on a random loopback port and forwards to target (host:port).
func New(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return start(target, l), nil
}

// NewTLS is New, but clients speak TLS to the proxy (with cfg as the server side: its
// certificate, and ClientAuth/ClientCAs to demand client certificates) while the proxy
// forwards plaintext to target. A client whose handshake fails is closed before the target
// is dialled, so the target never sees it. Pause holds the forwarded bytes, not the
// handshake.
func NewTLS(target string, cfg *tls.Config) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return start(target, tls.NewListener(l, cfg)), nil
}

func start(target string, l net.Listener) *Proxy {
	p := &Proxy{target: target, listener: l, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.acceptLoop()
	return p
}

// Addr is the address clients connect to instead of the target.
func (p *Proxy) Addr() string { return p.listener.Addr().String() }

// Accepted returns how many client connections the proxy has accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

// Cut closes every open connection at once, both sides, as a network failure would.
// New connections are still accepted unless Refuse is on.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Refuse makes the proxy close new connections right after accepting them (on) or forward
// them again (off).
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
}

// Pause stops forwarding bytes in both directions without closing anything, like a network
// partition; Resume lets the held bytes through.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
}

// Resume undoes Pause.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	p.cond.Broadcast()
}

// Close stops listening, closes every connection and waits for the forwarding goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
	err := p.listener.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepts++
		refuse := p.refuse || p.closed
		p.mu.Unlock()
		if refuse {
			client.Close()
			continue
		}
		if !p.track(client) {
			continue
		}
		p.wg.Add(1)
		go p.connect(client)
	}
}

// connect finishes a TLS handshake if there is one (off the accept loop, so a slow client
// holds up nobody else), dials the target and starts forwarding.
func (p *Proxy) connect(client net.Conn) {
	defer p.wg.Done()
	if tc, ok := client.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		err := tc.Handshake()
		tc.SetDeadline(time.Time{})
		if err != nil {
			p.untrack(client)
			return
		}
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		p.untrack(client)
		return
	}
	if !p.track(server) {
		client.Close()
		return
	}
	p.wg.Add(2)
	go p.pipe(server, client)
	go p.pipe(client, server)
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// pipe copies src to dst, holding data while paused; when either side fails both close.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, src)
		delete(p.conns, dst)
		p.mu.Unlock()
		src.Close()
		dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.paused && !p.closed {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or a failure: either way this direction is over
			return
		}
	}
}
