package core

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// Options reads the Caddyfile global option block of an app whose options
// are `key value` lines: positive durations and numbers, plus options with
// a block of their own.
type Options struct {
	// App is the app's module ID, also the global option's name.
	App       string
	Durations map[string]*caddy.Duration
	Ints      map[string]*int
	// Block reads an option it knows (with its arguments and block, from
	// the dispenser positioned on its key) and reports whether it knew it.
	Block func(d *caddyfile.Dispenser, key string) (bool, error)
}

// Parse reads the block into the options' targets and returns app (the
// struct they point into) as the global option's value.
func (o Options) Parse(d *caddyfile.Dispenser, app any) (any, error) {
	d.Next()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		key := d.Val()
		if o.Block != nil {
			known, err := o.Block(d, key)
			if err != nil {
				return nil, err
			}
			if known {
				continue
			}
		}
		var val string
		if !d.AllArgs(&val) {
			return nil, d.ArgErr()
		}
		if dst, ok := o.Durations[key]; ok {
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return nil, d.Errf("%s: invalid duration %q", key, val)
			}
			*dst = caddy.Duration(dur)
			continue
		}
		if dst, ok := o.Ints[key]; ok {
			if _, err := fmt.Sscan(val, dst); err != nil || *dst <= 0 {
				return nil, d.Errf("%s: invalid number %q", key, val)
			}
			continue
		}
		return nil, d.Errf("unrecognized %s option %q", o.App, key)
	}
	return httpcaddyfile.App{Name: o.App, Value: caddyconfig.JSON(app, nil)}, nil
}
