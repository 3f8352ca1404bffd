package scheduler

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestCaddyfileGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/scheduler.txt")
	if err != nil {
		t.Fatal(err)
	}
	in, want, _ := strings.Cut(string(b), "\n----------\n")
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	json.Indent(&got, out, "", "\t")
	if strings.TrimSpace(got.String()) != strings.TrimSpace(want) {
		t.Fatalf("got\n%s\nwant\n%s", got.String(), want)
	}
	for _, bad := range []string{
		"{\n wisehosting_scheduler {\n  batch 0\n }\n}",
		"{\n wisehosting_scheduler {\n  poll_interval never\n }\n}",
		"{\n wisehosting_scheduler {\n  colour blue\n }\n}",
	} {
		if _, _, err := (caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}).Adapt([]byte(bad), nil); err == nil {
			t.Errorf("%q adapted", bad)
		}
	}
}
