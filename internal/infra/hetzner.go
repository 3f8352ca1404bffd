package infra

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// HetznerServer is a server found through the Hetzner Cloud API.
type HetznerServer struct {
	Name     string
	PublicIP string
	Role     string // from the server's "role" label
}

// DiscoverHetzner lists the Cloud servers matching the label selector,
// with their role label, so infra.yaml need not repeat them.
func DiscoverHetzner(ctx context.Context, h *Hetzner, opts ...httpx.Option) ([]HetznerServer, error) {
	var out []HetznerServer
	if h.TokenFile != "" {
		cloud, err := discoverCloud(ctx, h, opts...)
		if err != nil {
			return nil, err
		}
		out = append(out, cloud...)
	}
	if h.RobotUserFile != "" {
		robot, err := discoverRobot(ctx, h, opts...)
		if err != nil {
			return nil, err
		}
		out = append(out, robot...)
	}
	return out, nil
}

// robot is the Robot web service (dedicated servers, HTTP basic auth) on
// the shared retrying client.
func (h *Hetzner) robot(opts ...httpx.Option) (*httpx.APIClient, error) {
	user, err := os.ReadFile(h.RobotUserFile)
	if err != nil {
		return nil, fmt.Errorf("reading hetzner robot user: %w", err)
	}
	pass, err := os.ReadFile(h.RobotPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("reading hetzner robot password: %w", err)
	}
	base := h.RobotAPIURL
	if base == "" {
		base = "https://robot-ws.your-server.de"
	}
	u, p := strings.TrimSpace(string(user)), strings.TrimSpace(string(pass))
	return httpx.New(append([]httpx.Option{httpx.WithPrefix(base), httpx.WithAuth(func(r *http.Request) error {
		r.SetBasicAuth(u, p)
		return nil
	})}, opts...)...), nil
}

// RobotServer is a dedicated server as the Robot web service describes it.
type RobotServer struct {
	ServerIP     string `json:"server_ip"`
	ServerNumber int64  `json:"server_number"`
	ServerName   string `json:"server_name"`
	Product      string `json:"product"`
	DC           string `json:"dc"`
	Status       string `json:"status"`
	Cancelled    bool   `json:"cancelled"`
}

// GetRobotServer returns the dedicated server with the main address ip
// (GET /server/<ip>; the answer is wrapped in {"server": …}).
func (h *Hetzner) GetRobotServer(ctx context.Context, ip string, opts ...httpx.Option) (*RobotServer, error) {
	c, err := h.robot(opts...)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Server RobotServer `json:"server"`
	}
	if err := c.Do(ctx, http.MethodGet, "/server/"+url.PathEscape(ip), nil, &resp); err != nil {
		return nil, fmt.Errorf("getting hetzner robot server %s: %w", ip, err)
	}
	return &resp.Server, nil
}

// discoverRobot lists dedicated servers (GET /server).
func discoverRobot(ctx context.Context, h *Hetzner, opts ...httpx.Option) ([]HetznerServer, error) {
	c, err := h.robot(opts...)
	if err != nil {
		return nil, err
	}
	var resp []struct {
		Server struct {
			ServerIP   string `json:"server_ip"`
			ServerName string `json:"server_name"`
		} `json:"server"`
	}
	if err := c.Do(ctx, "GET", "/server", nil, &resp); err != nil {
		return nil, fmt.Errorf("listing hetzner robot servers: %w", err)
	}
	var out []HetznerServer
	for _, s := range resp {
		out = append(out, HetznerServer{Name: s.Server.ServerName, PublicIP: s.Server.ServerIP})
	}
	return out, nil
}

func discoverCloud(ctx context.Context, h *Hetzner, opts ...httpx.Option) ([]HetznerServer, error) {
	c, err := h.hcloud(opts...)
	if err != nil {
		return nil, err
	}
	var out []HetznerServer
	for page := 1; page <= 50; page++ {
		var resp struct {
			Servers []struct {
				Name      string `json:"name"`
				PublicNet struct {
					IPv4 struct {
						IP string `json:"ip"`
					} `json:"ipv4"`
				} `json:"public_net"`
				Labels map[string]string `json:"labels"`
			} `json:"servers"`
			Meta struct {
				Pagination struct {
					NextPage *int `json:"next_page"`
				} `json:"pagination"`
			} `json:"meta"`
		}
		q := url.Values{"page": {fmt.Sprint(page)}, "per_page": {"50"}}
		if h.LabelSelector != "" {
			q.Set("label_selector", h.LabelSelector)
		}
		if err := c.Do(ctx, "GET", "/servers?"+q.Encode(), nil, &resp); err != nil {
			return nil, fmt.Errorf("listing hetzner servers: %w", err)
		}
		for _, s := range resp.Servers {
			out = append(out, HetznerServer{Name: s.Name, PublicIP: s.PublicNet.IPv4.IP, Role: s.Labels["role"]})
		}
		if resp.Meta.Pagination.NextPage == nil {
			break
		}
	}
	return out, nil
}

// Merge adds discovered servers that infra.yaml does not list and fills in
// missing public IPs of those it does.
func (c *Config) Merge(found []HetznerServer) {
	idx := map[string]int{}
	for i, h := range c.Hosts {
		idx[h.Name] = i
	}
	for _, s := range found {
		if i, ok := idx[s.Name]; ok {
			if c.Hosts[i].PublicIP == "" {
				c.Hosts[i].PublicIP = s.PublicIP
			}
			continue
		}
		switch s.Role {
		case RoleControlPlane, RoleWorker, RoleProxy:
			c.Hosts = append(c.Hosts, Host{Name: s.Name, Role: s.Role, PublicIP: s.PublicIP})
		}
	}
}
