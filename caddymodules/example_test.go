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
