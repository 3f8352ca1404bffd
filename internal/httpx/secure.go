package httpx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
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

// blocked are the ranges a user-given URL may never reach.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"10.0.0.0/8",      // RFC 1918
		"100.64.0.0/10",   // CGNAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata (169.254.169.254)
		"172.16.0.0/12",   // RFC 1918
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay
		"192.168.0.0/16",  // RFC 1918
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"64:ff9b::/96",    // NAT64 (embeds IPv4)
		"64:ff9b:1::/48",  // local NAT64
		"100::/64",        // discard
		"2001::/32",       // Teredo
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4 (embeds IPv4)
		"fc00::/7",        // unique local (incl. fd00:ec2::254 metadata)
		"fe80::/10",       // link-local
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
		return nil // the dialer checks the new destination
	}
	return c
}
