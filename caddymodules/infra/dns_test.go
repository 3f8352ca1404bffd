package infra

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"

	"github.com/wisehosting/wisehosting/internal/dnsprov/cftest"
	"github.com/wisehosting/wisehosting/internal/dnsprov/cloudnstest"
)

func runDNS(t *testing.T, infraPath string, args ...string) (int, error) {
	fs := pflag.NewFlagSet("dns", pflag.ContinueOnError)
	fs.String("infra", infraPath, "")
	fs.Duration("ttl", 5*time.Minute, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cmdDNS(caddycmd.Flags{FlagSet: fs})
}

func TestDNSCommand(t *testing.T) {
	cf := cftest.Start(t, "example.com", "cf-token")
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("cf-token\n"), 0o600)
	cfg := filepath.Join(dir, "infra.yaml")
	os.WriteFile(cfg, []byte("dns: {provider: cloudflare, zone: example.com, api_token_file: "+tok+", api_url: "+cf.URL+"}\n"), 0o600)

	if code, err := runDNS(t, cfg, "set", "*.apps", "A", "203.0.113.20"); code != 0 || err != nil {
		t.Fatalf("set: %d %v", code, err)
	}
	if code, err := runDNS(t, cfg, "set", "*.apps", "A", "203.0.113.20"); code != 0 || err != nil {
		t.Fatalf("set again: %d %v", code, err)
	}
	if recs := cf.Records(); len(recs) != 1 || recs[0].Name != "*.apps.example.com" {
		t.Fatalf("records %+v", recs)
	}
	if code, err := runDNS(t, cfg, "list"); code != 0 || err != nil {
		t.Fatalf("list: %d %v", code, err)
	}
	if code, err := runDNS(t, cfg, "delete", "*.apps", "A"); code != 0 || err != nil || len(cf.Records()) != 0 {
		t.Fatalf("delete: %d %v %v", code, err, cf.Records())
	}
	if code, _ := runDNS(t, cfg, "set", "x"); code == 0 {
		t.Fatal("bad usage accepted")
	}
	if code, _ := runDNS(t, cfg, "set", "bad", "A", "not-an-ip"); code == 0 {
		t.Fatal("invalid A value accepted")
	}
}

// The same commands against CloudNS: the provider's own options come from
// infra.yaml, its password from the token file.
func TestDNSCommandCloudNS(t *testing.T) {
	cn := cloudnstest.Start(t, "example.com", "4321", "", "cn-pass")
	dir := t.TempDir()
	tok := filepath.Join(dir, "password")
	os.WriteFile(tok, []byte("cn-pass\n"), 0o600)
	cfg := filepath.Join(dir, "infra.yaml")
	os.WriteFile(cfg, []byte("dns: {provider: cloudns, zone: example.com, api_token_file: "+tok+", options: {auth_id: \"4321\"}, api_url: "+cn.URL+"}\n"), 0o600)

	for range 2 {
		if code, err := runDNS(t, cfg, "set", "*.apps", "A", "203.0.113.20"); code != 0 || err != nil {
			t.Fatalf("set: %d %v", code, err)
		}
	}
	if recs := cn.Records(); len(recs) != 1 || recs[0].Host != "*.apps" || recs[0].TTL != 300 {
		t.Fatalf("records %+v", recs)
	}
	if code, err := runDNS(t, cfg, "list"); code != 0 || err != nil {
		t.Fatalf("list: %d %v", code, err)
	}
	if code, err := runDNS(t, cfg, "delete", "*.apps", "A"); code != 0 || err != nil || len(cn.Records()) != 0 {
		t.Fatalf("delete: %d %v %v", code, err, cn.Records())
	}
	os.WriteFile(cfg, []byte("dns: {provider: cloudns, zone: example.com, api_token_file: "+tok+", api_url: "+cn.URL+"}\n"), 0o600)
	if code, err := runDNS(t, cfg, "list"); code == 0 || !strings.Contains(err.Error(), "auth_id") {
		t.Fatalf("no auth id: %d %v", code, err)
	}
}
