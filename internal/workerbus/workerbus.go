// Package workerbus connects the control plane's features to connected
// workers without importing the hub. The hub registers itself as the
// Sender and dispatches inbound messages here; the scheduler, log bus and
// usage metering register Handlers by message type and call Send.
//
// A worker is connected to one control-plane replica at a time, so Send
// succeeds only on the replica that holds the connection (ErrNotConnected
// elsewhere); work that must reach a worker wherever it is connected goes
// through Postgres first (the job queue) and is delivered by the replica
// that holds the connection.
package workerbus

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
)

// ErrNotConnected means the worker has no connection to this replica.
var ErrNotConnected = errors.New("worker not connected to this control plane")

// Sender delivers a message to a connected worker.
type Sender interface {
	Send(workerID int64, msgType string, payload json.RawMessage) error
	Connected(workerID int64) bool
}

// Handler processes one inbound message from a worker. An error is logged
// by the hub; it does not close the connection.
type Handler func(ctx context.Context, workerID int64, payload json.RawMessage) error

// Bus routes messages between features and the hub. The zero value is
// ready to use.
type Bus struct {
	mu        sync.RWMutex
	sender    Sender
	handlers  map[string]map[int]Handler
	onConnect map[int]func(workerID int64, connected bool)
	next      int
}

// SetSender installs the hub (nil removes it).
func (b *Bus) SetSender(s Sender) {
	b.mu.Lock()
	b.sender = s
	b.mu.Unlock()
}

// Send marshals payload and hands it to the hub.
func (b *Bus) Send(workerID int64, msgType string, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	b.mu.RLock()
	s := b.sender
	b.mu.RUnlock()
	if s == nil {
		return ErrNotConnected
	}
	return s.Send(workerID, msgType, raw)
}

// Connected reports whether workerID is connected to this replica.
func (b *Bus) Connected(workerID int64) bool {
	b.mu.RLock()
	s := b.sender
	b.mu.RUnlock()
	return s != nil && s.Connected(workerID)
}

// Handle registers fn for msgType and returns a function removing it.
func (b *Bus) Handle(msgType string, fn Handler) (cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.handlers == nil {
		b.handlers = make(map[string]map[int]Handler)
	}
	if b.handlers[msgType] == nil {
		b.handlers[msgType] = make(map[int]Handler)
	}
	id := b.next
	b.next++
	b.handlers[msgType][id] = fn
	return func() {
		b.mu.Lock()
		delete(b.handlers[msgType], id)
		b.mu.Unlock()
	}
}

// OnConnect registers fn to learn of worker connects and disconnects.
func (b *Bus) OnConnect(fn func(workerID int64, connected bool)) (cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.onConnect == nil {
		b.onConnect = make(map[int]func(int64, bool))
	}
	id := b.next
	b.next++
	b.onConnect[id] = fn
	return func() {
		b.mu.Lock()
		delete(b.onConnect, id)
		b.mu.Unlock()
	}
}

// Dispatch runs the handlers for an inbound message (called by the hub).
// It reports whether any handler was registered for msgType.
func (b *Bus) Dispatch(ctx context.Context, workerID int64, msgType string, payload json.RawMessage) (bool, error) {
	b.mu.RLock()
	hs := make([]Handler, 0, len(b.handlers[msgType]))
	for _, h := range b.handlers[msgType] {
		hs = append(hs, h)
	}
	b.mu.RUnlock()
	var errs []error
	for _, h := range hs {
		if err := h(ctx, workerID, payload); err != nil {
			errs = append(errs, err)
		}
	}
	return len(hs) > 0, errors.Join(errs...)
}

// NotifyConnection tells subscribers a worker connected or disconnected
// (called by the hub).
func (b *Bus) NotifyConnection(workerID int64, connected bool) {
	b.mu.RLock()
	fns := make([]func(int64, bool), 0, len(b.onConnect))
	for _, f := range b.onConnect {
		fns = append(fns, f)
	}
	b.mu.RUnlock()
	for _, f := range fns {
		f(workerID, connected)
	}
}
