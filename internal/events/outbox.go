package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/store"
)

// NotifyChannel is notified (on commit) when an event is emitted.
const NotifyChannel = "wisehosting_events"

// relayLock is the advisory lock of the one relay at work.
const relayLock = "wisehosting.events.relay"

// Execer is a transaction (or, for a change of one statement, a pool).
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Emit writes e to the outbox in q's transaction, so the event exists if
// and only if the change that causes it commits. The team of an event
// about an app is the app's (read now: the app may be gone when the event
// is delivered). The relay delivers it after commit.
func Emit(ctx context.Context, q Execer, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", e.Kind, err)
	}
	_, err = q.Exec(ctx, `WITH e AS (INSERT INTO event_outbox (kind, team_id, app_id, payload)
			VALUES ($1, COALESCE($2, (SELECT team_id FROM apps WHERE id = $3)), $3, $4) RETURNING id)
		SELECT pg_notify($5, '') FROM e`, e.Kind, nullID(e.TeamID), nullID(e.AppID), body, NotifyChannel)
	if err != nil {
		return fmt.Errorf("recording event %s: %w", e.Kind, err)
	}
	return nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Sink receives every event once per relay round, in id order, inside the
// relay's transaction: what it writes commits with the event's "dispatched"
// mark, so a crash either redoes both or neither. A sink must be
// idempotent per event ID (a round whose commit fails is run again).
type Sink func(ctx context.Context, tx pgx.Tx, e Event) error

// Relay moves emitted events from the outbox to their consumers: the sinks
// (webhook and chat channel deliveries) in the transaction that marks them
// dispatched, then the in-process bus. One relay works at a time across
// replicas (advisory lock), in id order, so consumers see every app's
// events in the order they were committed. Dispatched rows are kept for
// Retain and then pruned.
type Relay struct {
	Pool   *pgxpool.Pool
	Notify store.Notifier
	Bus    *Bus
	Sinks  []Sink
	Logger *zap.Logger
	// Poll is the fallback when no notification arrives. Default 2s.
	Poll time.Duration
	// Batch is how many events one round takes. Default 100.
	Batch int
	// Retain is how long dispatched events are kept. Default 7 days.
	Retain time.Duration

	once      sync.Once
	wake      chan struct{}
	lastPrune time.Time
}

func (r *Relay) init() {
	r.once.Do(func() {
		if r.Logger == nil {
			r.Logger = zap.NewNop()
		}
		if r.Poll <= 0 {
			r.Poll = 2 * time.Second
		}
		if r.Batch <= 0 {
			r.Batch = 100
		}
		if r.Retain <= 0 {
			r.Retain = 7 * 24 * time.Hour
		}
		r.wake = make(chan struct{}, 1)
	})
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	r.init()
	if r.Notify != nil {
		defer r.Notify.Subscribe(NotifyChannel, func(store.Notification) {
			select {
			case r.wake <- struct{}{}:
			default:
			}
		})()
	}
	t := time.NewTicker(r.Poll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			n, err := r.RelayOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.Logger.Warn("events: relaying", zap.Error(err))
				}
				break
			}
			if n < r.Batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// RelayOnce dispatches one batch of events and returns how many. A replica
// that does not get the relay lock dispatches none.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	r.init()
	var batch []Event
	ran, err := store.Exclusive(ctx, r.Pool, relayLock, func(tx pgx.Tx) error {
		var err error
		if batch, err = pending(ctx, tx, r.Batch); err != nil {
			return err
		}
		ids := make([]int64, len(batch))
		for i, e := range batch {
			ids[i] = e.ID
			for _, sink := range r.Sinks {
				if err := sink(ctx, tx, e); err != nil {
					return fmt.Errorf("event %d (%s): %w", e.ID, e.Kind, err)
				}
			}
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, "UPDATE event_outbox SET dispatched_at = now() WHERE id = ANY($1)", ids); err != nil {
				return err
			}
		}
		if time.Since(r.lastPrune) > time.Hour {
			if _, err := tx.Exec(ctx, "DELETE FROM event_outbox WHERE dispatched_at < now() - $1::interval", r.Retain.String()); err != nil {
				return err
			}
			r.lastPrune = time.Now()
		}
		return nil
	})
	if err != nil || !ran {
		return 0, err
	}
	// After commit: the bus's subscribers are in-process (caches, status
	// reports) and see each event once.
	for _, e := range batch {
		r.Bus.Publish(e)
	}
	return len(batch), nil
}

func pending(ctx context.Context, tx pgx.Tx, limit int) ([]Event, error) {
	rows, err := tx.Query(ctx, `SELECT id, COALESCE(team_id, 0), COALESCE(app_id, 0), payload::text FROM event_outbox
		WHERE dispatched_at IS NULL ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		var id, team, app int64
		var payload string
		if err := row.Scan(&id, &team, &app, &payload); err != nil {
			return e, err
		}
		if err := decode([]byte(payload), &e); err != nil {
			return e, fmt.Errorf("decoding event %d: %w", id, err)
		}
		e.ID, e.TeamID, e.AppID = id, team, app
		return e, nil
	})
}

// decode reads a stored event; whole numbers in its data come back as
// int64 (as producers wrote IDs), others as float64.
func decode(b []byte, e *Event) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(e); err != nil {
		return err
	}
	for k, v := range e.Data {
		e.Data[k] = numbers(v)
	}
	return nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}
