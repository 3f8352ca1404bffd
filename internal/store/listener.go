package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Notification is a Postgres NOTIFY delivered to a subscriber.
type Notification struct {
	Channel string
	Payload string
	// Missed is set on the call a subscriber gets after the listener
	// (re)connected: notifications sent while it was away are lost, so the
	// subscriber should act as if anything on its channel changed.
	Missed bool
}

// Notifier delivers the notifications of a channel to fn until the
// returned cancel is called. fn runs on the listener's goroutine: it must
// not block (signal a channel or swap a flag).
type Notifier interface {
	Subscribe(channel string, fn func(Notification)) (cancel func())
}

// Listener is the process's one LISTEN connection, shared by every
// consumer of notifications (job scheduler, routing provider, ...). It is a
// connection of its own, outside the pool: a LISTEN connection is held for
// the life of the process, and holding it in the pool would take a slot
// that request handlers and background work need.
type Listener struct {
	cfg    *pgx.ConnConfig
	logger *zap.Logger

	mu     sync.Mutex
	subs   map[string]map[int]func(Notification)
	nextID int
	wake   chan struct{} // the set of channels changed
}

// NewListener returns a listener connecting with cfg (the pool's
// connection config). Run starts it.
func NewListener(cfg *pgx.ConnConfig, logger *zap.Logger) *Listener {
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg = cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "wisehosting-listen"
	return &Listener{cfg: cfg, logger: logger, subs: map[string]map[int]func(Notification){}, wake: make(chan struct{}, 1)}
}

// Subscribe implements Notifier.
func (l *Listener) Subscribe(channel string, fn func(Notification)) func() {
	l.mu.Lock()
	id := l.nextID
	l.nextID++
	if l.subs[channel] == nil {
		l.subs[channel] = map[int]func(Notification){}
	}
	l.subs[channel][id] = fn
	l.mu.Unlock()
	l.signal()
	return func() {
		l.mu.Lock()
		delete(l.subs[channel], id)
		if len(l.subs[channel]) == 0 {
			delete(l.subs, channel)
		}
		l.mu.Unlock()
		l.signal()
	}
}

func (l *Listener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Listener) channels() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]bool, len(l.subs))
	for ch := range l.subs {
		out[ch] = true
	}
	return out
}

func (l *Listener) deliver(n Notification) {
	l.mu.Lock()
	fns := make([]func(Notification), 0, len(l.subs[n.Channel]))
	for _, fn := range l.subs[n.Channel] {
		fns = append(fns, fn)
	}
	l.mu.Unlock()
	for _, fn := range fns {
		fn(n)
	}
}

// Run keeps the connection and delivers notifications until ctx ends,
// reconnecting after a second when the connection is lost.
func (l *Listener) Run(ctx context.Context) {
	for ctx.Err() == nil {
		err := l.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		l.logger.Warn("database notifications lost; reconnecting", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (l *Listener) runOnce(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn.Close(c)
		cancel()
	}()
	listening := map[string]bool{}
	first := true
	for {
		// Bring the LISTENs in step with the subscriptions.
		want := l.channels()
		var added []string
		for ch := range want {
			if !listening[ch] {
				if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
					return err
				}
				listening[ch] = true
				added = append(added, ch)
			}
		}
		for ch := range listening {
			if !want[ch] {
				if _, err := conn.Exec(ctx, "UNLISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
					return err
				}
				delete(listening, ch)
			}
		}
		// A reconnect may have lost notifications: every channel's
		// subscribers hear of it. A new subscription does not need it.
		if first {
			first = false
			for _, ch := range added {
				l.deliver(Notification{Channel: ch, Missed: true})
			}
		}
		// Wait for a notification or a change of subscriptions.
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			select {
			case <-l.wake:
				stop()
			case <-done:
			}
		}()
		n, err := conn.WaitForNotification(wctx)
		close(done)
		woken := wctx.Err() != nil && ctx.Err() == nil
		stop()
		if err != nil {
			if woken && !conn.IsClosed() {
				continue
			}
			return err
		}
		l.deliver(Notification{Channel: n.Channel, Payload: n.Payload})
	}
}
