package infra

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// LoadBalancer is infra.yaml's Hetzner Cloud load balancer in front of
// the proxies: TCP services passed through to them (TLS stays on the
// proxies), targets found by label.
type LoadBalancer struct {
	Name     string `yaml:"name"`
	Type     string `yaml:"type,omitempty"`     // lb11 (default)
	Location string `yaml:"location,omitempty"` // fsn1 (default)
	// Algorithm is round_robin (default) or least_connections.
	Algorithm string `yaml:"algorithm,omitempty"`
	// Ports passed through over TCP (default 80 and 443), each health
	// checked over TCP.
	Ports []int `yaml:"ports,omitempty"`
	// Targets selects the servers by label (default role=proxy).
	Targets string `yaml:"targets,omitempty"`
}

// hcloud is the Hetzner Cloud API on the shared retrying client.
func (h *Hetzner) hcloud(opts ...httpx.Option) (*httpx.APIClient, error) {
	tok, err := os.ReadFile(h.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading hetzner token: %w", err)
	}
	base := cmp.Or(h.APIURL, "https://api.hetzner.cloud/v1")
	return httpx.New(append([]httpx.Option{httpx.WithPrefix(base), httpx.WithBearer(strings.TrimSpace(string(tok)))}, opts...)...), nil
}

// LBState is a load balancer as the API reports it.
type LBState struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	PublicNet struct {
		IPv4 struct {
			IP string `json:"ip"`
		} `json:"ipv4"`
	} `json:"public_net"`
	Algorithm struct {
		Type string `json:"type"`
	} `json:"algorithm"`
	Services []struct {
		Protocol        string `json:"protocol"`
		ListenPort      int    `json:"listen_port"`
		DestinationPort int    `json:"destination_port"`
	} `json:"services"`
	Targets []struct {
		Type          string `json:"type"`
		LabelSelector *struct {
			Selector string `json:"selector"`
		} `json:"label_selector,omitempty"`
		Server *struct {
			ID int64 `json:"id"`
		} `json:"server,omitempty"`
		HealthStatus []lbHealth `json:"health_status,omitempty"`
		Targets      []struct {
			Server struct {
				ID int64 `json:"id"`
			} `json:"server"`
			HealthStatus []lbHealth `json:"health_status"`
		} `json:"targets,omitempty"`
	} `json:"targets"`
}

type lbHealth struct {
	ListenPort int    `json:"listen_port"`
	Status     string `json:"status"`
}

// FindLoadBalancer returns the load balancer called name, or nil.
func (h *Hetzner) FindLoadBalancer(ctx context.Context, name string, opts ...httpx.Option) (*LBState, error) {
	c, err := h.hcloud(opts...)
	if err != nil {
		return nil, err
	}
	var resp struct {
		LoadBalancers []LBState `json:"load_balancers"`
	}
	if err := c.Do(ctx, http.MethodGet, "/load_balancers?"+url.Values{"name": {name}}.Encode(), nil, &resp); err != nil {
		return nil, fmt.Errorf("finding load balancer %s: %w", name, err)
	}
	for i := range resp.LoadBalancers {
		if resp.LoadBalancers[i].Name == name {
			return &resp.LoadBalancers[i], nil
		}
	}
	return nil, nil
}

