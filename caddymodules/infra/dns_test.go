package infra

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"

	"github.com/wisehosting/wisehosting/internal/dnsprov/cftest"
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
