package auth

import (
	"net/http"
	"testing"
)

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc":     "abc",
		"bearer abc":     "abc",
		"BEARER  abc ":   "abc",
		"Basic abc":      "",
		"Bearer":         "",
		"Bearer ":        "",
		"":               "",
		"Bearerabc":      "",
		"Token Bearer x": "",
	} {
		h := http.Header{}
		if in != "" {
			h.Set("Authorization", in)
		}
		got, ok := BearerToken(h)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", in, got, ok, want)
		}
	}
}

func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer abc")
	f.Add("bearer  \t x")
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{"Authorization": {v}}
		if tok, ok := BearerToken(h); ok != (tok != "") {
			t.Fatalf("%q: %q %v", v, tok, ok)
		}
	})
}
