package network

import (
	"encoding/json"
	"sort"
)

// Table is the routing table of the Caddy proxy mode: for each host name,
// the app's paths, longest prefix first, each with its weighted upstreams.
type Table struct {
	Version uint64                `json:"version"`
	Hosts   map[string]*HostEntry `json:"hosts"`
}

// HostEntry routes one host name.
type HostEntry struct {
	App   string      `json:"app"`
	Paths []PathEntry `json:"paths"`
}

// PathEntry routes one path prefix.
type PathEntry struct {
	Prefix      string     `json:"prefix"`
	StripPrefix bool       `json:"strip_prefix,omitempty"`
	Upstreams   []Upstream `json:"upstreams"`
}

// Upstream is one backend with its share of traffic.
type Upstream struct {
	Dial   string `json:"dial"`
	Scheme string `json:"scheme,omitempty"` // http (default), https, h2c
	Weight int    `json:"weight"`
}

// CaddyProxy renders the proxy mode's Table as JSON.
type CaddyProxy struct{}

// BuildTable turns a snapshot into a Table.
func BuildTable(s *Snapshot) *Table {
	t := &Table{Hosts: map[string]*HostEntry{}}
	for i := range s.Apps {
		a := &s.Apps[i]
		e := &HostEntry{App: a.Slug}
		gs := groups(a)
		if len(gs) == 0 {
			p := PathEntry{Prefix: "/"}
			for _, d := range appDials(a) {
				p.Upstreams = append(p.Upstreams, Upstream{Dial: d, Weight: 1})
			}
			e.Paths = []PathEntry{p}
		}
		for _, g := range gs {
			p := PathEntry{Prefix: g.prefix, StripPrefix: g.routes[0].StripPrefix && g.prefix != "/"}
			for _, r := range g.routes {
				sc := scheme(r.Protocol)
				if sc == "http" {
					sc = ""
				}
				// Each instance gets the route's weight: the routes of an app
				// all reach the same instances, so the split between them holds.
				ds := routeDials(a, r)
				for _, d := range ds {
					p.Upstreams = append(p.Upstreams, Upstream{Dial: d, Scheme: sc, Weight: max(r.Weight, 0)})
				}
			}
			e.Paths = append(e.Paths, p)
		}
		// Longest prefix first: the first match wins.
		sort.SliceStable(e.Paths, func(i, j int) bool { return len(e.Paths[i].Prefix) > len(e.Paths[j].Prefix) })
		for _, h := range s.ProxyHosts(a) {
			t.Hosts[h] = e
		}
	}
	return t
}

// Render implements Router.
func (CaddyProxy) Render(s *Snapshot) ([]byte, error) {
	return json.Marshal(BuildTable(s))
}
