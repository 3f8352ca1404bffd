package infra

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// Action is one change a setup step makes (or would make with --dry-run).
type Action struct {
	Step        string
	Description string
	apply       func(ctx context.Context) error
}

// Setup plans and applies the shared setup steps.
type Setup struct {
	Config *Config
	// HTTP options for provider APIs (tests).
	HTTPOptions []httpx.Option
}

// Steps lists the setup steps in order.
var Steps = []string{"dns"}

// Plan returns the actions of step ("" for all steps).
func (s *Setup) Plan(ctx context.Context, step string) ([]Action, error) {
	if step != "" && !slices.Contains(Steps, step) {
		return nil, fmt.Errorf("unknown step %q (%s)", step, strings.Join(Steps, ", "))
	}
	return s.planDNS(ctx)
}

// Apply runs actions in order.
func Apply(ctx context.Context, acts []Action) error {
	for _, a := range acts {
		if a.apply == nil {
			continue
		}
		if err := a.apply(ctx); err != nil {
			return fmt.Errorf("%s: %s: %w", a.Step, a.Description, err)
		}
	}
	return nil
}

type cfResult[T any] struct {
	Success bool `json:"success"`
	Errors  []struct {
		Message string `json:"message"`
	} `json:"errors"`
	Result T `json:"result"`
}

type cfRecord struct {
	ID      string `json:"id,omitempty"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
	TTL     int    `json:"ttl"`
	Proxied bool   `json:"proxied"`
}

func (s *Setup) cloudflare() (*httpx.APIClient, error) {
	tok, err := os.ReadFile(s.Config.DNS.APITokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading dns.api_token_file: %w", err)
	}
	base := s.Config.DNS.APIURL
	if base == "" {
		base = "https://api.cloudflare.com/client/v4"
	}
	return httpx.New(append([]httpx.Option{httpx.WithPrefix(base), httpx.WithBearer(strings.TrimSpace(string(tok)))}, s.HTTPOptions...)...), nil
}

// planDNS ensures one A record of *.<subdomain_base> per proxy address
// (idempotent: existing records are left alone).
func (s *Setup) planDNS(ctx context.Context) ([]Action, error) {
	c := s.Config
	if c.SubdomainBase == "" || c.DNS.Provider == "" {
		return nil, nil
	}
	var want []string
	for _, p := range c.ByRole(RoleProxy) {
		if p.PublicIP != "" {
			want = append(want, p.PublicIP)
		}
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("dns: no proxy with a public_ip to point *.%s at", c.SubdomainBase)
	}
	api, err := s.cloudflare()
	if err != nil {
		return nil, err
	}
	var zones cfResult[[]struct{ ID string }]
	if err := api.Do(ctx, "GET", "/zones?name="+url.QueryEscape(c.DNS.Zone), nil, &zones); err != nil {
		return nil, fmt.Errorf("finding zone %s: %w", c.DNS.Zone, err)
	}
	if len(zones.Result) == 0 {
		return nil, fmt.Errorf("zone %s not found in the Cloudflare account", c.DNS.Zone)
	}
	zone := zones.Result[0].ID
	name := "*." + c.SubdomainBase
	var recs cfResult[[]cfRecord]
	if err := api.Do(ctx, "GET", "/zones/"+url.PathEscape(zone)+"/dns_records?type=A&name="+url.QueryEscape(name), nil, &recs); err != nil {
		return nil, fmt.Errorf("listing records of %s: %w", name, err)
	}
	have := map[string]bool{}
	for _, r := range recs.Result {
		have[r.Content] = true
	}
	var acts []Action
	for _, ip := range want {
		if have[ip] {
			acts = append(acts, Action{Step: "dns", Description: fmt.Sprintf("A %s → %s exists", name, ip)})
			continue
		}
		rec := cfRecord{Type: "A", Name: name, Content: ip, TTL: 300}
		acts = append(acts, Action{Step: "dns", Description: fmt.Sprintf("create A %s → %s", name, ip),
			apply: func(ctx context.Context) error {
				var res cfResult[cfRecord]
				return api.Do(ctx, "POST", "/zones/"+url.PathEscape(zone)+"/dns_records", rec, &res)
			}})
	}
	return acts, nil
}
