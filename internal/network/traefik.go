package network

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Router renders a Snapshot as one proxy's configuration document.
type Router interface {
	Render(s *Snapshot) ([]byte, error)
}

// Traefik renders Traefik dynamic configuration (the HTTP provider's JSON).
type Traefik struct {
	// EntryPoints the routers attach to (e.g. websecure; web on workers).
	EntryPoints []string
	// CertResolver, when set, asks Traefik for certificates of each
	// router's hosts (ACME).
	CertResolver string
	// ZoneHosts adds <slug>.<worker zone> to the hosts (a worker's zone
	// router: those names resolve to the worker). Otherwise only names
	// that resolve to the proxies are routed (Snapshot.ProxyHosts).
	ZoneHosts bool
}

// Key names the document rendered with these options (the provider's
// cache key): handlers configured differently get their own.
func (t Traefik) Key(doc string) string {
	return fmt.Sprintf("%s|%s|%s|%t", doc, strings.Join(t.EntryPoints, ","), t.CertResolver, t.ZoneHosts)
}

type tfConfig struct {
	HTTP tfHTTP `json:"http"`
}

type tfHTTP struct {
	Routers     map[string]tfRouter     `json:"routers"`
	Services    map[string]tfService    `json:"services"`
	Middlewares map[string]tfMiddleware `json:"middlewares,omitempty"`
}

type tfRouter struct {
	Rule        string   `json:"rule"`
	Service     string   `json:"service"`
	EntryPoints []string `json:"entryPoints,omitempty"`
	Middlewares []string `json:"middlewares,omitempty"`
	Priority    int      `json:"priority,omitempty"`
	TLS         *tfTLS   `json:"tls,omitempty"`
}

type tfTLS struct {
	CertResolver string `json:"certResolver,omitempty"`
}

type tfService struct {
	LoadBalancer *tfLB       `json:"loadBalancer,omitempty"`
	Weighted     *tfWeighted `json:"weighted,omitempty"`
}

type tfLB struct {
	Servers []tfServer `json:"servers"`
}

type tfServer struct {
	URL string `json:"url"`
}

type tfWeighted struct {
	Services []tfWeightedRef `json:"services"`
}

type tfWeightedRef struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
}

type tfMiddleware struct {
	StripPrefix *tfStrip `json:"stripPrefix,omitempty"`
}

type tfStrip struct {
	Prefixes []string `json:"prefixes"`
}

func hostRule(hosts []string) string {
	parts := make([]string, len(hosts))
	for i, h := range hosts {
		parts[i] = "Host(" + ruleArg(h) + ")"
	}
	return strings.Join(parts, " || ")
}

func scheme(protocol string) string {
	switch protocol {
	case "https":
		return "https"
	case "h2c":
		return "h2c"
	}
	return "http"
}

// PrefixRule is the Traefik matcher of a path prefix with the meaning every
// router of the platform gives it: the path itself and what lies below it
// on a segment boundary (/api matches /api, /api/ and /api/x, never /apix),
// like the proxy mode and the agent's zone router.
// A stored prefix ending in / (written before prefixes were checked) keeps
// its literal meaning: below it only.
func PrefixRule(prefix string) string {
	if strings.HasSuffix(prefix, "/") {
		return "PathPrefix(" + ruleArg(prefix) + ")"
	}
	return "(Path(" + ruleArg(prefix) + ") || PathPrefix(" + ruleArg(prefix+"/") + "))"
}

// prefixGroup is the routes of one app sharing a path prefix.
type prefixGroup struct {
	prefix string
	routes []Route
}

// groups are the HTTP routes of an app by path prefix. A route whose
// prefix is not a valid URL path (a row written around the checks where
// routes enter) is left out.
func groups(a *App) []prefixGroup {
	var out []prefixGroup
	for _, r := range a.Routes {
		if r.Protocol == "tcp" || CheckPathPrefix(r.PathPrefix) != nil {
			continue // TCP routes are not HTTP routers
		}
		if n := len(out); n > 0 && out[n-1].prefix == r.PathPrefix {
			out[n-1].routes = append(out[n-1].routes, r)
			continue
		}
		out = append(out, prefixGroup{prefix: r.PathPrefix, routes: []Route{r}})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].prefix < out[j].prefix })
	return out
}

