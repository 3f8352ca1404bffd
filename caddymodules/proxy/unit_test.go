package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wisehosting/wisehosting/internal/network"
)

func setTable(t *network.Table) {
	state.table.Store(t)
}

func TestPermissionOnlyForKnownHosts(t *testing.T) {
	setTable(&network.Table{Hosts: map[string]*network.HostEntry{
		"site.apps.example.com": {App: "site", Paths: []network.PathEntry{{Prefix: "/", Upstreams: []network.Upstream{{Dial: "10.50.0.11:30001", Weight: 1}}}}},
		"www.customer.com":      {App: "site", Paths: []network.PathEntry{{Prefix: "/", Upstreams: []network.Upstream{{Dial: "10.50.0.11:30001", Weight: 1}}}}},
	}})
	p := new(Permission)
	for name, ok := range map[string]bool{
		"site.apps.example.com": true, "www.customer.com": true, "WWW.CUSTOMER.COM": true,
		"evil.com": false, "apps.example.com": false, "x.site.apps.example.com": false, "": false,
	} {
		if err := p.CertificateAllowed(context.Background(), name); (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestLongestPrefixAndWeights(t *testing.T) {
	setTable(&network.Table{Hosts: map[string]*network.HostEntry{
		"shop.test": {App: "shop", Paths: []network.PathEntry{
			{Prefix: "/api/v2", Upstreams: []network.Upstream{{Dial: "a:2", Weight: 1}}},
			{Prefix: "/api", StripPrefix: true, Upstreams: []network.Upstream{{Dial: "a:1", Weight: 1}}},
			{Prefix: "/", Upstreams: []network.Upstream{{Dial: "b:1", Weight: 3}, {Dial: "b:2", Weight: 1}, {Dial: "b:3", Weight: 0}}},
		}},
	}})
	for path, want := range map[string]string{"/api/v2/x": "/api/v2", "/api/v2": "/api/v2", "/api": "/api", "/api/": "/api", "/apix": "/", "/": "/", "/other": "/"} {
		if _, p := lookup("shop.test", path); p == nil || p.Prefix != want {
			t.Errorf("%s → %+v, want %s", path, p, want)
		}
	}
	counts := map[string]int{}
	u := new(Upstreams)
	for i := 0; i < 4000; i++ {
		ups, err := u.GetUpstreams(httptest.NewRequest("GET", "http://shop.test/", nil))
		if err != nil || len(ups) != 3 {
			t.Fatalf("%v %v", ups, err)
		}
		counts[ups[0].Dial]++
		if ups[2].Dial != "b:3" {
			t.Fatal("a zero-weight upstream was drawn before weighted ones")
		}
	}
	if share := float64(counts["b:1"]) / 4000; share < 0.70 || share > 0.80 {
		t.Fatalf("b:1 first in %.2f of draws, want 0.75", share)
	}
	if _, err := u.GetUpstreams(httptest.NewRequest("GET", "http://unknown.test/", nil)); err == nil {
		t.Fatal("unknown host got upstreams")
	}
}

func TestCaddyfile(t *testing.T) {
	in := `{
	on_demand_tls {
		permission wisehosting
	}
	wisehosting_proxy {
		control_plane https://cp.example.com
		token {file./etc/wisehosting/proxy_token}
		cache_file /var/lib/wisehosting/routes.json
		poll_interval 3s
	}
}

https:// {
	tls {
		on_demand
	}
	wisehosting_route
	reverse_proxy {
		dynamic wisehosting
		lb_policy first
	}
}
`
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	json.Unmarshal(out, &cfg)
	want := `{"control_plane":"https://cp.example.com","token":"{file./etc/wisehosting/proxy_token}","cache_file":"/var/lib/wisehosting/routes.json","poll_interval":3000000000}`
	if string(cfg.Apps["wisehosting_proxy"]) != want {
		t.Fatalf("proxy app %s", cfg.Apps["wisehosting_proxy"])
	}
	for _, s := range []string{`"handler":"wisehosting_route"`, `"source":"wisehosting"`, `"permission":{"module":"wisehosting"}`} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("adapted config lacks %s:\n%s", s, out)
		}
	}
	if _, _, err := (caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}).Adapt([]byte(strings.Replace(in, "poll_interval 3s", "poll_interval soon", 1)), nil); err == nil {
		t.Fatal("bad duration accepted")
	}
	fwd, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(strings.Replace(in, "wisehosting_route\n", "wisehosting_route {\n\t\tforward\n\t}\n", 1)), nil)
	if err != nil || !bytes.Contains(fwd, []byte(`"forward":true`)) {
		t.Fatalf("forward option: %v\n%s", err, fwd)
	}
	if _, _, err := (caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}).Adapt([]byte(strings.Replace(in, "wisehosting_route\n", "wisehosting_route {\n\t\tbackward\n\t}\n", 1)), nil); err == nil {
		t.Fatal("unknown wisehosting_route option accepted")
	}
}

// The direct path draws upstreams by weight, keeps Host, sets the
// forwarded headers, strips prefixes, and turns a dead upstream into a 502
// Caddy error; https upstreams go on to reverse_proxy.
func TestForward(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %s", r.Host, r.URL.Path, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"))
	}))
	defer app.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := dead.Listener.Addr().String()
	dead.Close()
	live := app.Listener.Addr().String()
	setTable(&network.Table{Hosts: map[string]*network.HostEntry{
		"shop.test": {App: "shop", Paths: []network.PathEntry{
			{Prefix: "/api", StripPrefix: true, Upstreams: []network.Upstream{{Dial: live, Weight: 1}}},
			{Prefix: "/dead", Upstreams: []network.Upstream{{Dial: deadAddr, Weight: 1}}},
			{Prefix: "/tls", Upstreams: []network.Upstream{{Dial: live, Scheme: "https", Weight: 1}}},
			{Prefix: "/", Upstreams: []network.Upstream{{Dial: deadAddr, Weight: 0}, {Dial: live, Weight: 1}}},
		}},
	}})
	rt := &Route{Forward: true}
	serve := func(path string) (*httptest.ResponseRecorder, error, bool) {
		r := httptest.NewRequest("GET", "http://shop.test"+path, nil)
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
		w := httptest.NewRecorder()
		nextCalled := false
		err := rt.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { nextCalled = true; return nil }))
		return w, err, nextCalled
	}
	if w, err, next := serve("/api/items"); err != nil || next || w.Body.String() != "shop.test /items 192.0.2.1 shop.test" {
		t.Fatalf("strip: %v next=%v %q", err, next, w.Body.String())
	}
	for i := 0; i < 50; i++ { // weight 0 never drawn
		if w, err, _ := serve("/"); err != nil || w.Code != 200 {
			t.Fatalf("weighted: %v %d", err, w.Code)
		}
	}
	var he caddyhttp.HandlerError
	if _, err, _ := serve("/dead/x"); !errors.As(err, &he) || he.StatusCode != http.StatusBadGateway {
		t.Fatalf("dead upstream: %v", err)
	}
	if _, err, next := serve("/tls"); err != nil || !next {
		t.Fatalf("https upstream not left to reverse_proxy: %v next=%v", err, next)
	}
}
