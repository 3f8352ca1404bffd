package dnsprov

import (
	"context"
	"strings"
	"time"

	"github.com/libdns/libdns"
)

// EnsureRecord makes name/type in zone hold exactly value (create or
// update; idempotent).
func EnsureRecord(ctx context.Context, p Provider, zone, name, typ, value string, ttl time.Duration) error {
	rr, err := libdns.RR{Name: name, Type: strings.ToUpper(typ), Data: value, TTL: ttl}.Parse()
	if err != nil {
		return err
	}
	_, err = p.SetRecords(ctx, zone, []libdns.Record{rr})
	return err
}

// DeleteRecord removes name/type (any content) from zone.
func DeleteRecord(ctx context.Context, p Provider, zone, name, typ string) error {
	_, err := p.DeleteRecords(ctx, zone, []libdns.Record{libdns.RR{Name: name, Type: strings.ToUpper(typ)}})
	return err
}

// challengeName is the DNS-01 record of host relative to zone.
func challengeName(host, zone string) string {
	return libdns.RelativeName("_acme-challenge."+strings.TrimSuffix(strings.TrimPrefix(host, "*."), ".")+".", strings.TrimSuffix(zone, ".")+".")
}

// SetACMEChallenge publishes a DNS-01 key authorization digest for host.
func SetACMEChallenge(ctx context.Context, p Provider, zone, host, value string) error {
	_, err := p.AppendRecords(ctx, zone, []libdns.Record{libdns.TXT{Name: challengeName(host, zone), Text: value, TTL: time.Minute}})
	return err
}

// ClearACMEChallenge removes it again.
func ClearACMEChallenge(ctx context.Context, p Provider, zone, host, value string) error {
	_, err := p.DeleteRecords(ctx, zone, []libdns.Record{libdns.TXT{Name: challengeName(host, zone), Text: value}})
	return err
}
