package network

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCheckHostname(t *testing.T) {
	for h, ok := range map[string]bool{
		"de.example.com":                true,
		"a":                             true,
		"xn--bcher-kva.example":         true,
		"a-b.c0":                        true,
		"":                              false,
		"z`) || HostRegexp(`.+":         false,
		"de.example.com) || Host(x":     false,
		"DE.example.com":                false,
		"-a.example":                    false,
		"a-.example":                    false,
		"a..example":                    false,
		".example":                      false,
		"a b":                           false,
		"a\"b":                          false,
		"a_b.example":                   false,
		"ä.example":                     false,
		strings.Repeat("a", 64) + ".x":  false,
		strings.Repeat("a.", 127) + "a": false,
	} {
		if err := CheckHostname(h); (err == nil) != ok {
			t.Errorf("%q: err=%v, want ok=%v", h, err, ok)
		}
	}
}

func TestCheckPathPrefix(t *testing.T) {
	for p, ok := range map[string]bool{
		"/":                             true,
		"/api/v1":                       true,
		"/a%20b":                        true,
		"/x;y=1,(z)":                    true,
		"":                              false,
		"api":                           false,
		"/`) || HostRegexp(`.+":         false,
		"/a\"b":                         false,
		"/a b":                          false,
		"/%zz":                          false,
		"/%2":                           false,
		"/\n":                           false,
		"/" + strings.Repeat("a", 1001): false,
	} {
		if err := CheckPathPrefix(p); (err == nil) != ok {
			t.Errorf("%q: err=%v, want ok=%v", p, err, ok)
		}
	}
}

// parseRule reads a Traefik rule the way Traefik does (a Go expression:
// ||, &&, parentheses, matcher calls with string literals) and returns
// the arguments of each matcher. Anything else is an error.
func parseRule(rule string) (map[string][]string, error) {
	expr, err := parser.ParseExpr(rule)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	var walk func(n ast.Expr) error
	walk = func(n ast.Expr) error {
		switch n := n.(type) {
		case *ast.ParenExpr:
			return walk(n.X)
		case *ast.BinaryExpr:
			if n.Op != token.LOR && n.Op != token.LAND {
				return fmt.Errorf("operator %s", n.Op)
			}
			if err := walk(n.X); err != nil {
				return err
			}
			return walk(n.Y)
		case *ast.CallExpr:
			id, ok := n.Fun.(*ast.Ident)
			if !ok {
				return fmt.Errorf("call of %T", n.Fun)
			}
			for _, a := range n.Args {
				lit, ok := a.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return fmt.Errorf("argument %T of %s", a, id.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					return err
				}
				out[id.Name] = append(out[id.Name], v)
			}
			return nil
		}
		return fmt.Errorf("expression %T", n)
	}
	return out, walk(expr)
}

type renderedRouter struct {
	Rule    string `json:"rule"`
	Service string `json:"service"`
}

// checkRendered renders s for Traefik and for the Caddy proxy mode and
// checks that every rule parses back into Host and PathPrefix matchers
// only, naming exactly hosts of its own app that are valid host names and
// prefixes of its own routes.
func checkRendered(t *testing.T, s *Snapshot) {
	t.Helper()
	doc, err := Traefik{EntryPoints: []string{"web"}}.Render(s)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTP struct {
			Routers map[string]renderedRouter `json:"routers"`
		} `json:"http"`
	}
	if err := json.Unmarshal(doc, &cfg); err != nil {
		t.Fatalf("rendered JSON does not parse: %v\n%s", err, doc)
	}
	owner := map[string]*App{}
	for i := range s.Apps {
		owner["app-"+s.Apps[i].Slug] = &s.Apps[i]
	}
	for name, r := range cfg.HTTP.Routers {
		a := owner[name]
		if i := strings.LastIndex(name, "-p"); a == nil && i > 0 {
			a = owner[name[:i]]
		}
		if a == nil {
			t.Fatalf("router %q belongs to no app", name)
		}
		m, err := parseRule(r.Rule)
		if err != nil {
			t.Fatalf("rule %q does not parse as Traefik reads it: %v", r.Rule, err)
		}
		hosts := s.Hosts(a)
		for matcher, args := range m {
			switch matcher {
			case "Host":
				for _, h := range args {
					if CheckHostname(h) != nil || !slices.Contains(hosts, h) {
						t.Fatalf("rule %q of app %q matches host %q, not one of its own %v", r.Rule, a.Slug, h, hosts)
					}
				}
			case "Path", "PathPrefix":
				// A prefix p is rendered (Path(p) || PathPrefix(p/)).
				for _, p := range args {
					if CheckPathPrefix(p) != nil || !slices.ContainsFunc(a.Routes, func(rt Route) bool {
						return rt.PathPrefix == p || matcher == "PathPrefix" && rt.PathPrefix+"/" == p
					}) {
						t.Fatalf("rule %q has path %s %q, not one of the app's routes", r.Rule, matcher, p)
					}
				}
			default:
				t.Fatalf("rule %q uses matcher %s", r.Rule, matcher)
			}
		}
		if len(m["Host"]) == 0 {
			t.Fatalf("rule %q matches no host", r.Rule)
		}
	}
	for h := range BuildTable(s).Hosts {
		if CheckHostname(h) != nil {
			t.Fatalf("proxy table routes host %q", h)
		}
	}
}

