package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// An event exists only if its transaction commits; the relay hands every
// committed event to its sinks and then to the bus once, in commit order,
// with the team of its app and its data's IDs as integers.
func TestOutboxRelaysCommittedEventsOnceInOrder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var team, app int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'a', 'a') RETURNING id", team).Scan(&app)

	rollback := errors.New("rolled back")
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := events.Emit(ctx, tx, events.Event{Kind: events.DomainAdded, AppID: app}); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := events.Emit(ctx, db.Pool, events.Event{Kind: events.DeploymentStarted, AppID: app, Data: map[string]any{"deployment_id": int64(i)}}); err != nil {
			t.Fatal(err)
		}
	}

	var sunk, bused []events.Event
	failing := true
	bus := new(events.Bus)
	bus.Subscribe(func(e events.Event) { bused = append(bused, e) })
	r := &events.Relay{Pool: db.Pool, Bus: bus, Batch: 3, Sinks: []events.Sink{func(ctx context.Context, tx pgx.Tx, e events.Event) error {
		if failing {
			return errors.New("sink down")
		}
		sunk = append(sunk, e)
		return nil
	}}}
	// A failing sink leaves the batch undispatched and unpublished.
	if n, err := r.RelayOnce(ctx); err == nil || n != 0 || len(bused) != 0 {
		t.Fatalf("failing sink: %d %v %d", n, err, len(bused))
	}
	failing = false
	for {
		n, err := r.RelayOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if len(sunk) != 5 || len(bused) != 5 {
		t.Fatalf("sunk %d, published %d", len(sunk), len(bused))
	}
	for i, e := range bused {
		if e.Kind != events.DeploymentStarted || e.TeamID != team || e.AppID != app || e.Data["deployment_id"] != int64(i) || e.ID != sunk[i].ID {
			t.Fatalf("event %d: %+v", i, e)
		}
		if i > 0 && e.ID <= bused[i-1].ID {
			t.Fatalf("out of order: %d after %d", e.ID, bused[i-1].ID)
		}
	}
}

// Relays of several replicas racing dispatch every event exactly once.
func TestConcurrentRelaysDispatchOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	const n = 60
	for range n {
		if err := events.Emit(ctx, db.Pool, events.Event{Kind: events.WorkerOnline}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	sink := func(ctx context.Context, tx pgx.Tx, e events.Event) error {
		mu.Lock()
		seen[e.ID]++
		mu.Unlock()
		return nil
	}
	var wg sync.WaitGroup
	for range 3 {
		r := &events.Relay{Pool: db.Pool, Batch: 7, Sinks: []events.Sink{sink}}
		wg.Go(func() {
			for range 40 {
				if _, err := r.RelayOnce(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var left int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM event_outbox WHERE dispatched_at IS NULL").Scan(&left)
	if len(seen) != n || left != 0 {
		t.Fatalf("%d events dispatched, %d left", len(seen), left)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("event %d dispatched %d times", id, c)
		}
	}
}
