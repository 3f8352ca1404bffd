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

// DNSProvider is `dns.providers.wisehosting`: any DNS provider registered
// in internal/dnsprov (libdns providers, their calls carried by the shared
// retrying client) for ACME DNS-01, as needed by the wildcard certificate
// of the app zone:
//
//	tls {
//		dns wisehosting cloudflare {
//			api_token {env.CLOUDFLARE_API_TOKEN}
//		}
//	}
//
// Other subdirectives are the provider's own options (see the README).
type DNSProvider struct {
	// Provider is a name registered in internal/dnsprov (cloudflare,
	// cloudns).
	// Default: cloudflare.
	Provider string `json:"provider,omitempty"`
	// APIToken is the provider's credential (Cloudflare: a token with
	// Zone:DNS:Edit on the zone; CloudNS: the API user's password). Placeholders such as {env.X} are replaced.
	APIToken string `json:"api_token,omitempty"`
	// Options are the provider's own settings by name (CloudNS: auth_id,
	// sub_auth_id or sub_auth_user); placeholders are replaced. A provider refuses names it does not know.
	Options map[string]string `json:"options,omitempty"`
	// APIURL sends the provider's API calls to another root (compatible
	// endpoints, tests).
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
	opts := make(map[string]string, len(d.Options))
	for k, v := range d.Options {
		opts[k] = repl.ReplaceKnown(v, "")
	}
	var err error
	d.p, err = dnsprov.Open(d.Provider, dnsprov.Config{
		Token:   repl.ReplaceKnown(d.APIToken, ""),
		Options: opts,
		APIURL:  repl.ReplaceKnown(d.APIURL, ""),
	})
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

// UnmarshalCaddyfile reads `dns wisehosting [<provider>] { provider …; api_token …; api_url …; <option> <value> … }`.
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
			if d.Options == nil {
				d.Options = map[string]string{}
			}
			d.Options[key] = val
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
