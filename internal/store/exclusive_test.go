package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/store"
)

// While one replica runs a piece of exclusive work, another skips it (it
// does not wait); once the first is done, the next round runs.
func TestExclusiveSkipsWhileHeld(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	inside, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := store.Exclusive(ctx, db.Pool, "test.work", func(pgx.Tx) error {
			close(inside)
			<-release
			return nil
		})
		first <- err
	}()
	<-inside
	ran, err := store.Exclusive(ctx, db.Pool, "test.work", func(pgx.Tx) error {
		t.Error("ran while another session held the lock")
		return nil
	})
	if ran || err != nil {
		t.Fatalf("held: ran %v, %v", ran, err)
	}
	// Another name is another lock.
	if ran, err := store.Exclusive(ctx, db.Pool, "test.other", func(pgx.Tx) error { return nil }); !ran || err != nil {
		t.Fatalf("other lock: ran %v, %v", ran, err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if ran, err := store.Exclusive(ctx, db.Pool, "test.work", func(pgx.Tx) error { return nil }); !ran || err != nil {
		t.Fatalf("after release: ran %v, %v", ran, err)
	}
}

func TestPeriodicRunsRounds(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	var rounds atomic.Int32
	done := make(chan struct{})
	go func() {
		store.Periodic{Name: "test.periodic", Interval: 20 * time.Millisecond, Now: true,
			Run: func(ctx context.Context, tx pgx.Tx) error {
				if rounds.Add(1) == 3 {
					cancel()
				}
				return nil
			}}.Loop(ctx, db.Pool)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d rounds after 30 s", rounds.Load())
	}
}
