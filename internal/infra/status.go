package infra

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Result is one check of one host.
type Result struct {
	Host   string `json:"host"`
	Role   string `json:"role"`
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// WorkerState is what the control plane knows of a worker.
type WorkerState struct {
	Status   string
	LastSeen time.Time
}

// Checker runs the status checks.
type Checker struct {
	Config *Config
	// Workers returns the workers by name (from the control plane's
	// database); nil skips the worker checks with a note.
	Workers func(ctx context.Context) (map[string]WorkerState, error)
	// Roots verifies TLS certificates (nil: the system's).
	Roots *x509.CertPool
	// Timeout bounds each check. Default 5s.
	Timeout time.Duration
	// ExpiryWarning flags certificates expiring sooner. Default 14 days.
	ExpiryWarning time.Duration
	Now           func() time.Time
}

// Run checks every host in parallel.
func (c *Checker) Run(ctx context.Context) []Result {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.ExpiryWarning <= 0 {
		c.ExpiryWarning = 14 * 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	var mu sync.Mutex
	var out []Result
	var wg sync.WaitGroup
	add := func(f func(context.Context) []Result) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, c.Timeout)
			defer cancel()
			rs := f(cctx)
			mu.Lock()
			out = append(out, rs...)
			mu.Unlock()
		}()
	}
	for _, h := range c.Config.Hosts {
		switch h.Role {
		case RoleControlPlane:
			add(func(ctx context.Context) []Result { return c.checkControlPlane(ctx, h) })
		case RoleProxy:
			add(func(ctx context.Context) []Result { return c.checkProxy(ctx, h) })
		}
	}
	if len(c.Config.ByRole(RoleWorker)) > 0 {
		add(c.checkWorkers)
	}
	if c.Config.SubdomainBase != "" {
		add(c.checkDNS)
	}
	wg.Wait()
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Check < out[j].Check
	})
	return out
}

func (c *Checker) httpClient() *http.Client {
	return &http.Client{Timeout: c.Timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: c.Roots, MinVersion: tls.VersionTLS12},
		Proxy:           nil,
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (c *Checker) checkControlPlane(ctx context.Context, h Host) []Result {
	base := h.checkURL(c.Config.ControlPlaneURL)
	r := Result{Host: h.Name, Role: h.Role, Check: "health"}
	if base == "" {
		r.Detail = "no url, public_ip or control_plane_url to check"
		return []Result{r}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/health", nil)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		r.Detail = err.Error()
		return []Result{r}
	}
	defer resp.Body.Close()
	var body struct{ Status, Database, Version string }
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	r.OK = resp.StatusCode == 200 && body.Status == "ok"
	r.Detail = fmt.Sprintf("HTTP %d, status %s, database %s, version %s", resp.StatusCode, or(body.Status, "?"), or(body.Database, "?"), or(body.Version, "?"))
	out := []Result{r}
	if strings.HasPrefix(base, "https://") {
		out = append(out, c.checkCert(ctx, h, base))
	}
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (c *Checker) checkProxy(ctx context.Context, h Host) []Result {
	base := h.checkURL("")
	r := Result{Host: h.Name, Role: h.Role, Check: "serving"}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base, nil)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		r.Detail = err.Error()
	} else {
		resp.Body.Close()
		// Any HTTP answer means the proxy is up; 5xx means it cannot
		// reach its backends.
		r.OK = resp.StatusCode < 500
		r.Detail = fmt.Sprintf("HTTP %d from %s", resp.StatusCode, base)
	}
	out := []Result{r}
	if strings.HasPrefix(base, "https://") {
		out = append(out, c.checkCert(ctx, h, base))
	}
	return out
}

// checkCert reads the certificate a host serves and flags a near expiry.
func (c *Checker) checkCert(ctx context.Context, h Host, base string) Result {
	r := Result{Host: h.Name, Role: h.Role, Check: "certificate"}
	u, err := url.Parse(base)
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: c.Roots, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		r.Detail = "no certificate"
		return r
	}
	left := certs[0].NotAfter.Sub(c.Now())
	r.OK = left > c.ExpiryWarning
	r.Detail = fmt.Sprintf("expires %s (in %d days)", certs[0].NotAfter.UTC().Format("2006-01-02"), int(left.Hours()/24))
	return r
}

func (c *Checker) checkWorkers(ctx context.Context) []Result {
	hosts := c.Config.ByRole(RoleWorker)
	if c.Workers == nil {
		var out []Result
		for _, h := range hosts {
			out = append(out, Result{Host: h.Name, Role: h.Role, Check: "connected", Detail: "unknown: no control-plane database (pass --config)"})
		}
		return out
	}
	states, err := c.Workers(ctx)
	var out []Result
	for _, h := range hosts {
		r := Result{Host: h.Name, Role: h.Role, Check: "connected"}
		st, ok := states[h.Name]
		switch {
		case err != nil:
			r.Detail = err.Error()
		case !ok:
			r.Detail = "not registered (wisehosting worker add " + h.Name + ")"
		default:
			r.OK = st.Status == "online"
			r.Detail = st.Status
			if !st.LastSeen.IsZero() {
				r.Detail += fmt.Sprintf(", last seen %s ago", c.Now().Sub(st.LastSeen).Round(time.Second))
			}
		}
		out = append(out, r)
	}
	return out
}

// checkDNS resolves a name under the app zone and expects the proxies'
// public addresses (the wildcard record).
func (c *Checker) checkDNS(ctx context.Context) []Result {
	r := Result{Host: "*." + c.Config.SubdomainBase, Role: "dns", Check: "wildcard record"}
	res := net.DefaultResolver
	if c.Config.DNS.Resolver != "" {
		server := c.Config.DNS.Resolver
		res = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	ips, err := res.LookupHost(ctx, "wisehosting-check."+c.Config.SubdomainBase)
	if err != nil {
		r.Detail = err.Error()
		return []Result{r}
	}
	var want []string
	for _, p := range c.Config.ByRole(RoleProxy) {
		if p.PublicIP != "" {
			want = append(want, p.PublicIP)
		}
	}
	var missing []string
	for _, w := range want {
		if !slices.Contains(ips, w) {
			missing = append(missing, w)
		}
	}
	r.OK = len(missing) == 0
	r.Detail = "resolves to " + strings.Join(ips, ", ")
	if len(missing) > 0 {
		r.Detail += "; missing proxy " + strings.Join(missing, ", ")
	}
	return []Result{r}
}

// Print writes results as a table and reports whether every check passed.
func Print(w io.Writer, results []Result) bool {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tROLE\tCHECK\tSTATUS\tDETAIL")
	all := true
	for _, r := range results {
		st := "ok"
		if !r.OK {
			st, all = "FAIL", false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Host, r.Role, r.Check, st, r.Detail)
	}
	tw.Flush()
	return all
}
