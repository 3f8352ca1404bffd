package dnsprov

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/wisehosting/wisehosting/internal/httpx"
)

// Config is what a provider is built from: an API credential, provider
// specific options (e.g. CloudNS's auth_id), an optional API root (for
// compatible endpoints and tests) and options for the shared retrying
// client every provider must use for its calls.
type Config struct {
	Token string
	// Options are the provider's own settings by name; a provider refuses
	// names it does not know.
	Options     map[string]string
	APIURL      string
	HTTPOptions []httpx.Option
}

// noOptions refuses provider options for a provider that takes none.
func (c Config) noOptions(provider string, known ...string) error {
	for k := range c.Options {
		if !slices.Contains(known, k) {
			return fmt.Errorf("%s: unknown option %q", provider, k)
		}
	}
	return nil
}

// Factory builds a provider from its configuration.
type Factory func(Config) (Provider, error)

var (
	regMu     sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a provider available under name. Registering a name twice
// is a programming error.
func Register(name string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := factories[name]; dup {
		panic("dnsprov: provider " + name + " registered twice")
	}
	factories[name] = f
}

// Names lists the registered providers, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []string
	for n := range factories {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// New returns the named provider.
func New(provider, token, apiURL string, opts ...httpx.Option) (Provider, error) {
	return Open(provider, Config{Token: token, APIURL: apiURL, HTTPOptions: opts})
}

// Open returns the named provider built from c.
func Open(provider string, c Config) (Provider, error) {
	regMu.RLock()
	f := factories[provider]
	regMu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("unknown DNS provider %q (%s)", provider, strings.Join(Names(), ", "))
	}
	return f(c)
}

func init() {
	Register("cloudflare", func(c Config) (Provider, error) {
		if c.Token == "" {
			return nil, errors.New("cloudflare: an API token is required")
		}
		if err := c.noOptions("cloudflare"); err != nil {
			return nil, err
		}
		return &Cloudflare{APIToken: c.Token, APIURL: c.APIURL, HTTPOptions: c.HTTPOptions}, nil
	})
	Register("cloudns", func(c Config) (Provider, error) {
		if err := c.noOptions("cloudns", "auth_id", "sub_auth_id", "sub_auth_user"); err != nil {
			return nil, err
		}
		p := &CloudNS{AuthID: c.Options["auth_id"], SubAuthID: c.Options["sub_auth_id"], SubAuthUser: c.Options["sub_auth_user"],
			Password: c.Token, APIURL: c.APIURL, HTTPOptions: c.HTTPOptions}
		n := 0
		for _, v := range []string{p.AuthID, p.SubAuthID, p.SubAuthUser} {
			if v != "" {
				n++
			}
		}
		if n != 1 || p.Password == "" {
			return nil, errors.New("cloudns: give the API user's password as the token and exactly one of the options auth_id, sub_auth_id, sub_auth_user")
		}
		return p, nil
	})
}
