package domains

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Certificate is what the proxies' certificate for a hostname looks like
// (recorded by the certificate watcher), as shown next to a domain.
type Certificate struct {
	Status    string    `json:"status"`
	Issuer    string    `json:"issuer"`
	NotAfter  time.Time `json:"not_after"`
	LastError string    `json:"last_error,omitempty"`
}

// Record is one DNS record a domain's owner publishes.
type Record struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Records are the DNS records to publish for d: the TXT record that
// proves ownership, and the CNAME that sends its traffic to the proxies
// (target is the app's own <slug>.<subdomain_base>, which the proxies'
// wildcard records already resolve; empty when there is no subdomain
// base).
func (d Domain) Records(target string) []Record {
	rs := []Record{{Type: "TXT", Name: d.RecordName(), Value: d.Token}}
	if target != "" {
		rs = append(rs, Record{Type: "CNAME", Name: d.Hostname, Value: target})
	}
	return rs
}

// Certificates returns the recorded certificates of the given hostnames;
// a hostname without one is absent from the map.
func (s *Service) Certificates(ctx context.Context, hostnames []string) (map[string]Certificate, error) {
	out := map[string]Certificate{}
	if len(hostnames) == 0 {
		return out, nil
	}
	rows, err := s.Pool.Query(ctx, `SELECT hostname, status, issuer, not_after, last_error FROM certificates WHERE hostname = ANY($1)`, hostnames)
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	var host string
	var c Certificate
	_, err = pgx.ForEachRow(rows, []any{&host, &c.Status, &c.Issuer, &c.NotAfter, &c.LastError}, func() error {
		out[host] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	return out, nil
}
