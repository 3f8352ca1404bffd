package infra_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/wisehosting/wisehosting/internal/infra"
)

// The generated proxy Caddyfile must adapt with this build's modules, and
// keeps Caddy's admin API on a unix socket (README "Security model").
func TestGeneratedProxyCaddyfileAdapts(t *testing.T) {
	c, err := infra.Parse([]byte(`
mesh: {cidr: 10.50.0.0/24}
hosts:
  - {name: cp1, role: control-plane, mesh_ip: 10.50.0.1}
  - {name: px1, role: proxy, public_ip: 203.0.113.20}
`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := infra.ProxyCaddyfile(c, c.Hosts[1])
	if err != nil {
		t.Fatal(err)
	}
	out, warnings, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(text), nil)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("%v %v\n%s", err, warnings, text)
	}
	for _, want := range []string{`"wisehosting_proxy":{"control_plane":"http://10.50.0.1:8080"}`, `"storage":{"control_plane":"http://10.50.0.1:8080","module":"wisehosting_cp"}`, `"handler":"wisehosting_route"`,
		`"admin":{"listen":"unix//run/wisehosting-proxy/admin.sock"}`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}
}
