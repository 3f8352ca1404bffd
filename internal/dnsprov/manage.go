package dnsprov

import (
	"context"
	"strings"
	"time"

	"github.com/libdns/libdns"
)

// EnsureRecord makes name/type in zone hold exactly value (create or
// update; idempotent: a record already as wanted costs one listing and no
// write, and surplus records of the name and type are removed).
func EnsureRecord(ctx context.Context, p Provider, zone, name, typ, value string, ttl time.Duration) error {
	want, err := libdns.RR{Name: name, Type: strings.ToUpper(typ), Data: value, TTL: ttl}.Parse()
	if err != nil {
		return err
	}
	wr := want.RR()
	have, err := matching(ctx, p, zone, wr.Name, wr.Type)
	if err != nil {
		return err
	}
	if len(have) == 1 && sameRecord(have[0].RR(), wr) {
		return nil
	}
	if len(have) > 1 {
		if _, err := p.DeleteRecords(ctx, zone, have[1:]); err != nil {
			return err
		}
	}
	_, err = p.SetRecords(ctx, zone, []libdns.Record{want})
	return err
}

// DeleteRecord removes name/type (any content) from zone.
func DeleteRecord(ctx context.Context, p Provider, zone, name, typ string) error {
	have, err := matching(ctx, p, zone, name, strings.ToUpper(typ))
	if err != nil || len(have) == 0 {
		return err
	}
	_, err = p.DeleteRecords(ctx, zone, have)
	return err
}

// matching lists the records of zone with the relative name and type.
func matching(ctx context.Context, p Provider, zone, name, typ string) ([]libdns.Record, error) {
	recs, err := p.GetRecords(ctx, zone)
	if err != nil {
		return nil, err
	}
	var out []libdns.Record
	for _, r := range recs {
		if rr := r.RR(); rr.Type == typ && sameName(rr.Name, name, zone) {
			out = append(out, r)
		}
	}
	return out, nil
}

func sameName(a, b, zone string) bool {
	z := strings.TrimSuffix(zone, ".") + "."
	return strings.EqualFold(libdns.AbsoluteName(a, z), libdns.AbsoluteName(b, z))
}

// sameRecord compares data the way DNS does: names case-insensitively and
// with or without the trailing dot.
// A wanted TTL of 0 leaves the provider's default, whatever it is.
func sameRecord(have, want libdns.RR) bool {
	if want.TTL != 0 && have.TTL != want.TTL {
		return false
	}
	if want.Type == "TXT" {
		return have.Data == want.Data
	}
	return strings.EqualFold(strings.TrimSuffix(have.Data, "."), strings.TrimSuffix(want.Data, "."))
}

// raiseTTL returns recs with every TTL below min (but not 0, the
// provider's default) raised to min, for providers that refuse shorter
// ones.
func raiseTTL(recs []libdns.Record, min time.Duration) ([]libdns.Record, error) {
	out := make([]libdns.Record, len(recs))
	for i, r := range recs {
		rr := r.RR()
		if rr.TTL == 0 || rr.TTL >= min {
			out[i] = r
			continue
		}
		rr.TTL = min
		p, err := rr.Parse()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
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
