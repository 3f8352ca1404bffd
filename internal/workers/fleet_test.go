package workers

import (
	"context"
	"testing"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// TestDrainAndFleet: a worker is drained and resumed by id, a revoked one
// is a conflict and an unknown one is not found; the fleet lists workers
// with what their running apps reserve.
func TestDrainAndFleet(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	s := &Service{Pool: db.Pool}
	var w1, w2, team int64
	db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, wg_ip, status, cpu_millis, memory_mb, last_seen)
		VALUES ('w1', 'k1', '127.0.0.5', 'online', 4000, 8192, now()) RETURNING id`).Scan(&w1)
	db.Pool.QueryRow(ctx, `INSERT INTO workers (name, api_key_hash, wg_ip, status) VALUES ('w2', 'k2', '127.0.0.6', 'revoked') RETURNING id`).Scan(&w2)
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO apps (team_id, slug, name, worker_id, status, cpu_millis, memory_mb) VALUES
		($1, 'a', 'a', $2, 'running', 500, 256), ($1, 'b', 'b', $2, 'stopped', 1000, 512)`, team, w1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Online(ctx); err != nil || n != 1 {
		t.Fatalf("online %d %v", n, err)
	}
	if w, err := s.Drain(ctx, w1, true); err != nil || w.Status != "draining" {
		t.Fatalf("drain %+v %v", w, err)
	}
	if n, _ := s.Online(ctx); n != 0 {
		t.Fatalf("a draining worker is online: %d", n)
	}
	if w, err := s.Drain(ctx, w1, false); err != nil || w.Status != "online" {
		t.Fatalf("resume %+v %v", w, err)
	}
	if _, err := s.Drain(ctx, w2, true); err != ErrRevokedDrain || !errs.Is(err, errs.Conflict) {
		t.Fatalf("draining a revoked worker: %v", err)
	}
	if _, err := s.Drain(ctx, w2+100, true); !errs.Is(err, errs.NotFound) {
		t.Fatalf("an unknown worker: %v", err)
	}
	fleet, err := s.Fleet(ctx)
	if err != nil || len(fleet) != 2 || fleet[0].Name != "w1" {
		t.Fatalf("fleet %+v %v", fleet, err)
	}
	if f := fleet[0]; f.Apps != 1 || f.Reserved.CPUMillis != 500 || f.Reserved.MemoryMB != 256 || f.Capacity.CPUMillis != 4000 || f.Draining {
		t.Fatalf("w1 %+v", f)
	}
}