// routeDials are where a route's traffic goes, one address per instance:
// the app's port is reached at each instance's published address; another
// port (routes written before ports were checked) on each instance's
// worker's mesh address as is.
func routeDials(a *App, r Route) []string {
	ins := a.instances()
	out := make([]string, 0, len(ins))
	for _, in := range ins {
		if a.Port != 0 && r.Port == a.Port {
			out = append(out, hostPort(in.IP, in.HostPort))
		} else {
			out = append(out, hostPort(in.IP, r.Port))
		}
	}
	return out
}

// appDials are the addresses of every instance of the app.
func appDials(a *App) []string {
	ins := a.instances()
	out := make([]string, 0, len(ins))
	for _, in := range ins {
		out = append(out, hostPort(in.IP, in.HostPort))
	}
	return out
}

// servers is a load balancer's server list: one per address.
func servers(scheme string, dials []string) []tfServer {
	out := make([]tfServer, len(dials))
	for i, d := range dials {
		out[i] = tfServer{URL: scheme + "://" + d}
	}
	return out
}

// Render implements Router. Map keys are sorted by encoding/json, so equal
// snapshots give equal bytes.
func (t Traefik) Render(s *Snapshot) ([]byte, error) {
	cfg := tfConfig{HTTP: tfHTTP{Routers: map[string]tfRouter{}, Services: map[string]tfService{}, Middlewares: map[string]tfMiddleware{}}}
	var tls *tfTLS
	if t.CertResolver != "" {
		tls = &tfTLS{CertResolver: t.CertResolver}
	}
	for i := range s.Apps {
		a := &s.Apps[i]
		hosts := s.ProxyHosts(a)
		if t.ZoneHosts {
			hosts = s.Hosts(a)
		}
		if len(hosts) == 0 {
			continue
		}
		name := "app-" + a.Slug
		gs := groups(a)
		if len(gs) == 0 {
			cfg.HTTP.Routers[name] = tfRouter{Rule: hostRule(hosts), Service: name, EntryPoints: t.EntryPoints, TLS: tls}
			cfg.HTTP.Services[name] = tfService{LoadBalancer: &tfLB{Servers: servers("http", appDials(a))}}
			continue
		}
		for gi, g := range gs {
			rname := fmt.Sprintf("%s-p%d", name, gi)
			rule := hostRule(hosts)
			if g.prefix != "/" {
				rule = "(" + rule + ") && " + PrefixRule(g.prefix)
			}
			r := tfRouter{Rule: rule, Service: rname, EntryPoints: t.EntryPoints, TLS: tls, Priority: 100 + len(g.prefix)}
			if g.routes[0].StripPrefix && g.prefix != "/" {
				mw := rname + "-strip"
				cfg.HTTP.Middlewares[mw] = tfMiddleware{StripPrefix: &tfStrip{Prefixes: []string{g.prefix}}}
				r.Middlewares = []string{mw}
			}
			cfg.HTTP.Routers[rname] = r
			if len(g.routes) == 1 {
				rt := g.routes[0]
				cfg.HTTP.Services[rname] = tfService{LoadBalancer: &tfLB{Servers: servers(scheme(rt.Protocol), routeDials(a, rt))}}
				continue
			}
			// Traffic splitting: a weighted service over one service per
			// route (e.g. two deployments of the app).
			var refs []tfWeightedRef
			for ri, rt := range g.routes {
				child := fmt.Sprintf("%s-w%d", rname, ri)
				cfg.HTTP.Services[child] = tfService{LoadBalancer: &tfLB{Servers: servers(scheme(rt.Protocol), routeDials(a, rt))}}
				refs = append(refs, tfWeightedRef{Name: child, Weight: rt.Weight})
			}
			cfg.HTTP.Services[rname] = tfService{Weighted: &tfWeighted{Services: refs}}
		}
	}
	if len(cfg.HTTP.Middlewares) == 0 {
		cfg.HTTP.Middlewares = nil
	}
	return json.Marshal(cfg)
}
