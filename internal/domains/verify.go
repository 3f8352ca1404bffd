package domains

import (
	"context"
	"crypto/subtle"
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

// ParseResolvers reads an operator's resolver list ("1.1.1.1, [2606:4700::1111]:53,
// 9.9.9.9:5353"): IP addresses, port 53 unless given. Names are refused, as
// resolving a resolver's name would need a resolver.
func ParseResolvers(s string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if ap, err := netip.ParseAddrPort(f); err == nil {
			if ap.Port() == 0 {
				return nil, fmt.Errorf("resolver %q: port 0", f)
			}
			out = append(out, ap.String())
			continue
		}
		ip, err := netip.ParseAddr(strings.Trim(f, "[]"))
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("resolver %q: not an IP address or IP:port", f)
		}
		out = append(out, netip.AddrPortFrom(ip, 53).String())
	}
	return out, nil
}

// Verifier looks verification records up.
type Verifier struct {
	// Resolvers (host:port) asked in turn; default DefaultResolvers.
	Resolvers []string
	// Timeout of the whole lookup; default 8s.
	Timeout time.Duration
}

// Typed verification failures (all errs.Invalid, for the user).
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
	records, lastErr := v.lookup(ctx, servers, name, token)
	switch {
	case lastErr != nil && (errors.Is(lastErr, context.DeadlineExceeded) || isTimeout(lastErr)):
		return &VerifyError{ErrTimeout, fmt.Sprintf("looking up %s timed out after %s; check that the domain's name servers answer, then try again", name, timeout)}
	case lastErr != nil || len(records) == 0:
		msg := fmt.Sprintf("no TXT record found at %s; add it (value shown above) and allow a few minutes for DNS to update", name)
		if v.behindCloudflare(ctx, servers, host) {
			msg += ". " + host + " is proxied by Cloudflare (orange cloud): the proxy hides where it points, so add the TXT record in Cloudflare's DNS itself, and set the record of " + host + " to \"DNS only\" (grey cloud) so certificates can be issued"
		}
		return &VerifyError{ErrNoRecord, msg}
	}
	for _, r := range records {
		if matches(r, token) {
			return nil
		}
	}
	return &VerifyError{ErrWrongValue, fmt.Sprintf("the TXT record at %s has %q, not this domain's token; replace it with the value shown above", name, shorten(records[0], 80))}
}

// graceAfterAnswer is how long lookup waits for the other resolvers once
// one has answered without the token: a resolver with a stale negative
// cache should not hide a record the others already see.
const graceAfterAnswer = time.Second

// lookup asks every resolver at once, so one unreachable resolver costs
// nothing when another answers. A record holding token wins at once;
// otherwise any TXT answer beats "not found", which beats an error.
func (v *Verifier) lookup(ctx context.Context, servers []string, name, token string) ([]string, error) {
	type result struct {
		txt []string
		err error
	}
	results := make(chan result, len(servers))
	for _, s := range servers {
		go func() {
			txt, err := v.resolver(s).LookupTXT(ctx, name)
			results <- result{txt, err}
		}()
	}
	rank := func(r result) int {
		var de *net.DNSError
		switch {
		case r.err == nil && len(r.txt) > 0:
			return 3
		case r.err == nil || errors.As(r.err, &de) && de.IsNotFound:
			return 2
		}
		return 1
	}
	var best result
	have := false
	var grace <-chan time.Time
	for range servers {
		var r result
		select {
		case r = <-results:
		case <-grace:
			return best.txt, best.err
		case <-ctx.Done():
			if !have {
				return nil, ctx.Err()
			}
			return best.txt, best.err
		}
		for _, t := range r.txt {
			if matches(t, token) {
				return r.txt, nil
			}
		}
		if !have || rank(r) > rank(best) {
			best, have = r, true
		}
		if rank(r) >= 2 && grace == nil {
			grace = time.After(graceAfterAnswer)
		}
	}
	return best.txt, best.err
}

// matches compares a TXT value with the token in constant time, ignoring
// the spaces and quotes that DNS control panels sometimes keep.
func matches(txt, token string) bool {
	v := strings.Trim(strings.TrimSpace(txt), `"'`)
	return len(v) == len(token) && subtle.ConstantTimeCompare([]byte(v), []byte(token)) == 1
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func isTimeout(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsTimeout
}

// behindCloudflare reports whether host resolves into Cloudflare's ranges,
// asking every resolver at once for at most two seconds (it only refines
// an error message).
func (v *Verifier) behindCloudflare(ctx context.Context, servers []string, host string) bool {
	if ctx.Err() != nil || len(servers) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	answers := make(chan bool, len(servers))
	for _, s := range servers {
		go func() {
			ips, err := v.resolver(s).LookupNetIP(ctx, "ip", host)
			answers <- err == nil && inCloudflare(ips)
		}()
	}
	var grace <-chan time.Time
	for range servers {
		select {
		case yes := <-answers:
			if yes {
				return true
			}
			if grace == nil {
				grace = time.After(graceAfterAnswer)
			}
		case <-grace:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return false
}

func inCloudflare(ips []netip.Addr) bool {
	for _, ip := range ips {
		for _, p := range cloudflare {
			if p.Contains(ip.Unmap()) {
				return true
			}
		}
	}
	return false
}
