package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/certstore"
	"github.com/wisehosting/wisehosting/internal/credentials"
)

func init() {
	caddy.RegisterModule(new(CPStorage))
}

// CPStorage is `caddy.storage.wisehosting_cp`, a proxy's certificate
// storage: the control plane's shared storage (Postgres, behind its
// storage API), reached over the mesh with the proxy token, so proxies
// share certificates, ACME accounts and locks without any database
// credential. What the proxy reads or writes is also kept on its disk
// (cache_dir), from where it is served while the control plane or its
// database is down, also after a restart. Provisioning makes no request.
type CPStorage struct {
	// Base URL of the control plane (over the mesh: http://10.50.0.1:8080).
	ControlPlane string `json:"control_plane,omitempty"`
	// Bearer token (the control plane's proxy_token). The systemd
	// credential proxy_token overrides it.
	Token string `json:"token,omitempty"`
	// Local copy of the certificates, keys and ACME account. Default:
	// wisehosting-certs in Caddy's data directory ($XDG_DATA_HOME/caddy).
	CacheDir string `json:"cache_dir,omitempty"`
	// How long a lock survives a proxy that died holding it. Default: 2m.
	LockTTL caddy.Duration `json:"lock_ttl,omitempty"`

	remote *certstore.Remote
}

// CaddyModule returns the Caddy module information.
func (*CPStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.storage.wisehosting_cp", New: func() caddy.Module { return new(CPStorage) }}
}

// Provision reads the token and builds the client; it contacts nothing.
func (s *CPStorage) Provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	s.ControlPlane = strings.TrimRight(repl.ReplaceKnown(s.ControlPlane, ""), "/")
	s.Token = strings.TrimSpace(repl.ReplaceKnown(s.Token, ""))
	s.CacheDir = repl.ReplaceKnown(s.CacheDir, "")
	if err := credentials.Apply(credentials.ProxyToken, &s.Token); err != nil {
		return err
	}
	if s.CacheDir == "" {
		s.CacheDir = filepath.Join(caddy.AppDataDir(), "wisehosting-certs")
	}
	if s.LockTTL <= 0 {
		s.LockTTL = caddy.Duration(2 * time.Minute)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	// Short timeouts: a TLS handshake may wait on a Load, and an
	// unreachable control plane sends the proxy to its local copy.
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 12 * time.Second,
	}
	client := &certstore.Client{BaseURL: s.ControlPlane, Token: s.Token, HTTP: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
	s.remote = certstore.NewRemote(client, certstore.Cache{Dir: s.CacheDir}, time.Duration(s.LockTTL), ctx.Logger())
	return nil
}

// Validate checks the configuration.
func (s *CPStorage) Validate() error {
	u, err := url.Parse(s.ControlPlane)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("storage wisehosting_cp: control_plane %q must be an http(s) URL", s.ControlPlane)
	}
	if s.Token == "" {
		return errors.New("storage wisehosting_cp: no token (systemd credential proxy_token, or token)")
	}
	if time.Duration(s.LockTTL) < 3*time.Second || time.Duration(s.LockTTL) > 10*time.Minute {
		return errors.New("storage wisehosting_cp: lock_ttl must be between 3s and 10m")
	}
	return nil
}

// CertMagicStorage implements caddy.StorageConverter.
func (s *CPStorage) CertMagicStorage() (certmagic.Storage, error) { return s.remote, nil }

// Remote is the storage itself (tests).
func (s *CPStorage) Remote() *certstore.Remote { return s.remote }

// UnmarshalCaddyfile reads
//
//	storage wisehosting_cp {
//		control_plane <url>
//		token         <token>
//		cache_dir     <dir>
//		lock_ttl      <duration>
//	}
func (s *CPStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return core.Options{App: "storage wisehosting_cp",
		Strings:   map[string]*string{"control_plane": &s.ControlPlane, "token": &s.Token, "cache_dir": &s.CacheDir},
		Durations: map[string]*caddy.Duration{"lock_ttl": &s.LockTTL}}.Read(d)
}

// Interface guards.
var (
	_ caddy.StorageConverter = (*CPStorage)(nil)
	_ caddy.Provisioner      = (*CPStorage)(nil)
	_ caddy.Validator        = (*CPStorage)(nil)
	_ caddyfile.Unmarshaler  = (*CPStorage)(nil)
)
