package zone

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/internal/network"
)

// backend answers with its name and the path it saw.
func backend(t *testing.T, name string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", name, r.Host, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(p)
	return port
}

func get(t *testing.T, h http.Handler, host, path string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("GET", "http://"+host+path, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// The table comes from the control plane's own renderer, so the router
// reads exactly what the control plane writes.
func TestRoutesRenderedConfig(t *testing.T) {
	site, v1, v2, api := backend(t, "site"), backend(t, "v1"), backend(t, "v2"), backend(t, "api")
	snap := &network.Snapshot{SubdomainBase: "apps.test", Apps: []network.App{
		{ID: 1, Slug: "site", WorkerID: 1, Zone: "de.apps.test", Upstream: "127.0.0.1:" + strconv.Itoa(site), Domains: []string{"www.site.example"}},
		{ID: 2, Slug: "shop", WorkerID: 1, Zone: "de.apps.test", Upstream: "127.0.0.1:1", Routes: []network.Route{
			{PathPrefix: "/", Port: v1, Protocol: "http", Weight: 50},
			{PathPrefix: "/", Port: v2, Protocol: "http", Weight: 50},
			{PathPrefix: "/api", Port: api, Protocol: "http", Weight: 100, StripPrefix: true},
		}},
	}}
	doc, err := network.Traefik{EntryPoints: []string{"web"}, ZoneHosts: true}.Render(snap)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := ParseTraefik(doc)
	if err != nil {
		t.Fatal(err)
	}
	r := New(Config{LocalIP: "127.0.0.1"})
	r.SetTable(tab)
	if code, body := get(t, r, "site.de.apps.test", "/x"); code != 200 || body != "site site.de.apps.test /x" {
		t.Fatalf("zone host: %d %q", code, body)
	}
	if code, body := get(t, r, "WWW.Site.Example:8080", "/"); code != 200 || !strings.HasPrefix(body, "site ") {
		t.Fatalf("custom domain, case and port: %d %q", code, body)
	}
	if code, body := get(t, r, "shop.apps.test", "/api/items"); code != 200 || body != "api shop.apps.test /items" {
		t.Fatalf("strip prefix: %d %q", code, body)
	}
	if code, body := get(t, r, "shop.apps.test", "/apiary"); code != 200 || strings.HasPrefix(body, "api ") {
		t.Fatalf("/apiary is not under /api: %d %q", code, body)
	}
	if code, body := get(t, r, "shop.apps.test", "/api"); code != 200 || body != "api shop.apps.test /" {
		t.Fatalf("/api itself: %d %q", code, body)
	}
	seen := map[string]int{}
	for i := 0; i < 400; i++ {
		_, body := get(t, r, "shop.de.apps.test", "/")
		seen[strings.Fields(body)[0]]++
	}
	if seen["v1"] < 120 || seen["v2"] < 120 {
		t.Fatalf("50/50 split gave %v", seen)
	}
	if code, _ := get(t, r, "other.apps.test", "/"); code != 404 {
		t.Fatalf("unknown host: %d", code)
	}
	// A redirect moves a retired port to its successor at once.
	r.cfg.Redirect = func(p int) int {
		if p == site {
			return v2
		}
		return p
	}
	if _, body := get(t, r, "site.apps.test", "/"); !strings.HasPrefix(body, "v2 ") {
		t.Fatalf("redirect not applied: %q", body)
	}
}

func TestRefusesUpstreamsOffTheWorker(t *testing.T) {
	doc := []byte(`{"http":{"routers":{"a":{"rule":"Host(` + "`a.test`" + `)","service":"a"}},"services":{"a":{"loadBalancer":{"servers":[{"url":"http://127.0.0.9:80"}]}}}}}`)
	tab, err := ParseTraefik(doc)
	if err != nil {
		t.Fatal(err)
	}
	r := New(Config{LocalIP: "127.0.0.1"})
	r.SetTable(tab)
	if code, _ := get(t, r, "a.test", "/"); code != http.StatusBadGateway {
		t.Fatalf("upstream on another host: %d", code)
	}
}

// Poll reads the control plane's document with the worker's token, keeps
// the last good table on errors and sends If-None-Match.
func TestPoll(t *testing.T) {
	site := backend(t, "site")
	doc := `{"http":{"routers":{"a":{"rule":"Host(` + "`site.z.test`" + `)","service":"a"}},"services":{"a":{"loadBalancer":{"servers":[{"url":"http://127.0.0.1:` + strconv.Itoa(site) + `"}]}}}}}`
	fail := false
	var inm string
	cp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Query().Get("worker_id") != "7" {
			http.Error(w, "no", 401)
			return
		}
		if fail {
			http.Error(w, "down", 503)
			return
		}
		inm = r.Header.Get("If-None-Match")
		if inm == `"e1"` {
			w.WriteHeader(304)
			return
		}
		w.Header().Set("ETag", `"e1"`)
		io.WriteString(w, doc)
	}))
	defer cp.Close()
	r := New(Config{URL: cp.URL, WorkerID: func() int64 { return 7 }, Token: func() string { return "tok" }, LocalIP: "127.0.0.1"})
	ctx := context.Background()
	if err := r.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, r, "site.z.test", "/"); code != 200 {
		t.Fatalf("after poll: %d", code)
	}
	if err := r.Poll(ctx); err != nil || inm != `"e1"` {
		t.Fatalf("second poll: %v, If-None-Match %q", err, inm)
	}
	fail = true
	if err := r.Poll(ctx); err == nil {
		t.Fatal("503 not reported")
	}
	if code, _ := get(t, r, "site.z.test", "/"); code != 200 {
		t.Fatalf("last good table lost: %d", code)
	}
}

func FuzzParseTraefik(f *testing.F) {
	f.Add([]byte(`{"http":{"routers":{"a":{"rule":"(Host(` + "`a`" + `) || Host(` + "`b`" + `)) && PathPrefix(` + "`/x`" + `)","service":"a","middlewares":["m"]}},"services":{"a":{"weighted":{"services":[{"name":"b","weight":3}]}},"b":{"loadBalancer":{"servers":[{"url":"http://127.0.0.1:1"}]}}},"middlewares":{"m":{"stripPrefix":{"prefixes":["/x"]}}}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ParseTraefik(b)
		if err != nil {
			return
		}
		for _, h := range tab.Hosts() {
			for _, rt := range tab.hosts[h] {
				if len(rt.Targets) == 0 || rt.Prefix == "" || rt.Prefix[0] != '/' {
					t.Fatalf("bad route %+v", rt)
				}
				rt.pick()
			}
			tab.Lookup(h, "/x/y")
		}
	})
}
