package network

import (
	"strings"
	"testing"
)

// A path prefix is written into Traefik rules between backticks: whatever
// a user sends, an accepted prefix yields a rule of exactly one Path and
// one PathPrefix matcher, and the meaning /api = /api, /api/, /api/x.
func FuzzRoutePrefix(f *testing.F) {
	for _, s := range []string{"/", "/api", "/api/", "/a`) || Host(`x", "/a b", "/./x", "/v1/s", "//", "/a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prefix string) {
		err := ValidateRoute(StoredRoute{PathPrefix: prefix, Port: 80, Protocol: "http", Weight: 1}, 80)
		if err != nil || prefix == "/" { // / is every path: no matcher
			return
		}
		rule := PrefixRule(prefix)
		if strings.Count(rule, "`") != 4 || strings.ContainsAny(prefix, "`()|&\"' \t\r\n\\") {
			t.Fatalf("accepted %q gives rule %s", prefix, rule)
		}
		if prefix != "/" && (strings.HasSuffix(prefix, "/") || strings.Contains(prefix, "//")) {
			t.Fatalf("accepted %q: trailing or empty segment", prefix)
		}
		for _, seg := range strings.Split(prefix, "/")[1:] {
			if seg == "." || seg == ".." {
				t.Fatalf("accepted %q: dot segment", prefix)
			}
		}
	})
}

func TestPrefixRule(t *testing.T) {
	if got := PrefixRule("/api"); got != "(Path(`/api`) || PathPrefix(`/api/`))" {
		t.Fatal(got)
	}
}
