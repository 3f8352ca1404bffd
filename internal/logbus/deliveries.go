package logbus

import "sync"

// DeliveryState is where a worker's log batch stands.
type DeliveryState int

const (
	// Unseen: the batch was not seen (or was given up on): take it.
	Unseen DeliveryState = iota
	// Pending: the batch is taken and waits for the database; its ack
	// follows when it is stored.
	Pending
	// Stored: the batch was stored already (its ack got lost): ack again.
	Stored
)

// Deliveries remembers the log batches of workers that are being stored or
// were stored recently, so that a batch a worker sends again (it did not
// hear the ack in time) is stored once. It remembers the last keep stored
// batches; older ones count as unseen, which only a worker that waited that
// long could see (its batch is then stored twice).
type Deliveries struct {
	mu      sync.Mutex
	state   map[string]DeliveryState
	stored  []string // ring of the last stored keys
	next    int
	keepCap int
}

// NewDeliveries remembers up to keep stored batches (default 8192).
func NewDeliveries(keep int) *Deliveries {
	if keep <= 0 {
		keep = 8192
	}
	return &Deliveries{state: map[string]DeliveryState{}, stored: make([]string, keep), keepCap: keep}
}

// Begin returns the batch's state and, when it is Unseen, marks it Pending.
func (d *Deliveries) Begin(key string) DeliveryState {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.state[key]
	if !ok {
		d.state[key] = Pending
		return Unseen
	}
	return st
}

// Abort forgets a Pending batch (it was not taken; the worker sends it
// again).
func (d *Deliveries) Abort(key string) {
	d.mu.Lock()
	if d.state[key] == Pending {
		delete(d.state, key)
	}
	d.mu.Unlock()
}

// Done marks a batch Stored.
func (d *Deliveries) Done(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.stored[d.next]; old != "" {
		delete(d.state, old)
	}
	d.stored[d.next] = key
	d.next = (d.next + 1) % d.keepCap
	d.state[key] = Stored
}
