package certs

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/proxy"
)

// RenewConfig lets the control plane renew, itself, certificates that the
// proxies did not renew in time. It uses the shared Postgres storage, so the
// proxies answer the HTTP-01/TLS-ALPN challenges (certmagic's distributed
// solving) and serve the renewed certificate; wildcard certificates use the
// DNS provider.
type RenewConfig struct {
	// ACME directory of the CA the proxies use (the certificates' storage
	// keys depend on it).
	CA string `json:"ca,omitempty"`
	// Account e-mail.
	Email string `json:"email,omitempty"`
	// PEM files of roots to trust for the CA's API (private CAs, tests).
	TrustedRootsPEMFiles []string `json:"trusted_roots_pem_files,omitempty"`
	// DNS provider for DNS-01 (needed for wildcard certificates).
	DNSRaw json.RawMessage `json:"dns,omitempty" caddy:"namespace=dns.providers inline_key=name"`
	// Loopback ports of the control plane's own HTTP-01 and TLS-ALPN-01
	// solvers. The CA asks the proxies (which answer from the shared
	// storage), not these. Default: 5380 and 5381.
	ChallengePorts []int `json:"challenge_ports,omitempty"`
}

func (a *App) provisionRenewal(ctx caddy.Context) error {
	r := a.Renew
	if r == nil {
		return nil
	}
	if r.CA == "" {
		return fmt.Errorf("wisehosting_certs: renew needs the ca the proxies use")
	}
	var dns certmagic.DNSProvider
	if len(r.DNSRaw) > 0 {
		mod, err := ctx.LoadModule(r, "DNSRaw")
		if err != nil {
			return fmt.Errorf("wisehosting_certs: loading dns provider: %w", err)
		}
		var ok bool
		if dns, ok = mod.(certmagic.DNSProvider); !ok {
			return fmt.Errorf("wisehosting_certs: %T is not a DNS provider", mod)
		}
	}
	var roots *x509.CertPool
	if len(r.TrustedRootsPEMFiles) > 0 {
		roots = x509.NewCertPool()
		for _, f := range r.TrustedRootsPEMFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			roots.AppendCertsFromPEM(pem)
		}
	}
	storage := proxy.NewStorage(a.wh.Pool())
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil }, Logger: a.logger})
	cfg = certmagic.New(cache, certmagic.Config{Storage: storage, Logger: a.logger})
	tmpl := certmagic.ACMEIssuer{
		CA: r.CA, TestCA: r.CA, Email: r.Email, Agreed: true, TrustedRoots: roots, Logger: a.logger,
		// The challenge is answered by the proxies from the shared storage;
		// the local solvers only bind loopback ports nobody asks.
		ListenHost: "127.0.0.1", AltHTTPPort: 5380, AltTLSALPNPort: 5381,
	}
	if len(r.ChallengePorts) == 2 {
		tmpl.AltHTTPPort, tmpl.AltTLSALPNPort = r.ChallengePorts[0], r.ChallengePorts[1]
	} else if len(r.ChallengePorts) != 0 {
		return fmt.Errorf("wisehosting_certs: renew challenge_ports takes two ports (HTTP-01, TLS-ALPN-01)")
	}
	if dns != nil {
		tmpl.DNS01Solver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{DNSProvider: dns}}
	}
	cfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(cfg, tmpl)}
	a.renewer = cfg
	a.renewCache = cache
	return nil
}

// renew renews one certificate now.
func (a *App) renew(ctx context.Context, name string) {
	if a.renewer == nil {
		return
	}
	if err := a.renewer.RenewCertSync(ctx, name, true); err != nil {
		a.logger.Error("certs: renewing", zap.String("host", name), zap.Error(err))
		return
	}
	a.logger.Info("certs: renewed by the control plane", zap.String("host", name))
}
