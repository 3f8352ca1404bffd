package network

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// NotifyChannel carries "routing changed" between replicas.
const NotifyChannel = "wisehosting_routes"

// Execer is satisfied by pgx.Tx and *pgxpool.Pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// NotifyChanged tells every replica (on commit, when q is a transaction)
// that routing changed.
func NotifyChanged(ctx context.Context, q Execer) error {
	_, err := q.Exec(ctx, "SELECT pg_notify($1, '')", NotifyChannel)
	return err
}

// Route is one path of an app: traffic for PathPrefix goes to Port of the
// app (the app's port is published on its worker at the app's host port);
// routes of the same prefix split traffic by Weight.
type Route struct {
	PathPrefix  string
	Port        int
	Protocol    string
	Weight      int
	StripPrefix bool
}

// App is a routable app.
type App struct {
	ID       int64
	Slug     string
	WorkerID int64  // the worker of the first listed instance
	Zone     string // that worker's zone ("" when none)
	Upstream string // the first instance: host:port on its worker's mesh address
	Port     int    // the port the app listens on (Upstream's port publishes it)
	// Instances are every healthy instance traffic goes to, in slot
	// order (Upstream is the first).
	Instances []Instance
	Domains   []string
	Routes    []Route
}

// Instance is one healthy instance of an app: its worker and the address
// that publishes the app's port there.
type Instance struct {
	WorkerID int64
	Zone     string
	IP       string // the worker's mesh address
	HostPort int
}

// Query is satisfied by pgx.Tx and *pgxpool.Pool.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Snapshot is every routable app, sorted by slug: the input of every
// document, so equal state gives byte-identical output.
type Snapshot struct {
	SubdomainBase string
	Apps          []App
}

