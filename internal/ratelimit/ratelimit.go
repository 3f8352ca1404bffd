// Package ratelimit limits attempts keyed by string (client IP, account)
// at endpoints strangers can reach: Limiter is a small in-memory
// sliding-window limiter (worker registration, inbound git webhooks);
// Failures counts failed attempts in Postgres so every control plane
// replica enforces one limit (sign-in).
package ratelimit

import (
	"sync"
	"time"
)

// Limiter allows at most Limit events per Window for each key. Counts are
// approximated by a sliding window over two fixed windows, which needs two
// counters per key. The zero value is not usable: call New.
type Limiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	keys  map[string]*counter
	sweep time.Time
}

type counter struct {
	start     time.Time // start of the current fixed window
	cur, prev int
}

// New returns a limiter of limit events per window.
func New(limit int, window time.Duration) *Limiter {
	return &Limiter{limit: limit, window: window, now: time.Now, keys: make(map[string]*counter)}
}

// SetClock replaces the clock (tests).
func (l *Limiter) SetClock(now func() time.Time) { l.now = now }

// Allow records an event for key and reports whether it is within the
// limit. A refused event is not counted, so a client that keeps retrying
// gets through as soon as its window allows.
func (l *Limiter) Allow(key string) bool { return l.take(key, true) }

// Exhausted reports whether key has used up its budget, without counting
// an event. Use it with Allow on failures only ("5 failed logins a minute").
func (l *Limiter) Exhausted(key string) bool { return !l.take(key, false) }

func (l *Limiter) take(key string, count bool) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > l.window {
		l.sweep = now
		for k, c := range l.keys {
			if now.Sub(c.start) > 2*l.window {
				delete(l.keys, k)
			}
		}
	}
	c := l.keys[key]
	if c == nil {
		c = &counter{start: now.Truncate(l.window)}
		l.keys[key] = c
	}
	switch elapsed := now.Sub(c.start); {
	case elapsed >= 2*l.window:
		c.start, c.prev, c.cur = now.Truncate(l.window), 0, 0
	case elapsed >= l.window:
		c.start, c.prev, c.cur = c.start.Add(l.window), c.cur, 0
	}
	frac := 1 - float64(now.Sub(c.start))/float64(l.window)
	if float64(c.prev)*frac+float64(c.cur) >= float64(l.limit) {
		return false
	}
	if count {
		c.cur++
	}
	return true
}
