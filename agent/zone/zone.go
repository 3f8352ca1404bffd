// Package zone is the worker agent's built-in zone router: it serves
// <slug>.<zone> (and the other host names the control plane lists for the
// worker's apps) on the worker's zone port, to the worker's own
// containers. Its table is the worker's Traefik dynamic configuration, the
// document of /v1/traefik/config?worker_id=N, so a local Traefik and this
// router read the same document. The control plane pushes it over the
// worker's WebSocket after each hello and on every change (HandlePush);
// the router polls that URL with the worker's JWT only while no push has
// arrived on the current connection.
//
// When the control plane cannot be reached the last good table stays in
// use; after a cut-over the supervisor's Redirect moves requests to the
// new container at once, before the polled table shows its port.
package zone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Config configures a Router.
type Config struct {
	// URL is the control plane's base URL.
	URL string
	// WorkerID and Token give the worker's identity (from the transport).
	WorkerID func() int64
	Token    func() string
	// Client fetches the table (the transport's TLS settings).
	Client *http.Client
	// Interval between polls. Default: 2s.
	Interval time.Duration
	// LocalIP is the worker's mesh address; only upstreams on it are
	// served (this router reaches local containers, nothing else).
	LocalIP string
	// Redirect maps a retired host port to its successor (optional).
	Redirect func(port int) int
	Logger   *zap.Logger
}

// Router serves zone traffic.
type Router struct {
	cfg   Config
	table atomic.Pointer[Table]
	proxy *httputil.ReverseProxy
	polls atomic.Int64

	mu       sync.Mutex
	etag     string
	pushes   int64           // tables pushed so far
	pushConn context.Context // the connection the last push came on
}

// New makes a Router with an empty table.
func New(cfg Config) *Router {
	if cfg.Interval == 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	r := &Router{cfg: cfg}
	r.table.Store(&Table{})
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     60 * time.Second,
	}
	r.proxy = &httputil.ReverseProxy{
		Transport: tr,
		Rewrite:   func(*httputil.ProxyRequest) {}, // set per request in ServeHTTP
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			r.cfg.Logger.Debug("zone: upstream error", zap.String("host", req.Host), zap.Error(err))
			http.Error(w, "the app is not reachable right now", http.StatusBadGateway)
		},
	}
	return r
}

// SetTable installs a table (tests; Run installs polled ones).
func (r *Router) SetTable(t *Table) { r.table.Store(t) }

// Table returns the table in use.
func (r *Router) Table() *Table { return r.table.Load() }

// Polls counts successful polls.
func (r *Router) Polls() int64 { return r.polls.Load() }

// Pushes counts tables received over the WebSocket.
func (r *Router) Pushes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pushes
}

// HandlePush installs a table the control plane pushed (a transport
// handler: ctx lives as long as the connection it came on).
func (r *Router) HandlePush(ctx context.Context, p json.RawMessage) error {
	var zt wsproto.ZoneTable
	if err := json.Unmarshal(p, &zt); err != nil {
		return fmt.Errorf("decoding zone table: %w", err)
	}
	t, err := ParseTraefik(zt.Doc)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.table.Store(t)
	r.etag, r.pushConn = zt.ETag, ctx
	r.pushes++
	r.mu.Unlock()
	return nil
}

// pushed reports whether tables arrive by push: one came on a connection
// that is still up.
func (r *Router) pushed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pushConn != nil && r.pushConn.Err() == nil
}

