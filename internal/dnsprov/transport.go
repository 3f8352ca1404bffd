package dnsprov

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// apiClient is the HTTP client a libdns provider library is given: the
// shared retrying client, whose transport sends the library's fixed API
// root (libRoot) to override when one is configured. The library's own
// request building and response parsing stay what runs, against whatever
// answers at override (a compatible endpoint, or a stand-in in tests).
func apiClient(libRoot, override string, opts []httpx.Option) (*httpx.Doer, error) {
	hc := httpx.NewSecureClient()
	if override != "" {
		rw, err := newRewrite(libRoot, override, hc.Transport)
		if err != nil {
			return nil, err
		}
		hc.Transport = rw
	}
	return httpx.New(append([]httpx.Option{httpx.WithHTTPClient(hc)}, opts...)...).HTTPClient(), nil
}

// rewriteTransport moves requests under one API root to another.
type rewriteTransport struct {
	from, to *url.URL
	next     http.RoundTripper
}

func newRewrite(from, to string, next http.RoundTripper) (*rewriteTransport, error) {
	f, err := url.Parse(from)
	if err != nil {
		return nil, err
	}
	t, err := url.Parse(to)
	if err != nil || (t.Scheme != "http" && t.Scheme != "https") || t.Host == "" {
		return nil, fmt.Errorf("api_url %q is not an http(s) URL", to)
	}
	f.Path, t.Path = strings.TrimSuffix(f.Path, "/"), strings.TrimSuffix(t.Path, "/")
	return &rewriteTransport{from: f, to: t, next: next}, nil
}

// RoundTrip implements http.RoundTripper.
func (rt *rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u := r.URL
	if u.Scheme != rt.from.Scheme || !strings.EqualFold(u.Host, rt.from.Host) ||
		(u.Path != rt.from.Path && !strings.HasPrefix(u.Path, rt.from.Path+"/")) {
		return rt.next.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	nu := *u
	nu.Scheme, nu.Host = rt.to.Scheme, rt.to.Host
	nu.Path, nu.RawPath = rt.to.Path+strings.TrimPrefix(u.Path, rt.from.Path), ""
	r2.URL, r2.Host = &nu, ""
	return rt.next.RoundTrip(r2)
}
