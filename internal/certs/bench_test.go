package certs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// A steady-state sync of 200 stored certificates (nothing changed).
func BenchmarkSync200(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	now := time.Now()
	for i := range 200 {
		name := fmt.Sprintf("app%d.customer.com", i)
		if _, err := db.Pool.Exec(ctx, `INSERT INTO certmagic_data (key, value) VALUES ($1, $2)`,
			"certificates/acme-v02/"+name+"/"+name+".crt", certPEM(b, name, now.Add(60*24*time.Hour))); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := Sync(ctx, db.Pool, now, 14*24*time.Hour, ""); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ch, err := Sync(ctx, db.Pool, now, 14*24*time.Hour, "")
		if err != nil || len(ch.Provisioned) != 0 {
			b.Fatal(ch, err)
		}
	}
}
