// Package infra reads the operator's description of the installation
// (infra.yaml: hosts and their roles, DNS, the WireGuard mesh), checks every
// host in parallel (`wisehosting infra status`) and plans or applies the
// shared setup steps (`wisehosting infra setup`).
package infra

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/wisehosting/wisehosting/internal/dnsprov"
	"github.com/wisehosting/wisehosting/internal/httpx"
)

// Roles a host can have.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
	RoleProxy        = "proxy"
)

// Config is infra.yaml.
type Config struct {
	// SubdomainBase is the apps zone: apps are <slug>.<subdomain_base>.
	SubdomainBase string `yaml:"subdomain_base"`
	// ControlPlaneURL is where users and workers reach the control plane.
	ControlPlaneURL string   `yaml:"control_plane_url"`
	DNS             DNS      `yaml:"dns"`
	Mesh            Mesh     `yaml:"mesh"`
	Hosts           []Host   `yaml:"hosts"`
	Hetzner         *Hetzner `yaml:"hetzner,omitempty"`
	Proxy           Proxy    `yaml:"proxy,omitempty"`
}

// Proxy says what runs on the proxy hosts (`infra setup --step proxy`).
type Proxy struct {
	// Kind is traefik (default: real Traefik polling the control plane's
	// provider endpoint) or caddy (this binary in proxy mode).
	Kind string `yaml:"kind,omitempty"`
	// ACMEEmail is the account e-mail of the Traefik certificate resolver.
	ACMEEmail string `yaml:"acme_email,omitempty"`
	// ACMECA is the ACME directory (default: Let's Encrypt production).
	ACMECA string `yaml:"acme_ca,omitempty"`
	// ACMECARoot is a PEM file on the proxy host with the root of a
	// private ACME CA's HTTPS certificate (kind caddy).
	ACMECARoot string `yaml:"acme_ca_root,omitempty"`
	// HTTPAddress and HTTPSAddress are where the proxy listens: Traefik's
	// entry points, the Caddy proxy mode's ports and bind address
	// (default :80 and :443).
	HTTPAddress  string `yaml:"http_address,omitempty"`
	HTTPSAddress string `yaml:"https_address,omitempty"`
}

// Proxy kinds.
const (
	ProxyTraefik = "traefik"
	ProxyCaddy   = "caddy"
)

// DNS describes the DNS provider of the zone.
type DNS struct {
	Provider string `yaml:"provider"` // a name registered in internal/dnsprov: cloudflare, cloudns
	Zone     string `yaml:"zone"`     // example.com
	// APITokenFile holds the provider token (never inline in the file).
	APITokenFile string `yaml:"api_token_file"`
	// Resolver (host:port) answers the record checks; default: the system's.
	Resolver string `yaml:"resolver,omitempty"`
	// Options are the provider's own settings (CloudNS: auth_id or
	// sub_auth_id), as in the `dns wisehosting` Caddyfile block.
	Options map[string]string `yaml:"options,omitempty"`
	// APIURL overrides the provider's API root (tests, proxies).
	APIURL string `yaml:"api_url,omitempty"`
}

// Open builds the DNS provider, its credential read from APITokenFile.
func (d DNS) Open(opts ...httpx.Option) (dnsprov.Provider, error) {
	tok, err := os.ReadFile(d.APITokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading dns.api_token_file: %w", err)
	}
	return dnsprov.Open(d.Provider, dnsprov.Config{Token: strings.TrimSpace(string(tok)), Options: d.Options, APIURL: d.APIURL, HTTPOptions: opts})
}

// Mesh is the WireGuard network between hosts.
type Mesh struct {
	CIDR string `yaml:"cidr"` // 10.50.0.0/24
	Port int    `yaml:"port"` // 51821, the documented mesh port
}

// Host is one machine.
type Host struct {
	Name     string `yaml:"name"`
	Role     string `yaml:"role"`
	PublicIP string `yaml:"public_ip,omitempty"`
	MeshIP   string `yaml:"mesh_ip,omitempty"`
	// URL is checked for proxies and control planes (default
	// https://<public_ip>).
	URL string `yaml:"url,omitempty"`
	// Zone is a worker's DNS zone (e.g. de.example.com).
	Zone string `yaml:"zone,omitempty"`
	// SSHUser (default root), SSHPort (default 22) and SSHKey (a private
	// key file; a leading ~ is the home directory) are what
	// `wisehosting infra ssh` connects with.
	SSHUser string `yaml:"ssh_user,omitempty"`
	SSHPort int    `yaml:"ssh_port,omitempty"`
	SSHKey  string `yaml:"ssh_key,omitempty"`
}

// Hetzner enables server discovery: Cloud servers by label (their "role"
// label adds them as hosts), Robot (dedicated) servers by name (they fill
// in the public IP of hosts listed by name).
type Hetzner struct {
	TokenFile     string `yaml:"token_file,omitempty"`
	LabelSelector string `yaml:"label_selector,omitempty"` // e.g. wisehosting
	APIURL        string `yaml:"api_url,omitempty"`
	// Robot web service credentials (files), for dedicated servers.
	RobotUserFile     string `yaml:"robot_user_file,omitempty"`
	RobotPasswordFile string `yaml:"robot_password_file,omitempty"`
	RobotAPIURL       string `yaml:"robot_api_url,omitempty"`
	// LoadBalancer is what `infra lb create` makes and `infra lb status`
	// shows.
	LoadBalancer *LoadBalancer `yaml:"load_balancer,omitempty"`
}

