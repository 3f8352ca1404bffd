package infra

import (
	"os"
	"path/filepath"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"

	"github.com/wisehosting/wisehosting/internal/infra/hetznertest"
)

func runInfra(t *testing.T, infraPath string, args ...string) (int, error) {
	fs := pflag.NewFlagSet("infra", pflag.ContinueOnError)
	fs.String("infra", infraPath, "")
	fs.String("config", "", "")
	fs.String("adapter", "", "")
	fs.Bool("json", false, "")
	fs.Bool("dry-run", false, "")
	fs.String("step", "", "")
	fs.String("proxy-dir", t.TempDir(), "")
	fs.String("description", "", "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cmdInfra(caddycmd.Flags{FlagSet: fs})
}

// infra lb status|create and infra snapshot against the Hetzner stand-in.
func TestLoadBalancerAndSnapshotCommands(t *testing.T) {
	hz := hetznertest.Start(t)
	dir := t.TempDir()
	tok := filepath.Join(dir, "hcloud")
	os.WriteFile(tok, []byte("hcloud-token\n"), 0o600)
	cfg := filepath.Join(dir, "infra.yaml")
	os.WriteFile(cfg, []byte("hetzner: {token_file: "+tok+", api_url: "+hz.URL+", load_balancer: {name: wh-lb, ports: [443]}}\n"), 0o600)

	if code, err := runInfra(t, cfg, "lb", "status"); code != 1 || err != nil {
		t.Fatalf("status before create: %d %v", code, err)
	}
	for range 2 {
		if code, err := runInfra(t, cfg, "lb", "create"); code != 0 || err != nil {
			t.Fatalf("create: %d %v", code, err)
		}
	}
	if hz.Creates != 1 {
		t.Fatalf("%d load balancers created", hz.Creates)
	}
	if code, err := runInfra(t, cfg, "lb", "status"); code != 0 || err != nil {
		t.Fatalf("status: %d %v", code, err)
	}
	if code, err := runInfra(t, cfg, "snapshot", "px1", "--description", "before upgrade"); code != 0 || err != nil {
		t.Fatalf("snapshot: %d %v", code, err)
	}
	if code, err := runInfra(t, cfg, "snapshot", "w7"); code == 0 || err == nil {
		t.Fatal("snapshot of an unknown server succeeded")
	}
	os.WriteFile(cfg, []byte("hosts: [{name: cp1, role: control-plane, public_ip: 203.0.113.10}]\n"), 0o600)
	if code, err := runInfra(t, cfg, "lb", "status"); code == 0 || err == nil {
		t.Fatal("lb status without a hetzner section succeeded")
	}
}
