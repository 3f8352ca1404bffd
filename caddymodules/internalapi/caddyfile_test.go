package internalapi

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
)

var update = flag.Bool("update", false, "rewrite golden files")

func adapt(in string) (string, error) {
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
		"all interfaces": "{\n wisehosting_internal {\n  listen 0.0.0.0:2021\n }\n}\n",
		"ipv6 any":       "{\n wisehosting_internal {\n  listen [::]:2021\n }\n}\n",
		"no host":        "{\n wisehosting_internal {\n  listen :2021\n }\n}\n",
		"mesh address":   "{\n wisehosting_internal {\n  listen 10.50.0.1:2021\n }\n}\n",
		"hostname":       "{\n wisehosting_internal {\n  listen cp.example.com:2021\n }\n}\n",
		"no port":        "{\n wisehosting_internal {\n  listen 127.0.0.1\n }\n}\n",
		"two values":     "{\n wisehosting_internal {\n  listen 127.0.0.1:1 127.0.0.1:2\n }\n}\n",
		"unknown option": "{\n wisehosting_internal {\n  token abc\n }\n}\n",
		"inline arg":     "{\n wisehosting_internal 127.0.0.1:2021\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := adapt(in); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
