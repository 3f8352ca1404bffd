package hub

import (
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestParseCaddyfile(t *testing.T) {
	h, err := parseHandler(caddyfile.NewTestDispenser(`wisehosting_hub {
		ping_interval 15s
		write_timeout 5s
		send_queue 64
		max_frame_bytes 65536
	}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(h)
	want := `{"ping_interval":15000000000,"write_timeout":5000000000,"send_queue":64,"max_frame_bytes":65536}`
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if h.PingInterval != caddy.Duration(15e9) {
		t.Fatal("ping interval")
	}
	for _, bad := range []string{
		"wisehosting_hub arg",
		"wisehosting_hub {\n colour blue\n}",
		"wisehosting_hub {\n ping_interval soon\n}",
		"wisehosting_hub {\n send_queue -1\n}",
	} {
		if _, err := parseHandler(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
