package core

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// Options reads the Caddyfile block of a module whose options are
// `key value` lines (strings, lists, positive durations and numbers) plus
// options with a block of their own: the global option of an app, a
// handler directive or a storage module. It is the one Caddyfile reader of
// the modules.
type Options struct {
	// App names the block in messages ("unrecognized <App> option"); for a
	// global option it is also the app's module ID.
	App     string
	Strings map[string]*string
	// Lists take one or more arguments; a repeated line adds to the list.
	Lists     map[string]*[]string
	Durations map[string]*caddy.Duration
	Ints      map[string]*int
	Int64s    map[string]*int64
	// Block reads an option it knows (with its arguments and block, from
	// the dispenser positioned on its key) and reports whether it knew it.
	Block func(d *caddyfile.Dispenser, key string) (bool, error)
	// Hint ends the message about an unknown option, e.g. where the other
	// settings go.
	Hint string
}

// Read reads the directive that starts at the dispenser's next token (it
// takes no argument of its own) and its block into the options' targets.
func (o Options) Read(d *caddyfile.Dispenser) error {
	d.Next()
	return o.ReadBlock(d)
}

// ReadBlock reads the block of the option the dispenser is on (a block
// nested in another one's; the option takes no argument).
func (o Options) ReadBlock(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for n := d.Nesting(); d.NextBlock(n); {
		key := d.Val()
		if o.Block != nil {
			known, err := o.Block(d, key)
			if err != nil {
				return err
			}
			if known {
				continue
			}
		}
		if dst, ok := o.Lists[key]; ok {
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			*dst = append(*dst, args...)
			continue
		}
		if err := o.set(d, key); err != nil {
			return err
		}
	}
	return nil
}

// set reads one `key value` option.
func (o Options) set(d *caddyfile.Dispenser, key string) error {
	_, isString := o.Strings[key]
	_, isDuration := o.Durations[key]
	_, isInt := o.Ints[key]
	_, isInt64 := o.Int64s[key]
	if !isString && !isDuration && !isInt && !isInt64 {
		if o.Hint != "" {
			return d.Errf("unrecognized %s option %q (%s)", o.App, key, o.Hint)
		}
		return d.Errf("unrecognized %s option %q", o.App, key)
	}
	var val string
	if !d.AllArgs(&val) {
		return d.ArgErr()
	}
	if dst, ok := o.Strings[key]; ok {
		*dst = val
		return nil
	}
	if dst, ok := o.Durations[key]; ok {
		dur, err := caddy.ParseDuration(val)
		if err != nil || dur <= 0 {
			return d.Errf("%s: invalid duration %q", key, val)
		}
		*dst = caddy.Duration(dur)
		return nil
	}
	n, err := strconv.ParseInt(val, 10, 0)
	if err != nil || n <= 0 {
		return d.Errf("%s: invalid number %q", key, val)
	}
	if dst, ok := o.Ints[key]; ok {
		*dst = int(n)
	} else {
		*o.Int64s[key] = n
	}
	return nil
}

// Parse reads the block (Read) and returns app, the struct the targets
// point into, as the global option's value.
func (o Options) Parse(d *caddyfile.Dispenser, app any) (any, error) {
	if err := o.Read(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: o.App, Value: caddyconfig.JSON(app, nil)}, nil
}

// RegisterApp registers an app module and the Caddyfile global option of
// the same name that configures it.
func RegisterApp(app caddy.Module, parse httpcaddyfile.UnmarshalGlobalFunc) {
	caddy.RegisterModule(app)
	httpcaddyfile.RegisterGlobalOption(string(app.CaddyModule().ID), parse)
}