// Load reads and validates path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse decodes and validates infra.yaml content. Unknown keys are errors,
// so a typo does not silently disable a check.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("reading infra.yaml: %w", err)
	}
	if c.Mesh.Port == 0 {
		c.Mesh.Port = 51821
	}
	p := &c.Proxy
	p.Kind = cmp.Or(p.Kind, ProxyTraefik)
	p.ACMECA = cmp.Or(p.ACMECA, "https://acme-v02.api.letsencrypt.org/directory")
	p.HTTPAddress, p.HTTPSAddress = cmp.Or(p.HTTPAddress, ":80"), cmp.Or(p.HTTPSAddress, ":443")
	return &c, c.Validate()
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.ControlPlaneURL != "" {
		if u, err := url.Parse(c.ControlPlaneURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("control_plane_url %q is not an http(s) URL", c.ControlPlaneURL))
		}
	}
	if c.Proxy.Kind != "" && c.Proxy.Kind != ProxyTraefik && c.Proxy.Kind != ProxyCaddy {
		errs = append(errs, fmt.Errorf("proxy.kind %q (want traefik or caddy)", c.Proxy.Kind))
	}
	if c.Proxy.ACMECA != "" {
		if u, err := url.Parse(c.Proxy.ACMECA); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("proxy.acme_ca %q is not an https URL", c.Proxy.ACMECA))
		}
	}
	for _, a := range []string{c.Proxy.HTTPAddress, c.Proxy.HTTPSAddress} {
		if a != "" {
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				errs = append(errs, fmt.Errorf("proxy address %q is not host:port", a))
			}
		}
	}
	if strings.ContainsAny(c.Proxy.ACMECA, " \t\"\n\\{}") {
		errs = append(errs, fmt.Errorf("proxy.acme_ca %q is not an https URL", c.Proxy.ACMECA))
	}
	if r := c.Proxy.ACMECARoot; r != "" && (!filepath.IsAbs(r) || strings.ContainsAny(r, " \t\"\n\\{}")) {
		errs = append(errs, fmt.Errorf("proxy.acme_ca_root %q is not an absolute file path", r))
	}
	if strings.ContainsAny(c.Proxy.ACMEEmail, "\"\n\\") {
		errs = append(errs, fmt.Errorf("proxy.acme_email %q is not an e-mail address", c.Proxy.ACMEEmail))
	}
	var mesh netip.Prefix
	if c.Mesh.CIDR != "" {
		var err error
		if mesh, err = netip.ParsePrefix(c.Mesh.CIDR); err != nil {
			errs = append(errs, fmt.Errorf("mesh.cidr: %v", err))
		}
	}
	if c.DNS.Provider != "" && !slices.Contains(dnsprov.Names(), c.DNS.Provider) {
		errs = append(errs, fmt.Errorf("dns.provider %q is not supported (%s)", c.DNS.Provider, strings.Join(dnsprov.Names(), ", ")))
	}
	names, meshIPs := map[string]bool{}, map[string]bool{}
	for i, h := range c.Hosts {
		where := fmt.Sprintf("hosts[%d] (%s)", i, h.Name)
		if h.Name == "" {
			errs = append(errs, fmt.Errorf("hosts[%d]: name is required", i))
		}
		if names[h.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		names[h.Name] = true
		switch h.Role {
		case RoleControlPlane, RoleWorker, RoleProxy:
		default:
			errs = append(errs, fmt.Errorf("%s: role %q (want control-plane, worker or proxy)", where, h.Role))
		}
		if h.PublicIP != "" {
			if _, err := netip.ParseAddr(h.PublicIP); err != nil {
				errs = append(errs, fmt.Errorf("%s: public_ip: %v", where, err))
			}
		}
		if h.MeshIP != "" {
			ip, err := netip.ParseAddr(h.MeshIP)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: mesh_ip: %v", where, err))
			case mesh.IsValid() && !mesh.Contains(ip):
				errs = append(errs, fmt.Errorf("%s: mesh_ip %s is outside mesh.cidr %s", where, ip, mesh))
			case meshIPs[h.MeshIP]:
				errs = append(errs, fmt.Errorf("%s: mesh_ip %s used twice", where, ip))
			}
			meshIPs[h.MeshIP] = true
		}
		if h.Role == RoleProxy && h.PublicIP == "" && h.URL == "" {
			errs = append(errs, fmt.Errorf("%s: a proxy needs public_ip or url", where))
		}
	}
	return errors.Join(errs...)
}

// ByRole returns the hosts with role.
func (c *Config) ByRole(role string) []Host {
	var out []Host
	for _, h := range c.Hosts {
		if h.Role == role {
			out = append(out, h)
		}
	}
	return out
}

// checkURL is where a host's HTTP(S) checks go.
func (h Host) checkURL(fallback string) string {
	switch {
	case h.URL != "":
		return h.URL
	case fallback != "":
		return fallback
	case h.PublicIP != "":
		return "https://" + h.PublicIP
	}
	return ""
}
