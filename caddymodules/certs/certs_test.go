package certs

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	_ "github.com/wisehosting/wisehosting/caddymodules/proxy"
)

var update = flag.Bool("update", false, "rewrite golden files")

func adapt(in string) (string, error) {
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(in), nil)
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
			got, err := adapt(in)
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
		"bad duration":   "{\n\twisehosting_certs {\n\t\twarn soon\n\t}\n}\n",
		"zero duration":  "{\n\twisehosting_certs {\n\t\tinterval 0s\n\t}\n}\n",
		"unknown option": "{\n\twisehosting_certs {\n\t\tcolour blue\n\t}\n}\n",
		"renew no ca":    "{\n\twisehosting_certs {\n\t\trenew {\n\t\t\temail a@b.c\n\t\t}\n\t}\n}\n",
		"renew unknown":  "{\n\twisehosting_certs {\n\t\trenew {\n\t\t\tca https://x\n\t\t\tport 1\n\t\t}\n\t}\n}\n",
		"missing arg":    "{\n\twisehosting_certs {\n\t\tinterval\n\t}\n}\n",
	} {
		if out, err := adapt(in); err == nil {
			t.Errorf("%s: accepted as %s", name, out)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := &App{Interval: caddy.Duration(10 * time.Minute), Warn: caddy.Duration(14 * 24 * time.Hour)}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	short := &App{Interval: caddy.Duration(time.Hour), Warn: caddy.Duration(30 * time.Minute)}
	if err := short.Validate(); err == nil {
		t.Fatal("a warning window shorter than the check interval accepted")
	}
}
