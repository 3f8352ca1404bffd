package infra

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/infra/hetznertest"
)

func TestHetznerLoadBalancerSnapshotRobot(t *testing.T) {
	s := hetznertest.Start(t)
	srv := s
	ctx := context.Background()
	h := &Hetzner{TokenFile: tokenFile(t, "hcloud-token"), APIURL: srv.URL,
		RobotUserFile: tokenFile(t, "#ws+user"), RobotPasswordFile: tokenFile(t, "secret"), RobotAPIURL: srv.URL}
	lb := LoadBalancer{Name: "wh-lb"}

	if got, err := h.FindLoadBalancer(ctx, "wh-lb"); err != nil || got != nil {
		t.Fatalf("before create: %+v %v", got, err)
	}
	st, created, err := h.EnsureLoadBalancer(ctx, lb)
	if err != nil || !created || st.ID != 4711 || st.PublicNet.IPv4.IP != "203.0.113.50" || len(st.Services) != 2 || st.Services[1].ListenPort != 443 {
		t.Fatalf("create: %+v %v %v", st, created, err)
	}
	if _, created, err := h.EnsureLoadBalancer(ctx, lb); err != nil || created || s.Creates != 1 {
		t.Fatalf("second ensure created again: %v %v", created, err)
	}
	st, _ = h.FindLoadBalancer(ctx, "wh-lb")
	var out bytes.Buffer
	PrintLoadBalancer(&out, st)
	for _, want := range []string{"wh-lb (id 4711) 203.0.113.50, round_robin", "tcp 443 → 443", "server 42 (role=proxy)  443   healthy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}

	snap, err := h.CreateSnapshot(ctx, "px1", "before upgrade")
	if err != nil || snap.ID != 9000 || snap.Status != "creating" || snap.Description != "before upgrade" {
		t.Fatalf("snapshot %+v %v", snap, err)
	}
	if _, err := h.CreateSnapshot(ctx, "nope", ""); err == nil || !strings.Contains(err.Error(), "no Hetzner Cloud server named nope") {
		t.Fatalf("unknown server: %v", err)
	}

	rs, err := h.GetRobotServer(ctx, "203.0.113.77")
	if err != nil || rs.ServerNumber != 321 || rs.ServerName != "db1" || rs.Product != "EX44" || rs.Status != "ready" {
		t.Fatalf("robot %+v %v", rs, err)
	}
	if _, err := h.GetRobotServer(ctx, "198.51.100.1", httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1})); httpx.StatusOf(err) != 404 {
		t.Fatalf("robot unknown: %v", err)
	}
	h.TokenFile = tokenFile(t, "wrong")
	if _, _, err := h.EnsureLoadBalancer(ctx, lb, httpx.WithRetry(httpx.RetryConfig{MaxAttempts: 1})); httpx.StatusOf(err) != 401 {
		t.Fatalf("bad token: %v", err)
	}
}
