package domains

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultResolvers are public resolvers, asked directly so a stale local
// cache does not delay verification.
var DefaultResolvers = []string{"1.1.1.1:53", "8.8.8.8:53", "9.9.9.9:53"}

// Verifier looks verification records up.
type Verifier struct {
	// Resolvers (host:port) asked in turn; default DefaultResolvers.
	Resolvers []string
	// Timeout of the whole lookup; default 8s.
	Timeout time.Duration
}

// Typed verification failures (all *UserError for the user).
var (
	ErrNoRecord   = errors.New("no TXT record")
	ErrWrongValue = errors.New("TXT record has another value")
	ErrTimeout    = errors.New("DNS lookup timed out")
)

// VerifyError explains a failed verification.
type VerifyError struct {
	Kind error
	Msg  string
}

func (e *VerifyError) Error() string { return e.Msg }
func (e *VerifyError) Unwrap() error { return e.Kind }

// cloudflare are Cloudflare's anycast ranges: a name answering there is
// proxied ("orange cloud"), which hides CNAME targets.
var cloudflare = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22", "141.101.64.0/18",
		"108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20", "197.234.240.0/22", "198.41.128.0/17", "162.158.0.0/15",
		"104.16.0.0/13", "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22", "2400:cb00::/32", "2606:4700::/32",
		"2803:f800::/32", "2405:b500::/32", "2405:8100::/32", "2a06:98c0::/29", "2c0f:f248::/32"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

func (v *Verifier) resolver(server string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// Check looks up TXT _wisehosting.<host> and compares it with token.
func (v *Verifier) Check(ctx context.Context, host, token string) error {
	timeout := v.Timeout
	if timeout <= 0 {
		timeout = 8 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	servers := v.Resolvers
	if len(servers) == 0 {
		servers = DefaultResolvers
	}
	name := "_wisehosting." + host
	var records []string
	var lastErr error
	for _, s := range servers {
		r := v.resolver(s)
		txt, err := r.LookupTXT(ctx, name)
		if err == nil {
			records, lastErr = txt, nil
			break
		}
		lastErr = err
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			break // authoritative "no such record": other resolvers agree
		}
	}
	switch {
	case lastErr != nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(lastErr)):
		return &VerifyError{ErrTimeout, fmt.Sprintf("looking up %s timed out after %s; check that the domain's name servers answer, then try again", name, timeout)}
	case lastErr != nil || len(records) == 0:
		msg := fmt.Sprintf("no TXT record found at %s; add it (value shown above) and allow a few minutes for DNS to update", name)
		if v.behindCloudflare(ctx, servers, host) {
			msg += ". " + host + " is proxied by Cloudflare (orange cloud): the proxy hides where it points, so add the TXT record in Cloudflare's DNS itself, and set the record of " + host + " to \"DNS only\" (grey cloud) so certificates can be issued"
		}
		return &VerifyError{ErrNoRecord, msg}
	}
	for _, r := range records {
		if strings.TrimSpace(r) == token {
			return nil
		}
	}
	return &VerifyError{ErrWrongValue, fmt.Sprintf("the TXT record at %s has %q, not this domain's token; replace it with the value shown above", name, records[0])}
}

func isTimeout(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsTimeout
}

func (v *Verifier) behindCloudflare(ctx context.Context, servers []string, host string) bool {
	if ctx.Err() != nil || len(servers) == 0 {
		return false
	}
	ips, err := v.resolver(servers[0]).LookupNetIP(ctx, "ip", host)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		for _, p := range cloudflare {
			if p.Contains(ip.Unmap()) {
				return true
			}
		}
	}
	return false
}
