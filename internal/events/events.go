// Package events owns the control plane's domain events (a domain
// verified, a route changed, a deployment finished...): their names, the
// outbox they are written to in the transaction that causes them (Emit),
// and the relay that delivers them once committed, in order, to webhook
// and chat channel deliveries and to the in-process bus (Relay).
//
// The bus is what in-process consumers (the routing cache, commit status
// reports) subscribe to. Delivery is synchronous and in commit order, so a
// subscriber must return quickly and hand long work to its own goroutine.
package events

import (
	"slices"
	"sync"
	"time"
)

// Kinds of events.
const (
	DomainAdded        = "domain.added"
	DomainVerified     = "domain.verified"
	DomainRemoved      = "domain.removed"
	CertProvisioned    = "cert.provisioned"
	CertExpiring       = "cert.expiring"
	RouteChanged       = "route.changed"
	AppStatusChanged   = "app.status_changed"
	DeploymentStarted  = "deployment.started"
	DeploymentFinished = "deployment.finished"
	DeploymentFailed   = "deployment.failed"
	WorkerOnline       = "worker.online"
	WorkerOffline      = "worker.offline"
	AlertFired         = "alert.fired"
	AlertResolved      = "alert.resolved"
	CronFailed         = "cron.failed"
)

// TeamEvents are the kinds a team may subscribe to with a webhook or a
// notification channel: every kind that concerns one team's apps. Platform
// kinds without a team (workers) are not among them.
var TeamEvents = []string{
	DeploymentStarted, DeploymentFinished, DeploymentFailed, AppStatusChanged,
	DomainAdded, DomainVerified, DomainRemoved, CertProvisioned, CertExpiring,
	RouteChanged, AlertFired, AlertResolved, CronFailed,
}

// AllTeamEvents is the subscription that matches every kind of TeamEvents.
const AllTeamEvents = "*"

// Subscribable reports whether a webhook may subscribe to kind: one of
// TeamEvents or AllTeamEvents.
func Subscribable(kind string) bool {
	return kind == AllTeamEvents || slices.Contains(TeamEvents, kind)
}

// Event is one occurrence. Data is JSON-marshalable.
type Event struct {
	// ID is the event's outbox row (set by the relay).
	ID     int64          `json:"-"`
	Kind   string         `json:"type"`
	TeamID int64          `json:"team_id,omitempty"`
	AppID  int64          `json:"app_id,omitempty"`
	Time   time.Time      `json:"timestamp"`
	Data   map[string]any `json:"data,omitempty"`
}

// Bus fans events out to subscribers. The zero value is ready to use.
type Bus struct {
	mu   sync.RWMutex
	next int
	subs map[int]func(Event)
}

// Subscribe registers fn and returns a function that removes it.
func (b *Bus) Subscribe(fn func(Event)) (cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = make(map[int]func(Event))
	}
	id := b.next
	b.next++
	b.subs[id] = fn
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}
}

// Publish delivers e to every subscriber. Publishing on a nil Bus does
// nothing (tools that change state outside a running control plane).
func (b *Bus) Publish(e Event) {
	if b == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b.mu.RLock()
	fns := make([]func(Event), 0, len(b.subs))
	for _, fn := range b.subs {
		fns = append(fns, fn)
	}
	b.mu.RUnlock()
	for _, fn := range fns {
		fn(e)
	}
}