// Run polls the control plane every Interval while no pushed table keeps
// the router current, until ctx ends.
func (r *Router) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if r.pushed() {
			// Current by push.
		} else if err := r.Poll(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Debug("zone: keeping the last table", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll fetches the table once.
func (r *Router) Poll(ctx context.Context) error {
	id := r.cfg.WorkerID()
	if id == 0 {
		return errors.New("not registered yet")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(r.cfg.URL, "/")+"/v1/traefik/config?worker_id="+strconv.FormatInt(id, 10), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.Token())
	r.mu.Lock()
	etag, pushes := r.etag, r.pushes
	r.mu.Unlock()
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		r.polls.Add(1)
		return nil
	case http.StatusOK:
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("zone config: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	t, err := ParseTraefik(body)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.polls.Add(1)
	if r.pushes != pushes {
		return nil // a push came while polling: it is at least as new
	}
	r.table.Store(t)
	r.etag = resp.Header.Get("ETag")
	return nil
}

// Table is a routing table: host → routes, longest prefix first.
type Table struct {
	hosts map[string][]*Route
}

// Route is one router of the configuration.
type Route struct {
	Prefix  string
	Strip   bool
	Targets []Target
	total   int
}

// Target is one upstream with its weight.
type Target struct {
	URL    *url.URL
	Weight int
}

// Lookup finds the route for a host and path.
func (t *Table) Lookup(host, path string) *Route {
	if t == nil || t.hosts == nil {
		return nil
	}
	for _, r := range t.hosts[normalizeHost(host)] {
		if r.Prefix == "/" || path == r.Prefix || strings.HasPrefix(path, strings.TrimSuffix(r.Prefix, "/")+"/") {
			return r
		}
	}
	return nil
}

// Hosts lists the host names in the table.
func (t *Table) Hosts() []string {
	var out []string
	for h := range t.hosts {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

func normalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func (r *Route) pick() Target {
	if len(r.Targets) == 1 || r.total <= 0 {
		return r.Targets[0]
	}
	n := rand.IntN(r.total)
	for _, t := range r.Targets {
		if n < t.Weight {
			return t
		}
		n -= t.Weight
	}
	return r.Targets[len(r.Targets)-1]
}

// ServeHTTP routes one request.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rt := r.table.Load().Lookup(req.Host, req.URL.Path)
	if rt == nil {
		http.Error(w, "no app answers on "+normalizeHost(req.Host)+" here", http.StatusNotFound)
		return
	}
	t := rt.pick()
	target := *t.URL
	host, port, err := net.SplitHostPort(target.Host)
	if err != nil || (r.cfg.LocalIP != "" && host != r.cfg.LocalIP) {
		http.Error(w, "upstream is not on this worker", http.StatusBadGateway)
		return
	}
	if r.cfg.Redirect != nil {
		if p, err := strconv.Atoi(port); err == nil {
			target.Host = net.JoinHostPort(host, strconv.Itoa(r.cfg.Redirect(p)))
		}
	}
	prefix, strip := rt.Prefix, rt.Strip
	proxy := *r.proxy
	proxy.Rewrite = func(pr *httputil.ProxyRequest) {
		if strip && prefix != "/" {
			p := strings.TrimPrefix(pr.Out.URL.Path, strings.TrimSuffix(prefix, "/"))
			if !strings.HasPrefix(p, "/") {
				p = "/" + p
			}
			pr.Out.URL.Path, pr.Out.URL.RawPath = p, ""
		}
		pr.SetURL(&target)
		pr.Out.Host = pr.In.Host // apps see the name they were asked for
		pr.SetXForwarded()
	}
	proxy.ServeHTTP(w, req)
}

// The subset of Traefik's dynamic configuration the control plane renders.
type tfConfig struct {
	HTTP struct {
		Routers map[string]struct {
			Rule        string   `json:"rule"`
			Service     string   `json:"service"`
			Middlewares []string `json:"middlewares"`
		} `json:"routers"`
		Services map[string]struct {
			LoadBalancer *struct {
				Servers []struct {
					URL string `json:"url"`
				} `json:"servers"`
			} `json:"loadBalancer"`
			Weighted *struct {
				Services []struct {
					Name   string `json:"name"`
					Weight int    `json:"weight"`
				} `json:"services"`
			} `json:"weighted"`
		} `json:"services"`
		Middlewares map[string]struct {
			StripPrefix *struct {
				Prefixes []string `json:"prefixes"`
			} `json:"stripPrefix"`
		} `json:"middlewares"`
	} `json:"http"`
}

var (
	hostRe   = regexp.MustCompile("Host\\(`([^`]{1,253})`\\)")
	prefixRe = regexp.MustCompile("PathPrefix\\(`(/[^`]{0,1000})`\\)")
)

// ParseTraefik turns a Traefik dynamic configuration (as the control plane
// renders it) into a Table. Routers whose service cannot be resolved to
// http upstreams are skipped.
func ParseTraefik(b []byte) (*Table, error) {
	var cfg tfConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("zone config: %w", err)
	}
	t := &Table{hosts: map[string][]*Route{}}
	resolve := func(name string) []Target {
		svc, ok := cfg.HTTP.Services[name]
		if !ok {
			return nil
		}
		var out []Target
		add := func(raw string, w int) {
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "http" || u.Host == "" || w <= 0 {
				return
			}
			out = append(out, Target{URL: u, Weight: w})
		}
		switch {
		case svc.LoadBalancer != nil:
			for _, s := range svc.LoadBalancer.Servers {
				add(s.URL, 1)
			}
		case svc.Weighted != nil:
			for _, ref := range svc.Weighted.Services {
				child, ok := cfg.HTTP.Services[ref.Name]
				if !ok || child.LoadBalancer == nil || ref.Weight <= 0 {
					continue
				}
				for _, s := range child.LoadBalancer.Servers {
					add(s.URL, ref.Weight)
				}
			}
		}
		return out
	}
	names := make([]string, 0, len(cfg.HTTP.Routers))
	for n := range cfg.HTTP.Routers {
		names = append(names, n)
	}
	sort.Strings(names) // deterministic table for equal documents
	for _, n := range names {
		rt := cfg.HTTP.Routers[n]
		hosts := hostRe.FindAllStringSubmatch(rt.Rule, -1)
		if len(hosts) == 0 {
			continue
		}
		route := &Route{Prefix: "/"}
		if m := prefixRe.FindStringSubmatch(rt.Rule); m != nil {
			// (Path(`/api`) || PathPrefix(`/api/`)) is the prefix /api.
			route.Prefix = m[1]
			if len(route.Prefix) > 1 && strings.Contains(rt.Rule, "Path(") {
				route.Prefix = strings.TrimSuffix(route.Prefix, "/")
			}
		}
		for _, mw := range rt.Middlewares {
			if m, ok := cfg.HTTP.Middlewares[mw]; ok && m.StripPrefix != nil {
				route.Strip = true
			}
		}
		route.Targets = resolve(rt.Service)
		if len(route.Targets) == 0 {
			continue
		}
		for _, tg := range route.Targets {
			route.total += tg.Weight
		}
		for _, h := range hosts {
			host := normalizeHost(h[1])
			t.hosts[host] = append(t.hosts[host], route)
		}
	}
	for h, rs := range t.hosts {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].Prefix) > len(rs[j].Prefix) })
		t.hosts[h] = rs
	}
	return t, nil
}
