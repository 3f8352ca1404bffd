package domains

import (
	"context"
	"testing"
	"time"
)

func BenchmarkNormalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize("Shop.Bücher-Laden.example", "apps.example.net"); err != nil {
			b.Fatal(err)
		}
	}
}

// One verification lookup against a DNS server on loopback.
func BenchmarkVerifierCheck(b *testing.B) {
	z := newZone(b)
	z.txt["_wisehosting.www.customer.com"] = []string{"v=other", "tok"}
	v := &Verifier{Resolvers: []string{z.addr}, Timeout: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Check(ctx, "www.customer.com", "tok"); err != nil {
			b.Fatal(err)
		}
	}
}
