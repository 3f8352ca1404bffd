package caddymodules_test

import (
	"os"
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
		_, warnings, err := adapter.Adapt(b, map[string]any{"filename": path})
		if err != nil {
			t.Errorf("%s: %v", path, err)
		}
		for _, w := range warnings {
			t.Errorf("%s: warning: %s", path, w.String())
		}
	}
}
