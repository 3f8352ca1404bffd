package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/wisehosting/wisehosting/internal/network"
)

func init() {
	caddy.RegisterModule(new(Route))
	caddy.RegisterModule(new(Upstreams))
	caddy.RegisterModule(new(Permission))
	httpcaddyfile.RegisterHandlerDirective("wisehosting_route", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		r := new(Route)
		return r, r.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("wisehosting_route", httpcaddyfile.Before, "reverse_proxy")
}

// pathVar is the caddyhttp variable holding the request's route.
const pathVar = "wisehosting.route"

// lookup finds host and path in the current table: the longest matching
// prefix of the host's paths.
func lookup(host, path string) (*network.HostEntry, *network.PathEntry) {
	t := state.table.Load()
	if t == nil {
		return nil, nil
	}
	if strings.IndexByte(host, ':') >= 0 { // most Host headers carry no port
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	e := t.Hosts[strings.ToLower(strings.TrimSuffix(host, "."))]
	if e == nil {
		return nil, nil
	}
	for i := range e.Paths { // longest first
		p := &e.Paths[i]
		if p.Prefix == "/" || path == p.Prefix || strings.HasPrefix(path, strings.TrimSuffix(p.Prefix, "/")+"/") {
			return e, p
		}
	}
	return e, nil
}

// Route is the `wisehosting_route` handler: it resolves the request in the
// routing table, answers 404 for hosts and paths it does not know, strips
// the route's prefix when asked, and hands the route to the upstream
// source. With Forward, it proxies routes whose upstreams all speak plain
// HTTP itself (one shared transport, no per-request upstream values, no
// placeholders) and leaves only https and h2c upstreams to reverse_proxy.
type Route struct {
	Forward bool `json:"forward,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*Route) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.wisehosting_route", New: func() caddy.Module { return new(Route) }}
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (rt *Route) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	_, p := lookup(r.Host, r.URL.Path)
	if p == nil {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no app serves %s%s", r.Host, r.URL.Path))
	}
	if p.StripPrefix {
		prefix := strings.TrimSuffix(p.Prefix, "/")
		r.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, prefix), "/")
		r.URL.RawPath = ""
	}
	if rt.Forward && plainHTTP(p) {
		return forward(w, r, p)
	}
	caddyhttp.SetVar(r.Context(), pathVar, p)
	return next.ServeHTTP(w, r)
}

// UnmarshalCaddyfile: `wisehosting_route` takes no arguments, and
// optionally a block with `forward`.
func (rt *Route) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.Err("wisehosting_route takes no arguments")
	}
	for d.NextBlock(0) {
		if d.Val() != "forward" || d.NextArg() {
			return d.Errf("wisehosting_route: unknown option %q (only `forward`)", d.Val())
		}
		rt.Forward = true
	}
	return nil
}

// Upstreams is `http.reverse_proxy.upstreams.wisehosting`: the upstreams of
// the route `wisehosting_route` found (or, without it, of the host's
// longest matching path), ordered by a weighted random draw so that
// `lb_policy first` splits traffic by weight and still fails over.
type Upstreams struct{}

// CaddyModule returns the Caddy module information.
func (*Upstreams) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.reverse_proxy.upstreams.wisehosting", New: func() caddy.Module { return new(Upstreams) }}
}

// ErrNoRoute means the table has nothing for the request.
var ErrNoRoute = errors.New("no route for this host")

// GetUpstreams implements reverseproxy.UpstreamSource. It allocates fresh
// Upstream values per call from the current table.
func (*Upstreams) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	p, _ := caddyhttp.GetVar(r.Context(), pathVar).(*network.PathEntry)
	if p == nil {
		_, p = lookup(r.Host, r.URL.Path)
	}
	if p == nil || len(p.Upstreams) == 0 {
		return nil, ErrNoRoute
	}
	return order(p.Upstreams), nil
}

// order returns ups as Caddy upstreams ordered by a weighted draw.
func order(ups []network.Upstream) []*reverseproxy.Upstream {
	out := make([]*reverseproxy.Upstream, 0, len(ups))
	if len(ups) == 1 {
		return append(out, &reverseproxy.Upstream{Dial: ups[0].Dial})
	}
	// Weighted draw without replacement.
	rest := append([]network.Upstream(nil), ups...)
	for len(rest) > 0 {
		total := 0
		for _, u := range rest {
			total += max(u.Weight, 0)
		}
		i := 0
		if total > 0 {
			n := rand.IntN(total)
			for i = 0; i < len(rest); i++ {
				if n -= max(rest[i].Weight, 0); n < 0 {
					break
				}
			}
		}
		if i >= len(rest) {
			i = len(rest) - 1
		}
		out = append(out, &reverseproxy.Upstream{Dial: rest[i].Dial})
		rest = append(rest[:i], rest[i+1:]...)
	}
	return out
}

// UnmarshalCaddyfile: `dynamic wisehosting` takes no arguments.
func (*Upstreams) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Permission is `tls.permission.wisehosting`: on-demand certificates only
// for hosts in the routing table (apps and verified custom domains), so
// strangers cannot make the proxy request certificates for any name.
type Permission struct{}

// CaddyModule returns the Caddy module information.
func (*Permission) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "tls.permission.wisehosting", New: func() caddy.Module { return new(Permission) }}
}

// CertificateAllowed implements caddytls.OnDemandPermission.
func (*Permission) CertificateAllowed(_ context.Context, name string) error {
	if e, _ := lookup(name, "/"); e != nil {
		return nil
	}
	return fmt.Errorf("%s is not a host of any app", name)
}

// UnmarshalCaddyfile: `permission wisehosting` takes no arguments.
func (*Permission) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler = (*Route)(nil)
	_ reverseproxy.UpstreamSource = (*Upstreams)(nil)
	_ caddytls.OnDemandPermission = (*Permission)(nil)
	_ caddyfile.Unmarshaler       = (*Upstreams)(nil)
	_ caddyfile.Unmarshaler       = (*Permission)(nil)
)
