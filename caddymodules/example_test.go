package caddymodules_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/wisehosting/wisehosting/caddymodules"
	"github.com/wisehosting/wisehosting/internal/infra"
)

// The Caddyfiles shipped with the project must adapt with the modules this
// build has: a renamed directive or option breaks this test, not a user.
func TestShippedCaddyfilesAdapt(t *testing.T) {
	for _, path := range []string{"../Caddyfile.example", "../scripts/dev.Caddyfile"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
		out, warnings, err := adapter.Adapt(b, map[string]any{"filename": path})
		if err != nil {
			t.Errorf("%s: %v", path, err)
		}
		for _, w := range warnings {
			t.Errorf("%s: warning: %s", path, w.String())
		}
		if err := adminPrivate(out); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

// The proxy Caddyfile `wisehosting infra setup` writes keeps the admin API
// off TCP as well.
func TestGeneratedProxyAdminPrivate(t *testing.T) {
	c, err := infra.Parse([]byte("mesh: {cidr: 10.50.0.0/24}\nhosts:\n  - {name: cp1, role: control-plane, mesh_ip: 10.50.0.1}\n  - {name: px1, role: proxy, public_ip: 203.0.113.20}\n"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := infra.ProxyCaddyfile(c, c.Hosts[1])
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := adminPrivate(out); err != nil {
		t.Fatal(err)
	}
}

// adminPrivate says why an adapted config's Caddy admin API is reachable
// over TCP: anything that can send it a request (a redirect followed by an
// outbound client, a browser on the host) can stop or rewrite the process.
// Only a unix socket or "off" passes.
func adminPrivate(config []byte) error {
	var c struct {
		Admin *struct {
			Disabled bool   `json:"disabled"`
			Listen   string `json:"listen"`
		} `json:"admin"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return err
	}
	switch {
	case c.Admin == nil || (!c.Admin.Disabled && c.Admin.Listen == ""):
		return errAdmin("the admin API is on Caddy's default localhost:2019")
	case c.Admin.Disabled, strings.HasPrefix(c.Admin.Listen, "unix/"):
		return nil
	}
	return errAdmin("the admin API listens on " + c.Admin.Listen)
}

type errAdmin string

func (e errAdmin) Error() string { return string(e) + "; want a unix socket or off" }
