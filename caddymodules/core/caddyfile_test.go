package core

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/wisehosting/wisehosting/internal/plans"
)

var update = flag.Bool("update", false, "rewrite golden files")

func adapt(t *testing.T, in string) (string, error) {
	t.Helper()
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, _, err := adapter.Adapt([]byte(in), nil)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// Golden files: the Caddyfile above "----------", the JSON it must adapt to
// below it. Run `go test -run Golden -update` to regenerate.
func TestCaddyfileGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/caddyfile/*.txt")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(b), "\n----------\n")
			if !ok {
				t.Fatal("golden file lacks the ---------- separator")
			}
			got, err := adapt(t, in)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				os.WriteFile(f, []byte(in+"\n----------\n"+got+"\n"), 0o644)
				return
			}
			if strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Errorf("adapted JSON differs\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}

func TestCaddyfileErrors(t *testing.T) {
	for name, in := range map[string]string{
		"unknown option": "{\n wisehosting {\n  colour blue\n }\n}\n",
		"missing value":  "{\n wisehosting {\n  secret\n }\n}\n",
		"two values":     "{\n wisehosting {\n  secret a b\n }\n}\n",
		"bad max_conns":  "{\n wisehosting {\n  max_conns -3\n }\n}\n",
		"inline arg":     "{\n wisehosting foo\n}\n",
		"plan bad value": "{\n wisehosting {\n  plan a {\n   apps many\n  }\n }\n}\n",
		"plan negative":  "{\n wisehosting {\n  plan a {\n   memory_mb -1\n  }\n }\n}\n",
		"plan unknown":   "{\n wisehosting {\n  plan a {\n   gpus 1\n  }\n }\n}\n",
		"plan switch":    "{\n wisehosting {\n  plan a {\n   previews maybe\n  }\n }\n}\n",
		"plan twice":     "{\n wisehosting {\n  plan a {\n  }\n  plan a {\n  }\n }\n}\n",
		"plan no name":   "{\n wisehosting {\n  plan {\n  }\n }\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := adapt(t, in); err == nil {
				t.Fatal("adapted without error")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := func() *App {
		return &App{DatabaseURL: "postgres://x/y", Secret: strings.Repeat("s", 32)}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*App){
		"no db":                             func(a *App) { a.DatabaseURL = "" },
		"short secret":                      func(a *App) { a.Secret = "short" },
		"short token":                       func(a *App) { a.ProxyToken = "abc" },
		"bad public url":                    func(a *App) { a.PublicURL = "cp.example.com" },
		"bad base":                          func(a *App) { a.SubdomainBase = "http://apps.example.com" },
		"base breaking out of a proxy rule": func(a *App) { a.SubdomainBase = "apps.test`)||HostRegexp(`.+" },
		"base with an underscore":           func(a *App) { a.SubdomainBase = "apps_x.example.com" },
		"unknown default":                   func(a *App) { a.DefaultPlan = "gold" },
		"resolver given by name":            func(a *App) { a.DomainResolvers = []string{"dns.google"} },
		"no free plan":                      func(a *App) { a.Plans = map[string]plans.Plan{"basic": {}} },
		"negative limit":                    func(a *App) { a.Plans = map[string]plans.Plan{"free": {Apps: -1}} },
	} {
		a := good()
		mut(a)
		if err := a.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestResolveCredentialPrecedence(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "api_server_secret"), []byte("credential-secret-credential-secret\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "database_password"), []byte("pw-from-cred"), 0o600)
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	t.Setenv("WH_TEST_TOKEN", "token-from-environment")

	a := &App{Secret: "config-secret-config-secret-config", ProxyToken: "{env.WH_TEST_TOKEN}", DatabasePassword: "pw-from-config"}
	if err := a.Resolve(); err != nil {
		t.Fatal(err)
	}
	if a.Secret != "credential-secret-credential-secret" {
		t.Errorf("secret: credential must win, got %q", a.Secret)
	}
	if a.DatabasePassword != "pw-from-cred" {
		t.Errorf("database_password: credential must win, got %q", a.DatabasePassword)
	}
	if a.ProxyToken != "token-from-environment" {
		t.Errorf("proxy_token: env placeholder not applied, got %q", a.ProxyToken)
	}
	if a.AdminEmail != "admin@localhost" {
		t.Errorf("admin_email default: %q", a.AdminEmail)
	}
}
