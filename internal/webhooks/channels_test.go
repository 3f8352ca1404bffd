package webhooks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

func TestChannelsThroughTheGuardedClient(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	got := make(chan string, 1)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.URL.Path + " " + string(b)
	}))
	defer rcv.Close()
	host := strings.TrimPrefix(rcv.URL, "http://")

	// Supported services parse; unsupported ones are refused clearly.
	for _, ok := range []string{"discord://token@123456789", "ntfy://ntfy.sh/wisehosting-alerts", "slack://hook:T00000000-B00000000-XXXXXXXXXXXXXXXXXXXXXXXX@webhook"} {
		if _, err := f.svc.CreateChannel(ctx, f.teamA, 0, ok, nil); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"smtp://user:pw@mail.example.com:587/?to=a@b.c", "not a url", "nosuch://x"} {
		if _, err := f.svc.CreateChannel(ctx, f.teamA, 0, bad, nil); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}

	// A generic channel to a loopback receiver (allowed here explicitly).
	ch, err := f.svc.CreateChannel(ctx, f.teamB, 0, "generic://"+host+"/notify?disabletls=yes", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.TestDeliver(ctx, f.dispatcher(loopbackOnly), f.teamB, ch.ID); err != nil {
		t.Fatal(err)
	}
	if msg := <-got; !strings.HasPrefix(msg, "/notify ") || !strings.Contains(msg, "test delivery") {
		t.Fatalf("received %q", msg)
	}
	// Without the allowance the same channel is refused before dialing.
	if err := f.svc.TestDeliver(ctx, f.dispatcher(httpx.GuardOptions{}), f.teamB, ch.ID); !errors.Is(err, httpx.ErrBlockedAddress) {
		t.Fatalf("guard: %v", err)
	}
	// A channel to a private address is refused too.
	priv, _ := f.svc.CreateChannel(ctx, f.teamB, 0, "generic://10.1.2.3/x?disabletls=yes", nil)
	if err := f.svc.TestDeliver(ctx, f.dispatcher(httpx.GuardOptions{}), f.teamB, priv.ID); !errors.Is(err, httpx.ErrBlockedAddress) {
		t.Fatalf("private channel: %v", err)
	}
	// Team A cannot test team B's channel.
	if err := f.svc.TestDeliver(ctx, f.dispatcher(loopbackOnly), f.teamA, ch.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cross-team test delivery: %v", err)
	}
}
