package core

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestOptionsParse(t *testing.T) {
	type app struct {
		Every caddy.Duration `json:"every"`
		Size  int            `json:"size"`
	}
	parse := func(src string) (app, error) {
		var a app
		v, err := Options{App: "wisehosting_x", Durations: map[string]*caddy.Duration{"every": &a.Every},
			Ints: map[string]*int{"size": &a.Size}}.Parse(caddyfile.NewTestDispenser(src), &a)
		if err == nil {
			var back app
			json.Unmarshal(v.(httpcaddyfile.App).Value, &back)
			if back != a {
				t.Fatalf("value %+v, parsed %+v", back, a)
			}
		}
		return a, err
	}
	a, err := parse("wisehosting_x {\n every 2m\n size 5\n}")
	if err != nil || time.Duration(a.Every) != 2*time.Minute || a.Size != 5 {
		t.Fatalf("%+v %v", a, err)
	}
	for src, want := range map[string]string{
		"wisehosting_x {\n every -1s\n}": `every: invalid duration "-1s"`,
		"wisehosting_x {\n size 0\n}":    `size: invalid number "0"`,
		"wisehosting_x {\n color red\n}": `unrecognized wisehosting_x option "color"`,
		"wisehosting_x {\n every\n}":     "wrong argument count",
		"wisehosting_x arg {\n}":         "wrong argument count",
	} {
		if _, err := parse(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}
