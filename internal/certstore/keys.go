package certstore

import (
	"errors"
	"strings"
)

// Limits of what the storage accepts.
const (
	MaxKeyLen   = 512
	MaxValueLen = 1 << 20
	maxDepth    = 8
)

// Top-level namespaces certmagic and Caddy's TLS app use for ACME
// certificates: issued certificates and their keys and metadata, ACME
// accounts and the distributed challenge tokens (under acme/), OCSP
// staples, the storage cleaner's marker and the write-read-delete probe
// certmagic runs before obtaining a certificate. Nothing else (Caddy's local
// CA under pki/, for one) is served to proxies.
var namespaces = map[string]bool{"certificates": true, "acme": true, "ocsp": true}

const lastClean = "last_clean.json"

// ErrInvalidKey is returned for keys outside the certificate namespaces
// or not in certmagic's key syntax.
var ErrInvalidKey = errors.New("not a certificate storage key")

// CheckKey accepts a certmagic storage key of a file: components joined by
// "/", each made of the characters certmagic's KeyBuilder.Safe keeps
// (letters, digits, _ @ . -), none empty, "." or holding "..", under one of the
// certificate namespaces. Keys are therefore also safe relative file paths.
func CheckKey(key string) error {
	if key == lastClean || isProbe(key) {
		return nil
	}
	return checkPath(key, 2)
}

// CheckPrefix accepts a directory of certmagic storage that may be listed:
// a namespace or a directory below one.
func CheckPrefix(prefix string) error {
	return checkPath(prefix, 1)
}

// isProbe matches certmagic's storage probe key, rw_test_<digits>.
func isProbe(key string) bool {
	d, ok := strings.CutPrefix(key, "rw_test_")
	if !ok || d == "" || len(d) > 20 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

func checkPath(p string, minParts int) error {
	if p == "" || len(p) > MaxKeyLen {
		return ErrInvalidKey
	}
	parts := strings.Split(p, "/")
	if len(parts) < minParts || len(parts) > maxDepth || !namespaces[parts[0]] {
		return ErrInvalidKey
	}
	for _, c := range parts {
		if c == "" || c == "." || strings.Contains(c, "..") {
			return ErrInvalidKey
		}
		for i := 0; i < len(c); i++ {
			if !safeByte(c[i]) {
				return ErrInvalidKey
			}
		}
	}
	return nil
}

func safeByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '@' || b == '.' || b == '-'
}

// CheckLockName accepts a certmagic lock name (e.g. issue_cert_<domain>,
// storage_clean): printable ASCII without "/", at most MaxKeyLen bytes.
func CheckLockName(name string) error {
	if name == "" || len(name) > MaxKeyLen {
		return errors.New("invalid lock name")
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] > '~' || name[i] == '/' || name[i] == '\\' {
			return errors.New("invalid lock name")
		}
	}
	return nil
}

// CheckHolder accepts a lock holder id: 16 to 64 lowercase hex digits.
func CheckHolder(h string) error {
	if len(h) < 16 || len(h) > 64 {
		return errors.New("invalid lock holder")
	}
	for i := 0; i < len(h); i++ {
		if !(h[i] >= '0' && h[i] <= '9' || h[i] >= 'a' && h[i] <= 'f') {
			return errors.New("invalid lock holder")
		}
	}
	return nil
}
