package domains

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/network"
)

// Only a verified domain reaches the routing table (and so the proxies'
// on-demand certificate permission); verifying and removing notify the
// replicas.
func TestVerifiedDomainEntersRoutingTable(t *testing.T) {
	t.Parallel()
	z := newZone(t)
	f := setup(t, z.addr)
	ctx := context.Background()
	var worker int64
	if err := f.db.Pool.QueryRow(ctx, "INSERT INTO workers (name, api_key_hash, wg_ip, status) VALUES ('w', 'k', '127.0.0.5', 'online') RETURNING id").Scan(&worker); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Pool.Exec(ctx, "UPDATE apps SET worker_id = $1, status = 'running', port = 8080 WHERE id = $2", worker, f.appA); err != nil {
		t.Fatal(err)
	}
	conn, err := f.db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+network.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	notified := func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := conn.Conn().WaitForNotification(c)
		return err == nil
	}
	hosts := func() []string {
		s, err := network.Load(ctx, f.db.Pool, "apps.example.net")
		if err != nil {
			t.Fatal(err)
		}
		for i := range s.Apps {
			if s.Apps[i].ID == f.appA {
				return s.Hosts(&s.Apps[i])
			}
		}
		t.Fatal("app not routable")
		return nil
	}

	d, err := f.svc.Add(ctx, f.teamA, f.appA, "shop.customer.org")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(hosts(), "shop.customer.org") {
		t.Fatal("an unverified domain is routed")
	}
	z.mu.Lock()
	z.txt["_wisehosting.shop.customer.org"] = []string{d.Token}
	z.mu.Unlock()
	if _, err := f.svc.Verify(ctx, f.teamA, d.ID); err != nil {
		t.Fatal(err)
	}
	if !notified() {
		t.Fatal("verification did not notify the routing replicas")
	}
	if !slices.Contains(hosts(), "shop.customer.org") {
		t.Fatalf("verified domain missing from %v", hosts())
	}
	if err := f.svc.Remove(ctx, f.teamA, d.ID); err != nil {
		t.Fatal(err)
	}
	if !notified() {
		t.Fatal("removal did not notify the routing replicas")
	}
	if slices.Contains(hosts(), "shop.customer.org") {
		t.Fatal("a removed domain is still routed")
	}
}
