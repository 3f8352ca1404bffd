package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/store"
)

func recv(t *testing.T, ch <-chan store.Notification, what string) store.Notification {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification: %s", what)
		return store.Notification{}
	}
}

// listenBackends counts the listener's connections to the database.
func listenBackends(t *testing.T, db *pgtest.DB) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'wisehosting-listen'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// One connection serves every channel, subscriptions come and go while it
// waits, and after the connection is lost every subscriber hears that
// notifications may have been missed.
func TestListenerSharesOneConnection(t *testing.T) {
	db := pgtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := store.NewListener(db.Pool.Config().ConnConfig, nil)
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	a := make(chan store.Notification, 8)
	cancelA := l.Subscribe("chan_a", func(n store.Notification) { a <- n })
	if n := recv(t, a, "first connect"); !n.Missed {
		t.Fatalf("first delivery %+v: want Missed after connecting", n)
	}
	notify := func(ch, payload string) {
		if _, err := db.Pool.Exec(ctx, "SELECT pg_notify($1, $2)", ch, payload); err != nil {
			t.Fatal(err)
		}
	}
	notify("chan_a", "1")
	if n := recv(t, a, "chan_a"); n.Channel != "chan_a" || n.Payload != "1" || n.Missed {
		t.Fatalf("got %+v", n)
	}

	// A channel subscribed while the listener waits is listened to at once.
	b := make(chan store.Notification, 8)
	l.Subscribe("chan_b", func(n store.Notification) { b <- n })
	deadline := time.Now().Add(10 * time.Second)
	for {
		notify("chan_b", "2")
		select {
		case n := <-b:
			if n.Payload != "2" {
				t.Fatalf("got %+v", n)
			}
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("chan_b never delivered")
			}
			continue
		}
		break
	}
	if got := listenBackends(t, db); got != 1 {
		t.Fatalf("%d listen connections, want 1", got)
	}

	// Unsubscribed: no more deliveries on chan_a.
	cancelA()
	notify("chan_a", "3")
	notify("chan_b", "4")
	for n := recv(t, b, "chan_b after unsubscribe"); n.Payload != "4"; n = recv(t, b, "chan_b 4") {
	}
	select {
	case n := <-a:
		t.Fatalf("delivered after unsubscribe: %+v", n)
	default:
	}

	// The connection dies: the listener reconnects and says so.
	if _, err := db.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'wisehosting-listen'`); err != nil {
		t.Fatal(err)
	}
	for n := recv(t, b, "reconnect"); !n.Missed; n = recv(t, b, "reconnect") {
	}
	notify("chan_b", "5")
	if n := recv(t, b, "after reconnect"); n.Payload != "5" {
		t.Fatalf("got %+v", n)
	}
}