// Load reads the routable apps (with a port and at least one running
// instance on a worker with a mesh address) with their routes and
// verified domains: three queries, however many apps there are. An
// app's instances are its healthy ones on reachable (online or draining)
// workers; when there are none, its healthy ones wherever they are, and
// then the ones failing their health check (the control plane's view may
// lag; serving beats a 502).
func Load(ctx context.Context, q Querier, subdomainBase string) (*Snapshot, error) {
	rows, err := q.Query(ctx, `SELECT a.id, a.slug, a.worker_id, w.zone, host(w.wg_ip),
			CASE WHEN a.host_port > 0 THEN a.host_port ELSE a.port END, a.port, 0 AS slot, w.status IN ('online', 'draining'),
			a.unhealthy_since IS NULL
		FROM apps a JOIN workers w ON w.id = a.worker_id
		WHERE a.status = 'running' AND a.port > 0 AND w.wg_ip IS NOT NULL
		UNION ALL
		SELECT a.id, a.slug, i.worker_id, w.zone, host(w.wg_ip),
			CASE WHEN i.host_port > 0 THEN i.host_port ELSE a.port END, a.port, i.slot, w.status IN ('online', 'draining'),
			i.status = 'running'
		FROM app_instances i JOIN apps a ON a.id = i.app_id JOIN workers w ON w.id = i.worker_id
		WHERE i.status IN ('running', 'unhealthy') AND i.slot < a.replicas AND a.status IN ('running', 'crashed') AND a.port > 0
			AND w.wg_ip IS NOT NULL
		ORDER BY 2, 8`)
	if err != nil {
		return nil, fmt.Errorf("loading routable apps: %w", err)
	}
	s := &Snapshot{SubdomainBase: subdomainBase}
	idx := map[int64]int{}
	type candidate struct {
		Instance
		reachable, healthy bool
	}
	var cands [][]candidate
	for rows.Next() {
		var a App
		var c candidate
		var slot int
		if err := rows.Scan(&a.ID, &a.Slug, &c.WorkerID, &c.Zone, &c.IP, &c.HostPort, &a.Port, &slot, &c.reachable, &c.healthy); err != nil {
			rows.Close()
			return nil, err
		}
		i, ok := idx[a.ID]
		if !ok {
			i = len(s.Apps)
			idx[a.ID] = i
			s.Apps = append(s.Apps, a)
			cands = append(cands, nil)
		}
		cands[i] = append(cands[i], c)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(s.Apps) == 0 {
		return s, err
	}
	for i := range s.Apps {
		a := &s.Apps[i]
		// The best tier that has an instance: healthy on a reachable
		// worker, healthy anywhere, then whatever runs.
		for _, keep := range []func(c candidate) bool{
			func(c candidate) bool { return c.healthy && c.reachable },
			func(c candidate) bool { return c.healthy },
			func(c candidate) bool { return true },
		} {
			for _, c := range cands[i] {
				if keep(c) {
					a.Instances = append(a.Instances, c.Instance)
				}
			}
			if len(a.Instances) > 0 {
				break
			}
		}
		first := a.Instances[0]
		a.WorkerID, a.Zone, a.Upstream = first.WorkerID, first.Zone, hostPort(first.IP, first.HostPort)
	}
	rows, err = q.Query(ctx, `SELECT d.app_id, lower(d.hostname) FROM domains d JOIN apps a ON a.id = d.app_id
		WHERE d.verified_at IS NOT NULL AND a.status IN ('running', 'crashed') ORDER BY 2`)
	if err != nil {
		return nil, fmt.Errorf("loading domains: %w", err)
	}
	for rows.Next() {
		var id int64
		var host string
		if err := rows.Scan(&id, &host); err != nil {
			rows.Close()
			return nil, err
		}
		if i, ok := idx[id]; ok {
			s.Apps[i].Domains = append(s.Apps[i].Domains, host)
		}
	}
	rows.Close()
	rows, err = q.Query(ctx, `SELECT r.app_id, r.path_prefix, r.port, r.protocol, r.weight, r.strip_prefix
		FROM routes r JOIN apps a ON a.id = r.app_id WHERE a.status IN ('running', 'crashed') ORDER BY r.app_id, r.path_prefix, r.id`)
	if err != nil {
		return nil, fmt.Errorf("loading routes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var r Route
		if err := rows.Scan(&id, &r.PathPrefix, &r.Port, &r.Protocol, &r.Weight, &r.StripPrefix); err != nil {
			return nil, err
		}
		if i, ok := idx[id]; ok {
			s.Apps[i].Routes = append(s.Apps[i].Routes, r)
		}
	}
	return s, rows.Err()
}

func hostPort(ip string, port int) string {
	if len(ip) > 0 && ip[0] != '[' && containsColon(ip) {
		return "[" + ip + "]:" + strconv.Itoa(port)
	}
	return ip + ":" + strconv.Itoa(port)
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// Hosts returns the host names an app answers on: <slug>.<subdomain_base>,
// <slug>.<worker zone> and its verified domains, sorted and unique. Every
// part was validated where it entered the system; a name that still is not
// a valid host name (a row written around those checks) is left out, so it
// never reaches a rule.
func (s *Snapshot) Hosts(a *App) []string { return s.hosts(a, true) }

// ProxyHosts returns the names that resolve to the proxies:
// <slug>.<subdomain_base> and the verified domains. <slug>.<zone> resolves
// to the worker, so a proxy that asked a CA for it would fail the HTTP-01
// challenge, and with it the certificate of every name of the router.
func (s *Snapshot) ProxyHosts(a *App) []string { return s.hosts(a, false) }

func (s *Snapshot) hosts(a *App, zone bool) []string {
	if strings.Contains(a.Slug, ".") || CheckHostname(a.Slug) != nil {
		return nil // not one DNS label: no host, no router named after it
	}
	set := map[string]bool{}
	if s.SubdomainBase != "" {
		set[a.Slug+"."+s.SubdomainBase] = true
	}
	if zone && a.Zone != "" {
		set[a.Slug+"."+a.Zone] = true
	}
	for _, d := range a.Domains {
		set[d] = true
	}
	out := make([]string, 0, len(set))
	for h := range set {
		if CheckHostname(h) == nil {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}

// ForWorker keeps the apps with an instance on one worker, each with
// only its instances there (a worker's zone router reaches its own
// containers).
func (s *Snapshot) ForWorker(id int64) *Snapshot {
	out := &Snapshot{SubdomainBase: s.SubdomainBase}
	for _, a := range s.Apps {
		var mine []Instance
		for _, in := range a.instances() {
			if in.WorkerID == id {
				mine = append(mine, in)
			}
		}
		if len(mine) == 0 {
			continue
		}
		a.Instances = mine
		a.WorkerID, a.Zone, a.Upstream = id, mine[0].Zone, hostPort(mine[0].IP, mine[0].HostPort)
		out.Apps = append(out.Apps, a)
	}
	return out
}

// instances are the app's instances; an App built without any (tests,
// older callers) has one, at Upstream.
func (a *App) instances() []Instance {
	if len(a.Instances) > 0 {
		return a.Instances
	}
	host, port := a.Upstream, 0
	if i := strings.LastIndex(a.Upstream, ":"); i >= 0 {
		host = strings.Trim(a.Upstream[:i], "[]")
		port, _ = strconv.Atoi(a.Upstream[i+1:])
	}
	return []Instance{{WorkerID: a.WorkerID, Zone: a.Zone, IP: host, HostPort: port}}
}
