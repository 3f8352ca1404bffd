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
