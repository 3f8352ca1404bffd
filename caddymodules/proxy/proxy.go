// Package proxy is the proxy mode of the wisehosting binary, a drop-in
// replacement for Traefik on the public ingress hosts:
//
//   - app `wisehosting_proxy` holds the routing table in memory (an atomic
//     pointer swap per change: no Caddy reload), learns changes from the
//     control plane by long-polling /v1/proxy/routes (a change arrives in
//     milliseconds), falls back to polling, and keeps serving the last good
//     table, also across restarts (cache file), while the control plane or
//     its database is down;
//   - handler `wisehosting_route` finds the request's host and path in the
//     table (404 for unknown hosts) and strips the path prefix when the
//     route asks for it;
//   - `http.reverse_proxy.upstreams.wisehosting` returns that route's
//     upstreams, weighted for traffic splitting;
//   - `tls.permission.wisehosting` allows on-demand certificates only for
//     hosts in the table.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/credentials"
	"github.com/wisehosting/wisehosting/internal/network"
)

func init() {
	core.RegisterApp(new(App), parseGlobalOption)
}

// AppName is the proxy app's module ID.
const AppName = "wisehosting_proxy"

// App keeps the routing table.
type App struct {
	// Base URL of the control plane, e.g. https://cp.example.com (over the
	// mesh: http://10.50.0.1:8080).
	ControlPlane string `json:"control_plane,omitempty"`
	// Bearer token for the control plane (its proxy_token). The systemd
	// credential proxy_token overrides it.
	Token string `json:"token,omitempty"`
	// Where the last good table is kept, so a restart while the control
	// plane is down still serves. Default: $XDG_DATA_HOME/caddy/wisehosting-routes.json
	// (Caddy's data directory).
	CacheFile string `json:"cache_file,omitempty"`
	// Polling interval when long-polling fails. Default: 5s.
	PollInterval caddy.Duration `json:"poll_interval,omitempty"`

	logger *zap.Logger
	http   *http.Client
	bg     core.Background
}

// state is process-wide so a config reload keeps serving the table it had.
var state struct {
	table   atomic.Pointer[network.Table]
	etag    atomic.Value // string
	updated atomic.Int64 // unix nanos of the last swap
	swaps   atomic.Int64
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: AppName, New: func() caddy.Module { return new(App) }}
}

// Provision applies defaults and loads the cached table.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	a.ControlPlane = strings.TrimRight(repl.ReplaceKnown(a.ControlPlane, ""), "/")
	a.Token = strings.TrimSpace(repl.ReplaceKnown(a.Token, ""))
	if err := credentials.Apply(credentials.ProxyToken, &a.Token); err != nil {
		return err
	}
	if a.CacheFile == "" {
		a.CacheFile = filepath.Join(caddy.AppDataDir(), "wisehosting-routes.json")
	}
	if a.PollInterval <= 0 {
		a.PollInterval = caddy.Duration(5 * time.Second)
	}
	a.http = &http.Client{Timeout: 40 * time.Second}
	if state.table.Load() == nil {
		if err := a.loadCache(); err != nil {
			a.logger.Warn("proxy: no cached routing table; serving nothing until the control plane answers", zap.Error(err))
		}
	}
	return nil
}

// Validate checks the configuration.
func (a *App) Validate() error {
	u, err := url.Parse(a.ControlPlane)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("wisehosting_proxy: control_plane %q must be an http(s) URL", a.ControlPlane)
	}
	if a.Token == "" {
		return errors.New("wisehosting_proxy: token is required")
	}
	return nil
}

// Start follows the control plane until Stop.
func (a *App) Start() error {
	a.bg.Go(a.follow)
	return nil
}

// Stop ends the follower; the table stays for the next config.
func (a *App) Stop() error {
	a.bg.Stop()
	return nil
}

// Table is the current routing table (nil before the first one).
func Table() *network.Table { return state.table.Load() }

// Swaps counts table replacements (tests, metrics).
func Swaps() int64 { return state.swaps.Load() }

func (a *App) loadCache() error {
	b, err := os.ReadFile(a.CacheFile)
	if err != nil {
		return err
	}
	var c struct {
		ETag  string         `json:"etag"`
		Table *network.Table `json:"table"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Table == nil {
		return fmt.Errorf("reading %s: invalid cache", a.CacheFile)
	}
	a.swap(c.Table, c.ETag)
	a.logger.Info("proxy: serving cached routing table", zap.Int("hosts", len(c.Table.Hosts)), zap.String("file", a.CacheFile))
	return nil
}

func (a *App) saveCache(t *network.Table, etag string) {
	b, _ := json.Marshal(map[string]any{"etag": etag, "table": t})
	os.MkdirAll(filepath.Dir(a.CacheFile), 0o700)
	tmp := a.CacheFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, a.CacheFile)
		if err != nil {
			a.logger.Warn("proxy: saving routing table", zap.Error(err))
		}
	}
}

func (a *App) swap(t *network.Table, etag string) {
	for h, e := range t.Hosts { // normalise once, not per request
		if lh := strings.ToLower(h); lh != h {
			delete(t.Hosts, h)
			t.Hosts[lh] = e
		}
	}
	state.table.Store(t)
	state.etag.Store(etag)
	state.updated.Store(time.Now().UnixNano())
	state.swaps.Add(1)
}

// follow long-polls the control plane. Errors keep the last good table and
// retry every PollInterval.
func (a *App) follow(ctx context.Context) {
	wait := false
	for ctx.Err() == nil {
		changed, err := a.fetch(ctx, wait)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.logger.Warn("proxy: control plane unreachable, serving the last good table", zap.Error(err))
			wait = false
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(a.PollInterval)):
			}
			continue
		}
		if changed {
			if t := state.table.Load(); t != nil {
				a.logger.Info("proxy: routing table updated", zap.Int("hosts", len(t.Hosts)))
			}
		}
		wait = true
	}
}

func (a *App) fetch(ctx context.Context, wait bool) (bool, error) {
	u := a.ControlPlane + "/v1/proxy/routes"
	if wait {
		u += "?wait=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	if et, _ := state.etag.Load().(string); et != "" && state.table.Load() != nil {
		req.Header.Set("If-None-Match", et)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return false, nil
	case http.StatusOK:
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("control plane answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var t network.Table
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&t); err != nil {
		return false, fmt.Errorf("decoding routing table: %w", err)
	}
	if t.Hosts == nil {
		t.Hosts = map[string]*network.HostEntry{}
	}
	etag := resp.Header.Get("ETag")
	a.swap(&t, etag)
	a.saveCache(&t, etag)
	return true, nil
}

// parseGlobalOption reads:
//
//	wisehosting_proxy {
//		control_plane <url>
//		token         <token>
//		cache_file    <path>
//		poll_interval <duration>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	return core.Options{App: AppName,
		Strings:   map[string]*string{"control_plane": &a.ControlPlane, "token": &a.Token, "cache_file": &a.CacheFile},
		Durations: map[string]*caddy.Duration{"poll_interval": &a.PollInterval}}.Parse(d, a)
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
