// Package cptest starts a real control plane in the test process: the
// Caddy config a production Caddyfile adapts to, with every WiseHosting
// module, listening on loopback, on a pgtest database. caddy.Load is
// process-wide, so tests that use it must not run in parallel with each
// other (packages still run in parallel: each is its own process).
package cptest

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/wisehosting/wisehosting/caddymodules"
	"github.com/wisehosting/wisehosting/internal/peers"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/secrets"
)

// Secret is the master secret of test control planes.
const Secret = "0123456789abcdef0123456789abcdef"

// Keyring is the keyring of test control planes (sealing, e.g. the keys
// of workers added with workers.Add).
func Keyring(t testing.TB) *secrets.Keyring {
	t.Helper()
	kr, err := secrets.NewKeyring(Secret)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// ProxyToken is the proxy token of test control planes.
const ProxyToken = "test-proxy-token-0123456789"

// Options shape the control plane.
type Options struct {
	// Core adds or overrides fields of the wisehosting app.
	Core map[string]any
	// Handlers are extra handler configs placed after the API and the hub.
	Handlers []map[string]any
	// Apps are extra Caddy apps (e.g. "wisehosting_scheduler").
	Apps map[string]any
	// Hub configures the wisehosting_hub handler.
	Hub map[string]any
	// API configures the wisehosting_api handler.
	API map[string]any
	// LogLevel of Caddy's default logger (default ERROR).
	LogLevel string
	// LogFile, when set, receives the default logger's entries (JSON
	// lines) instead of stderr.
	LogFile string
}

// CP is a running control plane.
type CP struct {
	URL  string // http://127.0.0.1:port
	Addr string
	DB   *pgtest.DB
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return peers.FreeAddr(t)
}

// Config returns the JSON config Start loads.
func Config(db *pgtest.DB, addr string, o Options) []byte {
	core := map[string]any{"database_url": db.URL, "secret": Secret, "proxy_token": ProxyToken,
		"admin_email": "off", "subdomain_base": "apps.test"}
	maps.Copy(core, o.Core)
	hub := map[string]any{"handler": "wisehosting_hub"}
	maps.Copy(hub, o.Hub)
	api := map[string]any{"handler": "wisehosting_api"}
	maps.Copy(api, o.API)
	handlers := []any{hub, api}
	for _, h := range o.Handlers {
		handlers = append(handlers, h)
	}
	apps := map[string]any{
		"wisehosting": core,
		"http": map[string]any{"servers": map[string]any{"cp": map[string]any{
			"listen": []string{addr},
			"routes": []any{map[string]any{"handle": handlers}},
		}}},
	}
	maps.Copy(apps, o.Apps)
	level := o.LogLevel
	if level == "" {
		level = "ERROR"
	}
	log := map[string]any{"level": level}
	if o.LogFile != "" {
		log["writer"] = map[string]any{"output": "file", "filename": o.LogFile}
	}
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": log}},
		"apps":    apps,
	}
	b, _ := json.Marshal(cfg)
	return b
}

// Start runs a control plane for db until the test ends.
func Start(t testing.TB, db *pgtest.DB, o Options) *CP {
	t.Helper()
	addr := FreeAddr(t)
	if err := caddy.Load(Config(db, addr, o), true); err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() { caddy.Stop() })
	return &CP{URL: "http://" + addr, Addr: addr, DB: db}
}