// A zone, domain or path prefix written around the checks at the edge
// (a row from before them, or written by hand) cannot turn a rule into one
// that captures other hosts: invalid names are left out, and a value is
// never written where it could close its literal.
func TestRenderRefusesInjection(t *testing.T) {
	s := &Snapshot{SubdomainBase: "apps.test", Apps: []App{
		{ID: 1, Slug: "victim", WorkerID: 1, Zone: "de.test", Upstream: "127.0.0.1:3000"},
		{ID: 2, Slug: "evil", WorkerID: 2, Zone: "z`) || HostRegexp(`.+", Upstream: "127.0.0.2:3000",
			Domains: []string{"x`) || Host(`victim.apps.test", "evil.example"},
			Routes:  []Route{{PathPrefix: "/`) || HostRegexp(`.+", Port: 3001, Weight: 1}, {PathPrefix: "/ok", Port: 3002, Weight: 1}}},
	}}
	checkRendered(t, s)
	doc, _ := Traefik{}.Render(s)
	if strings.Contains(string(doc), "HostRegexp") || strings.Count(string(doc), "victim.apps.test") != 1 {
		t.Fatalf("injected matcher rendered:\n%s", doc)
	}
	if got := s.Hosts(&s.Apps[1]); !slices.Equal(got, []string{"evil.apps.test", "evil.example"}) {
		t.Fatalf("hosts of the evil app: %v", got)
	}
	// The escaping line of defence on its own: a value with a backquote
	// is written as a Go-quoted literal that parses back to itself.
	for _, v := range []string{"a`b", "x`) || HostRegexp(`.+", "\x00\n\"", "\xff"} {
		m, err := parseRule("Host(" + ruleArg(v) + ")")
		if err != nil || len(m["Host"]) != 1 || m["Host"][0] != v {
			t.Fatalf("ruleArg(%q) parsed back as %v, %v", v, m, err)
		}
	}
}

func FuzzRenderRules(f *testing.F) {
	f.Add("shop", "de.example.com", "apps.test", "www.shop.example", "/api", "/")
	f.Add("evil", "z`) || HostRegexp(`.+", "apps.test", "x`) || Host(`a", "/`)", "/\"")
	f.Add("a", "", "", "b.c", "/%41", "//")
	f.Fuzz(func(t *testing.T, slug, zone, base, domain, prefix1, prefix2 string) {
		if slug == "other" {
			return // two apps of one name are not a state the database allows
		}
		s := &Snapshot{SubdomainBase: base, Apps: []App{
			{ID: 1, Slug: slug, WorkerID: 1, Zone: zone, Upstream: "127.0.0.1:3000", Domains: []string{domain},
				Routes: []Route{{PathPrefix: prefix1, Port: 3001, Weight: 1}, {PathPrefix: prefix2, Port: 3002, Weight: 2}}},
			{ID: 2, Slug: "other", WorkerID: 2, Zone: zone, Upstream: "[::1]:3000", Domains: []string{domain + ".x"}},
		}}
		checkRendered(t, s)
	})
}
