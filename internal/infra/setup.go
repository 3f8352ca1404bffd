package infra

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/libdns/libdns"

	"github.com/wisehosting/wisehosting/internal/dnsprov"
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
	tok, err := os.ReadFile(c.DNS.APITokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading dns.api_token_file: %w", err)
	}
	prov, err := dnsprov.New(c.DNS.Provider, strings.TrimSpace(string(tok)), c.DNS.APIURL, s.HTTPOptions...)
	if err != nil {
		return nil, err
	}
	zone := c.DNS.Zone
	name := "*." + c.SubdomainBase
	rel := libdns.RelativeName(name+".", strings.TrimSuffix(zone, ".")+".")
	recs, err := prov.GetRecords(ctx, zone)
	if err != nil {
		return nil, fmt.Errorf("listing records of %s: %w", zone, err)
	}
	have := map[string]bool{}
	for _, r := range recs {
		if rr := r.RR(); rr.Type == "A" && strings.EqualFold(rr.Name, rel) {
			have[rr.Data] = true
		}
	}
	var acts []Action
	for _, ip := range want {
		if have[ip] {
			acts = append(acts, Action{Step: "dns", Description: fmt.Sprintf("A %s → %s exists", name, ip)})
			continue
		}
		rec := libdns.RR{Name: rel, Type: "A", Data: ip, TTL: 5 * time.Minute}
		acts = append(acts, Action{Step: "dns", Description: fmt.Sprintf("create A %s → %s", name, ip),
			apply: func(ctx context.Context) error {
				parsed, err := rec.Parse()
				if err != nil {
					return err
				}
				_, err = prov.AppendRecords(ctx, zone, []libdns.Record{parsed})
				return err
			}})
	}
	return acts, nil
}
