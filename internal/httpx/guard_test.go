package httpx

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestGuardRefusesInternalDestinations(t *testing.T) {
	c := NewWebhookClient(GuardOptions{})
	for _, u := range []string{
		"http://127.0.0.1/", "http://127.1.2.3:8080/", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
		"http://[fd00:ec2::254]/", "http://10.0.0.1/", "http://192.168.1.1/", "http://172.16.0.1/",
		"http://100.64.0.1/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://[64:ff9b::a00:1]/",
		"http://[fe80::1]/", "http://224.0.0.1/",
	} {
		_, err := c.Get(u)
		if !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// A name that resolves to a private address is refused before any
// connection is made; the resolver here never touches the network.
func TestGuardRefusesNameResolvingToPrivate(t *testing.T) {
	c := NewWebhookClient(GuardOptions{Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "internal.example.com":
			return []netip.Addr{netip.MustParseAddr("10.1.2.3")}, nil
		case "rebind.example.com": // one public and one private answer
			return []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("127.0.0.1")}, nil
		}
		return nil, errors.New("no such host")
	}})
	for _, u := range []string{"http://internal.example.com/hook", "https://rebind.example.com/"} {
		if _, err := c.Get(u); !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestGuardAllowListAndRedirects(t *testing.T) {
	// A receiver on loopback, allowed explicitly (as tests and operators
	// may), that redirects to a private address.
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("hello"))
		case "/to-private":
			http.Redirect(w, r, "http://10.0.0.1/admin", http.StatusFound)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		}
	}))
	defer target.Close()
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

	c := NewWebhookClient(GuardOptions{Allow: allow, FollowRedirects: true})
	resp, err := c.Get(target.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, p := range []string{"/to-private", "/to-metadata"} {
		if _, err := c.Get(target.URL + p); !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("redirect %s: %v", p, err)
		}
	}
	// Without FollowRedirects a 3xx is returned, not followed.
	c2 := NewWebhookClient(GuardOptions{Allow: allow})
	resp, err = c2.Get(target.URL + "/to-private")
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	// The allow-list is exact: 127.0.0.2 stays blocked.
	if err := (&GuardOptions{Allow: allow}).CheckAddr(netip.MustParseAddr("127.0.0.2")); err == nil {
		t.Fatal("allow-list leaked to a neighbour")
	}
	if err := (&GuardOptions{}).CheckAddr(netip.MustParseAddr("93.184.215.14")); err != nil {
		t.Fatalf("public address refused: %v", err)
	}
	if !strings.Contains((&GuardOptions{}).CheckAddr(netip.MustParseAddr("::ffff:10.0.0.1")).Error(), "10.0.0.0/8") {
		t.Fatal("IPv4-mapped address not unmapped")
	}
}

func FuzzCheckAddr(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add([]byte{0xfd, 0, 0xe, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x54})
	g := &GuardOptions{}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		err := g.CheckAddr(ip)
		u := ip.Unmap()
		if err == nil && (u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsMulticast() || u.IsUnspecified()) {
			t.Fatalf("%s allowed", ip)
		}
	})
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Every range of the IANA IPv4 and IPv6 Special-Purpose Address
// Registries, plus the deprecated IPv4-compatible and site-local ranges,
// IPv4-translated addresses and multicast, is refused at its first and its
// last address; public neighbours stay reachable.
func TestGuardRefusesSpecialPurposeRegistries(t *testing.T) {
	g := &GuardOptions{}
	for _, s := range []string{
		// IPv4 Special-Purpose Address Registry
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.0.0/29", "192.0.0.8/32", "192.0.0.9/32", "192.0.0.10/32", "192.0.0.170/32",
		"192.0.0.171/32", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24",
		"192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
		"240.0.0.0/4", "255.255.255.255/32",
		// IPv6 Special-Purpose Address Registry
		"::1/128", "::/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "100:0:0:1::/64",
		"2001::/23", "2001::/32", "2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:2::/48",
		"2001:3::/32", "2001:4:112::/48", "2001:10::/28", "2001:20::/28", "2001:30::/28",
		"2001:db8::/32", "2002::/16", "2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
		// beyond the registries
		"::/96", "::ffff:0:0:0/96", "fec0::/10", "224.0.0.0/4", "ff00::/8",
	} {
		p := netip.MustParsePrefix(s)
		for _, ip := range []netip.Addr{p.Addr(), lastAddr(p)} {
			if err := g.CheckAddr(ip); !errors.Is(err, ErrBlockedAddress) {
				t.Errorf("%s (in %s) allowed", ip, s)
			}
		}
	}
	// IPv4-mapped addresses are judged by the IPv4 address they carry.
	for _, s := range []string{"::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "::127.0.0.1", "::ffff:0:7f00:1"} {
		if err := g.CheckAddr(netip.MustParseAddr(s)); !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("%s allowed", s)
		}
	}
	for _, s := range []string{"93.184.215.14", "1.1.1.1", "192.0.1.1", "192.0.3.1", "198.20.0.1", "::ffff:93.184.215.14",
		"2606:4700:4700::1111", "2001:200::1", "2a00:1450:4001::1"} {
		if err := g.CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("public %s refused: %v", s, err)
		}
	}
}

// A redirect to an address literal in a blocked range is refused at that
// hop, before any dial; a name is checked by the dialer.
func TestGuardChecksEveryRedirectHop(t *testing.T) {
	var hops int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hops++
		switch r.URL.Path {
		case "/1":
			http.Redirect(w, r, "/2", http.StatusTemporaryRedirect)
		default:
			http.Redirect(w, r, "http://[::ffff:0:7f00:1]:2019/stop", http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	c := NewWebhookClient(GuardOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, FollowRedirects: true})
	_, err := c.Post(srv.URL+"/1", "text/plain", strings.NewReader("x"))
	if !errors.Is(err, ErrBlockedAddress) || hops != 2 {
		t.Fatalf("hops %d: %v", hops, err)
	}
}
