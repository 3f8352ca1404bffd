package certstore

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"certificates/acme-v02.api.letsencrypt.org-directory/www.customer.com/www.customer.com.crt": true,
		"certificates/127.0.0.1-14000-dir/wildcard_.apps.test/wildcard_.apps.test.key":              true,
		"acme/acme-v02.api.letsencrypt.org-directory/users/ops@example.com/ops.json":                true,
		"acme/127.0.0.1-14000-dir/challenge_tokens/www.customer.com.json":                           true,
		"ocsp/www.customer.com-1a2b3c": true,
		"last_clean.json":              true,
		// Traversal and other namespaces.
		"certificates/../../etc/passwd":  false,
		"certificates/a/../../pki/root":  false,
		"../certificates/x":              false,
		"/certificates/x":                false,
		"certificates/x/":                false,
		"certificates//x":                false,
		"certificates/./x":               false,
		"certificates/..x/y":             false,
		"pki/authorities/local/root.key": false,
		"ech/configs/1":                  false,
		"stek":                           false,
		"certificates":                   false, // a directory, not a key
		"certificates/a b":               false,
		"certificates/a\x00b":            false,
		"certificates/a\\b":              false,
		"certificates/" + strings.Repeat("a", MaxKeyLen): false,
		"": false,
	} {
		if err := CheckKey(key); (err == nil) != ok {
			t.Errorf("CheckKey(%q) = %v", key, err)
		}
	}
	for p, ok := range map[string]bool{"certificates": true, "acme/x/users": true, "ocsp": true, "": false, "pki": false, "certificates/..": false, "/": false} {
		if err := CheckPrefix(p); (err == nil) != ok {
			t.Errorf("CheckPrefix(%q) = %v", p, err)
		}
	}
	for n, ok := range map[string]bool{"issue_cert_www.customer.com": true, "issue_cert_*.apps.test": true, "storage_clean": true, "a/b": false, "": false, "a b": false} {
		if err := CheckLockName(n); (err == nil) != ok {
			t.Errorf("CheckLockName(%q) = %v", n, err)
		}
	}
}

// FuzzCheckKey: an accepted key or prefix is a clean relative path that
// stays inside the cache directory and inside a certificate namespace.
func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"certificates/a/b.crt", "acme/x/users/u@x/u.key", "ocsp/x", "last_clean.json", "../x", "certificates/../x", "pki/x", "certificates/.../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		for _, check := range []func(string) error{CheckKey, CheckPrefix} {
			if check(key) != nil {
				continue
			}
			if filepath.Clean(key) != key || filepath.IsAbs(key) || strings.Contains(key, "..") || strings.Contains(key, "\\") {
				t.Fatalf("accepted %q", key)
			}
			rel, err := filepath.Rel("/cache", filepath.Join("/cache", key))
			if err != nil || rel != key {
				t.Fatalf("%q escapes the cache (%q)", key, rel)
			}
			top := strings.SplitN(key, "/", 2)[0]
			if !namespaces[top] && key != lastClean && !isProbe(key) {
				t.Fatalf("%q is outside the certificate namespaces", key)
			}
		}
	})
}
