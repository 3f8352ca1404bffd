package httpx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// NewSecureClient is the client for calls to known APIs: TLS 1.2 or newer,
// bounded dial, handshake, header and total times.
func NewSecureClient() *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ExpectContinueTimeout: time.Second,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
	}
}

// GuardOptions configure the SSRF guard.
type GuardOptions struct {
	// Allow lists prefixes that are reachable although they are in a
	// blocked range (tests use loopback receivers; an operator may allow a
	// private notification server). Empty in production.
	Allow []netip.Prefix
	// Resolve replaces DNS resolution (tests).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// FollowRedirects allows up to 5 redirects, each re-checked by the
	// dialer. Webhook deliveries keep it off: a 3xx is a failure.
	FollowRedirects bool
	// Timeout bounds a whole request. Default 15s.
	Timeout time.Duration
}

// ErrBlockedAddress is returned for a destination in a blocked range.
var ErrBlockedAddress = errors.New("destination address is not allowed")

// blocked are the ranges a user-given URL may never reach: every entry of
// the IANA IPv4 and IPv6 Special-Purpose Address Registries (even those
// marked globally reachable: none is a place a notification belongs),
// plus multicast, the deprecated IPv4-compatible and site-local IPv6
// ranges, and IPv4-translated addresses, which all embed or reach
// addresses the guard must not dial.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		// IANA IPv4 Special-Purpose Address Registry
		"0.0.0.0/8",          // "this network"
		"10.0.0.0/8",         // private (RFC 1918)
		"100.64.0.0/10",      // shared address space (CGNAT)
		"127.0.0.0/8",        // loopback
		"169.254.0.0/16",     // link-local, cloud metadata (169.254.169.254)
		"172.16.0.0/12",      // private (RFC 1918)
		"192.0.0.0/24",       // IETF protocol assignments (incl. /29, .8, .9, .10, .170, .171)
		"192.0.2.0/24",       // documentation (TEST-NET-1)
		"192.31.196.0/24",    // AS112-v4
		"192.52.193.0/24",    // AMT
		"192.88.99.0/24",     // deprecated 6to4 relay anycast
		"192.168.0.0/16",     // private (RFC 1918)
		"192.175.48.0/24",    // direct delegation AS112 service
		"198.18.0.0/15",      // benchmarking
		"198.51.100.0/24",    // documentation (TEST-NET-2)
		"203.0.113.0/24",     // documentation (TEST-NET-3)
		"240.0.0.0/4",        // reserved
		"255.255.255.255/32", // limited broadcast
		"224.0.0.0/4",        // multicast (its own registry)
		// IANA IPv6 Special-Purpose Address Registry
		"::1/128",           // loopback
		"::/128",            // unspecified
		"::ffff:0:0/96",     // IPv4-mapped: checked as the IPv4 address it maps (CheckAddr unmaps first)
		"64:ff9b::/96",      // IPv4/IPv6 translation (NAT64, embeds IPv4)
		"64:ff9b:1::/48",    // local-use IPv4/IPv6 translation
		"100::/64",          // discard-only
		"100:0:0:1::/64",    // dummy IPv6 prefix
		"2001::/23",         // IETF protocol assignments (Teredo, benchmarking, AMT, AS112, ORCHIDv2, DRIP, …)
		"2001:db8::/32",     // documentation
		"2002::/16",         // 6to4 (embeds IPv4)
		"2620:4f:8000::/48", // direct delegation AS112 service
		"3fff::/20",         // documentation
		"5f00::/16",         // segment routing (SRv6) SIDs
		"fc00::/7",          // unique local (incl. fd00:ec2::254 metadata)
		"fe80::/10",         // link-local
		// Beyond the registry
		"::/96",           // IPv4-compatible (deprecated; embeds IPv4: ::127.0.0.1)
		"::ffff:0:0:0/96", // IPv4-translated (SIIT)
		"fec0::/10",       // site-local (deprecated, still routed internally by some stacks)
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// CheckAddr reports whether ip may be dialed under opts.
func (o *GuardOptions) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	for _, p := range o.Allow {
		if p.Contains(ip) {
			return nil
		}
	}
	if !ip.IsValid() || ip.Zone() != "" {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, ip)
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s is in %s", ErrBlockedAddress, ip, p)
		}
	}
	return nil
}

// DialContext resolves addr, refuses it if any resolved address is blocked,
// and dials a checked address itself, so a second (rebinding) lookup can
// never be used.
func (o *GuardOptions) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if o.Resolve != nil {
		ips, err = o.Resolve(ctx, host)
		if err != nil {
			return nil, err
		}
	} else {
		ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no address for %s", host)
	}
	// Any blocked answer refuses the name: a name that resolves to both a
	// public and a private address is a rebinding attempt.
	for _, ip := range ips {
		if err := o.CheckAddr(ip); err != nil {
			return nil, fmt.Errorf("refusing %s: %w", host, err)
		}
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	var lastErr error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// NewGuardedTransport is an http.Transport that dials only allowed
// addresses and ignores proxy settings (a proxy would dial for us).
func NewGuardedTransport(o GuardOptions) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           o.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// NewWebhookClient is the client for user-given URLs (SSRF-guarded).
func NewWebhookClient(o GuardOptions) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	c := &http.Client{Timeout: o.Timeout, Transport: NewGuardedTransport(o)}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !o.FollowRedirects {
			return http.ErrUseLastResponse
		}
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to unsupported scheme %q", req.URL.Scheme)
		}
		// Each hop is checked: an address literal here, and every
		// resolved name again by the dialer.
		if ip, err := netip.ParseAddr(strings.Trim(req.URL.Hostname(), "[]")); err == nil {
			if err := o.CheckAddr(ip); err != nil {
				return fmt.Errorf("redirect refused: %w", err)
			}
		}
		return nil
	}
	return c
}
