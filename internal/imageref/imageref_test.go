package imageref

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dig := "sha256:" + strings.Repeat("ab", 32)
	for _, ok := range []string{"registry.example.com/team/app:1.2", "ghcr.io/o/app@" + dig, "127.0.0.1:5000/app:v1",
		"docker.io/library/busybox:stable", "quay.io/a/b:latest@" + dig, "[::1]:5000/x/y:z"} {
		if err := Check(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"":                              "empty",
		"nginx:1":                       "must name its registry",
		"library/nginx:1":               "must name its registry",
		"registry.example.com/app":      "no tag or digest",
		"localhost/wisehosting/shop:d1": "local images",
		"-registry.io/x:1":              "not valid",
		"registry.io/x:1 --tls-verify":  "not valid",
		"registry.io/X:1":               "not valid",
		"registry.io/x@sha256:abc":      "not valid",
		"registry.io/x:1\n":             "not valid",
		"https://registry.io/x:1":       "not valid",
		"registry.io/x:" + strings.Repeat("a", 600): "not valid",
	} {
		err := Check(bad)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want %q", bad, err, why)
		}
	}
}

func TestCheckCredentials(t *testing.T) {
	if f, err := CheckCredentials("", ""); f != "" || err != nil {
		t.Error(f, err)
	}
	if f, err := CheckCredentials("ci-bot", "p@ss word"); f != "" || err != nil {
		t.Error(f, err)
	}
	for _, c := range [][3]string{{"", "x", "registry_username"}, {"a b", "x", "registry_username"}, {"u", "", "registry_password"}, {"u", "a\nb", "registry_password"}} {
		if f, err := CheckCredentials(c[0], c[1]); f != c[2] || err == nil {
			t.Errorf("%q: %q %v", c, f, err)
		}
	}
}

// Whatever the bytes, an accepted reference has no white space, does not
// start with a dash and carries a tag or digest.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"a.io/b:c", "a.io/b@sha256:" + strings.Repeat("0", 64), "-x", "a.io/b:c d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		if Check(ref) != nil {
			return
		}
		if strings.ContainsAny(ref, " \t\r\n\x00") || strings.HasPrefix(ref, "-") || !strings.ContainsAny(ref, ":@") || strings.HasPrefix(ref, "localhost/") {
			t.Fatalf("accepted %q", ref)
		}
	})
}
