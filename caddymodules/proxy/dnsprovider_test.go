package proxy

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/wisehosting/wisehosting/internal/dnsprov/cftest"
)

// The Caddyfile block names any registered provider; its other
// subdirectives are the provider's options, checked by the provider.
func TestDNSProviderCaddyfile(t *testing.T) {
	cf := cftest.Start(t, "example.com", "cf-token")
	var d DNSProvider
	if err := d.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`wisehosting cloudflare {
		api_token cf-token
		api_url ` + cf.URL + `
	}`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := d.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetRecords(ctx, "example.com."); err != nil {
		t.Fatalf("listing through the module: %v", err)
	}

	var bad DNSProvider
	if err := bad.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`wisehosting cloudflare {
		api_token x
		zone_tokn y
	}`)); err != nil {
		t.Fatal(err)
	}
	if err := bad.Provision(ctx); err == nil || !strings.Contains(err.Error(), "zone_tokn") {
		t.Fatalf("misspelt option: %v", err)
	}
	var unknown DNSProvider
	unknown.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`wisehosting route66 { api_token x }`))
	if err := unknown.Provision(ctx); err == nil || !strings.Contains(err.Error(), "cloudflare") {
		t.Fatalf("unknown provider: %v", err)
	}
}
