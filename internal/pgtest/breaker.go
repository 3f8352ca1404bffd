package pgtest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Breaker is a TCP relay on loopback between a client and the test
// Postgres server that a test can cut, to play a database outage without
// stopping the shared server: Cut closes every relayed connection and
// stops listening (new connections are refused, as with a stopped
// server); Restore listens again on the same address.
type Breaker struct {
	t      testing.TB
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

// NewBreaker relays to the server of AdminURL until the test ends.
func NewBreaker(t testing.TB) *Breaker {
	t.Helper()
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	b := &Breaker{t: t, target: u.Host, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(b.Cut)
	return b
}

// URL returns db's URL through the breaker.
func (b *Breaker) URL(db *DB) string {
	u, err := url.Parse(db.URL)
	if err != nil {
		b.t.Fatal(err)
	}
	u.Host = b.addr
	return u.String()
}

func (b *Breaker) serve(ln net.Listener) {
	b.mu.Lock()
	b.ln = ln
	b.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.relay(c)
		}
	}()
}

func (b *Breaker) relay(c net.Conn) {
	s, err := net.Dial("tcp", b.target)
	if err != nil {
		c.Close()
		return
	}
	b.mu.Lock()
	if b.ln == nil { // cut meanwhile
		b.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	b.conns[c], b.conns[s] = struct{}{}, struct{}{}
	b.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); done <- struct{}{} }()
	go func() { io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	b.mu.Lock()
	delete(b.conns, c)
	delete(b.conns, s)
	b.mu.Unlock()
}

// Cut drops every connection and refuses new ones.
func (b *Breaker) Cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		b.ln.Close()
		b.ln = nil
	}
	for c := range b.conns {
		c.Close()
	}
}

// Restore accepts connections again on the same address.
func (b *Breaker) Restore() {
	b.t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Fatalf("restoring the database relay: %v", err)
	}
	b.serve(ln)
}
