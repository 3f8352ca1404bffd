package api

import (
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestParseHandlerOptions(t *testing.T) {
	h, err := parseHandler(caddyfile.NewTestDispenser(`wisehosting_api {
		proxy_entry_points https https-alt
		cert_resolver off
		worker_entry_points zone
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Handler{ProxyEntryPoints: []string{"https", "https-alt"}, CertResolver: "off", WorkerEntryPoints: []string{"zone"}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %+v", h)
	}
	for _, bad := range []string{
		"wisehosting_api x",
		"wisehosting_api {\n database_url x\n}",
		"wisehosting_api {\n cert_resolver\n}",
		"wisehosting_api {\n cert_resolver a b\n}",
	} {
		if _, err := parseHandler(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
