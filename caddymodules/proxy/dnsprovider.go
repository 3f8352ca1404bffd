package proxy

import (
	"context"
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"

	"github.com/wisehosting/wisehosting/internal/dnsprov"
)

func init() {
	caddy.RegisterModule(new(DNSProvider))
}

// DNSProvider is `dns.providers.wisehosting`: the platform's DNS providers
// (internal/dnsprov, over the shared retrying client) for ACME DNS-01, as
// needed by the wildcard certificate of the app zone:
//
//	tls {
//		dns wisehosting {
//			provider  cloudflare
//			api_token {env.CLOUDFLARE_API_TOKEN}
//		}
//	}
type DNSProvider struct {
	// Provider name: cloudflare.
	Provider string `json:"provider,omitempty"`
	// API token (Cloudflare: Zone:DNS:Edit on the zone).
	APIToken string `json:"api_token,omitempty"`
	// API root override (proxies, tests).
	APIURL string `json:"api_url,omitempty"`

	p dnsprov.Provider
}

// CaddyModule returns the Caddy module information.
func (*DNSProvider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "dns.providers.wisehosting", New: func() caddy.Module { return new(DNSProvider) }}
}

// Provision builds the provider.
func (d *DNSProvider) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	if d.Provider == "" {
		d.Provider = "cloudflare"
	}
	var err error
	d.p, err = dnsprov.New(d.Provider, repl.ReplaceKnown(d.APIToken, ""), repl.ReplaceKnown(d.APIURL, ""))
	return err
}

// GetRecords implements libdns.RecordGetter.
func (d *DNSProvider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	return d.p.GetRecords(ctx, zone)
}

// AppendRecords implements libdns.RecordAppender.
func (d *DNSProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return d.p.AppendRecords(ctx, zone, recs)
}

// SetRecords implements libdns.RecordSetter.
func (d *DNSProvider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return d.p.SetRecords(ctx, zone, recs)
}

// DeleteRecords implements libdns.RecordDeleter.
func (d *DNSProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return d.p.DeleteRecords(ctx, zone, recs)
}

// UnmarshalCaddyfile reads `dns wisehosting [<provider>] { provider …; api_token …; api_url … }`.
func (d *DNSProvider) UnmarshalCaddyfile(disp *caddyfile.Dispenser) error {
	disp.Next()
	if disp.NextArg() {
		d.Provider = disp.Val()
	}
	for disp.NextBlock(0) {
		key := disp.Val()
		var val string
		if !disp.AllArgs(&val) {
			return disp.ArgErr()
		}
		switch key {
		case "provider":
			d.Provider = val
		case "api_token":
			d.APIToken = val
		case "api_url":
			d.APIURL = val
		default:
			return disp.Errf("unrecognized dns wisehosting option %q", key)
		}
	}
	if d.APIToken == "" {
		return errors.New("dns wisehosting: api_token is required")
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*DNSProvider)(nil)
	_ certmagic.DNSProvider = (*DNSProvider)(nil)
	_ caddyfile.Unmarshaler = (*DNSProvider)(nil)
)
