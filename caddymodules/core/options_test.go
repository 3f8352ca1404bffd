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

// TestOptionsRead covers strings, lists, 64-bit numbers, a nested block
// and the hint of an unknown option, as handlers and storage modules use
// them.
func TestOptionsRead(t *testing.T) {
	type inner struct{ Name string }
	type conf struct {
		URL   string
		Hosts []string
		Max   int64
		Sub   *inner
		Plain bool
	}
	read := func(src string) (conf, error) {
		var c conf
		err := Options{App: "wisehosting_y", Hint: "see the docs",
			Strings: map[string]*string{"url": &c.URL},
			Lists:   map[string]*[]string{"hosts": &c.Hosts},
			Int64s:  map[string]*int64{"max": &c.Max},
			Block: func(d *caddyfile.Dispenser, key string) (bool, error) {
				switch key {
				case "sub":
					c.Sub = new(inner)
					return true, Options{App: "sub", Strings: map[string]*string{"name": &c.Sub.Name}}.ReadBlock(d)
				case "plain":
					c.Plain = true
					return true, nil
				}
				return false, nil
			}}.Read(caddyfile.NewTestDispenser(src))
		return c, err
	}
	c, err := read("wisehosting_y {\n url http://x\n hosts a b\n hosts c\n sub {\n  name n\n }\n max 5000000000\n plain\n}")
	if err != nil || c.URL != "http://x" || strings.Join(c.Hosts, ",") != "a,b,c" || c.Max != 5000000000 || c.Sub == nil || c.Sub.Name != "n" || !c.Plain {
		t.Fatalf("%+v %+v %v", c, c.Sub, err)
	}
	for src, want := range map[string]string{
		"wisehosting_y {\n color red\n}":          `unrecognized wisehosting_y option "color" (see the docs)`,
		"wisehosting_y {\n sub {\n  url x\n }\n}": `unrecognized sub option "url"`,
		"wisehosting_y {\n hosts\n}":              "wrong argument count",
		"wisehosting_y {\n url a b\n}":            "wrong argument count",
		"wisehosting_y {\n max 5x\n}":             `max: invalid number "5x"`,
	} {
		if _, err := read(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}