// EnsureLoadBalancer creates lb unless one of its name exists (it is then
// left as it is) and returns it with whether it was created.
func (h *Hetzner) EnsureLoadBalancer(ctx context.Context, lb LoadBalancer, opts ...httpx.Option) (*LBState, bool, error) {
	if have, err := h.FindLoadBalancer(ctx, lb.Name, opts...); err != nil || have != nil {
		return have, false, err
	}
	c, err := h.hcloud(opts...)
	if err != nil {
		return nil, false, err
	}
	type check struct {
		Protocol string `json:"protocol"`
		Port     int    `json:"port"`
		Interval int    `json:"interval"`
		Timeout  int    `json:"timeout"`
		Retries  int    `json:"retries"`
	}
	type service struct {
		Protocol        string `json:"protocol"`
		ListenPort      int    `json:"listen_port"`
		DestinationPort int    `json:"destination_port"`
		Proxyprotocol   bool   `json:"proxyprotocol"`
		HealthCheck     check  `json:"health_check"`
	}
	var services []service
	ports := lb.Ports
	if len(ports) == 0 {
		ports = []int{80, 443}
	}
	for _, p := range ports {
		services = append(services, service{Protocol: "tcp", ListenPort: p, DestinationPort: p,
			HealthCheck: check{Protocol: "tcp", Port: p, Interval: 15, Timeout: 10, Retries: 3}})
	}
	req := map[string]any{
		"name":               lb.Name,
		"load_balancer_type": cmp.Or(lb.Type, "lb11"),
		"location":           cmp.Or(lb.Location, "fsn1"),
		"algorithm":          map[string]string{"type": cmp.Or(lb.Algorithm, "round_robin")},
		"services":           services,
		"targets": []any{map[string]any{"type": "label_selector",
			"label_selector": map[string]string{"selector": cmp.Or(lb.Targets, "role=proxy")}}},
		"labels":           map[string]string{"managed-by": "wisehosting"},
		"public_interface": true,
	}
	var resp struct {
		LoadBalancer LBState `json:"load_balancer"`
	}
	if err := c.Do(ctx, http.MethodPost, "/load_balancers", req, &resp); err != nil {
		return nil, false, fmt.Errorf("creating load balancer %s: %w", lb.Name, err)
	}
	return &resp.LoadBalancer, true, nil
}

// PrintLoadBalancer writes the load balancer's address, services and the
// health of each target per port.
func PrintLoadBalancer(w io.Writer, lb *LBState) {
	fmt.Fprintf(w, "%s (id %d) %s, %s\n", lb.Name, lb.ID, lb.PublicNet.IPv4.IP, lb.Algorithm.Type)
	for _, s := range lb.Services {
		fmt.Fprintf(w, "  %s %d → %d\n", s.Protocol, s.ListenPort, s.DestinationPort)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TARGET\tPORT\tHEALTH")
	row := func(name string, hs []lbHealth) {
		for _, h := range hs {
			fmt.Fprintf(tw, "  %s\t%d\t%s\n", name, h.ListenPort, h.Status)
		}
	}
	for _, t := range lb.Targets {
		switch {
		case t.Server != nil:
			row(fmt.Sprintf("server %d", t.Server.ID), t.HealthStatus)
		case t.LabelSelector != nil:
			for _, s := range t.Targets {
				row(fmt.Sprintf("server %d (%s)", s.Server.ID, t.LabelSelector.Selector), s.HealthStatus)
			}
		}
	}
	tw.Flush()
}

// Snapshot is a server image being created.
type Snapshot struct {
	ID          int64  `json:"id"`
	Description string `json:"description"`
	Status      string `json:"status"`
}

// CreateSnapshot starts a snapshot of the Cloud server called name.
func (h *Hetzner) CreateSnapshot(ctx context.Context, name, description string, opts ...httpx.Option) (*Snapshot, error) {
	c, err := h.hcloud(opts...)
	if err != nil {
		return nil, err
	}
	var list struct {
		Servers []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"servers"`
	}
	if err := c.Do(ctx, http.MethodGet, "/servers?"+url.Values{"name": {name}}.Encode(), nil, &list); err != nil {
		return nil, fmt.Errorf("finding server %s: %w", name, err)
	}
	var id int64
	for _, s := range list.Servers {
		if s.Name == name {
			id = s.ID
		}
	}
	if id == 0 {
		return nil, fmt.Errorf("no Hetzner Cloud server named %s", name)
	}
	var resp struct {
		Image Snapshot `json:"image"`
	}
	body := map[string]any{"type": "snapshot", "description": description, "labels": map[string]string{"managed-by": "wisehosting"}}
	if err := c.Do(ctx, http.MethodPost, fmt.Sprintf("/servers/%d/actions/create_image", id), body, &resp); err != nil {
		return nil, fmt.Errorf("snapshotting %s: %w", name, err)
	}
	return &resp.Image, nil
}
