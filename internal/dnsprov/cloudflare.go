// Package dnsprov manages DNS records at the operator's DNS provider
// through libdns providers: the wildcard record of the app zone, ACME
// DNS-01 challenges for the wildcard certificate, and the `wisehosting dns`
// commands. Providers are registered by name (registry.go); every provider
// call goes through the shared retrying client (internal/httpx).
package dnsprov

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libdns/cloudflare"
	"github.com/libdns/libdns"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// Provider is what the platform needs of a DNS provider: the libdns
// getter, appender, setter and deleter.
type Provider interface {
	libdns.RecordGetter
	libdns.RecordAppender
	libdns.RecordSetter
	libdns.RecordDeleter
}

// cloudflareAPI is the API root github.com/libdns/cloudflare calls.
const cloudflareAPI = "https://api.cloudflare.com/client/v4"

// cloudflareMinTTL is the shortest TTL Cloudflare accepts (besides 1,
// "automatic", which a TTL of 0 leaves to it).
const cloudflareMinTTL = time.Minute

// Cloudflare is github.com/libdns/cloudflare with a scoped API token
// (Zone:DNS:Edit), its calls carried by the shared retrying client.
type Cloudflare struct {
	APIToken string
	// APIURL sends the library's calls to another API root (a compatible
	// endpoint, or a stand-in in tests) instead of the real one.
	APIURL      string
	HTTPOptions []httpx.Option

	once sync.Once
	lib  *cloudflare.Provider
	err  error
}

func (c *Cloudflare) provider() (*cloudflare.Provider, error) {
	c.once.Do(func() {
		hc, err := apiClient(cloudflareAPI, c.APIURL, c.HTTPOptions)
		c.lib, c.err = &cloudflare.Provider{APIToken: c.APIToken, HTTPClient: hc}, err
	})
	return c.lib, c.err
}

// normZone is the zone as Cloudflare names it: no trailing dot (ACME
// clients pass the zone fully qualified).
func normZone(zone string) string { return strings.TrimSuffix(strings.ToLower(zone), ".") }

// zoneErr turns the library's answer for a zone the token does not see
// (an empty zone list) into a sentence an operator can act on.
func zoneErr(zone string, err error) error {
	if err != nil && strings.Contains(err.Error(), "expected 1 zone, got 0") {
		return fmt.Errorf("zone %s not found in the Cloudflare account (or not visible to the API token): %w", zone, err)
	}
	return err
}

// GetRecords implements libdns.RecordGetter.
func (c *Cloudflare) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	p, err := c.provider()
	if err != nil {
		return nil, err
	}
	recs, err := p.GetRecords(ctx, normZone(zone))
	return recs, zoneErr(zone, err)
}

// AppendRecords implements libdns.RecordAppender.
func (c *Cloudflare) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p, err := c.provider()
	if err != nil {
		return nil, err
	}
	if recs, err = raiseTTL(recs, cloudflareMinTTL); err != nil {
		return nil, err
	}
	out, err := p.AppendRecords(ctx, normZone(zone), recs)
	return out, zoneErr(zone, err)
}

// SetRecords implements libdns.RecordSetter (the library updates the one
// record of each name and type in place, or creates it).
func (c *Cloudflare) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p, err := c.provider()
	if err != nil {
		return nil, err
	}
	if recs, err = raiseTTL(recs, cloudflareMinTTL); err != nil {
		return nil, err
	}
	out, err := p.SetRecords(ctx, normZone(zone), recs)
	return out, zoneErr(zone, err)
}

// DeleteRecords implements libdns.RecordDeleter.
func (c *Cloudflare) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p, err := c.provider()
	if err != nil {
		return nil, err
	}
	out, err := p.DeleteRecords(ctx, normZone(zone), recs)
	return out, zoneErr(zone, err)
}

// Interface guard.
var _ Provider = (*Cloudflare)(nil)
