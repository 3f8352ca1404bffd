package network

import (
	"fmt"
	"strconv"
	"strings"
)

// CheckHostname reports whether h may name a host in a routing rule: a
// lowercase ASCII DNS name (letters, digits, hyphens; labels of 1–63
// characters that neither start nor end with a hyphen; 253 characters at
// most). Every value that becomes part of a host name in a proxy rule (a
// worker's zone, the subdomain base, an app's slug, a custom domain) is
// checked with it where it enters the system, and again when rules are
// rendered.
func CheckHostname(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%q is not a host name: it must have 1 to 253 characters", h)
	}
	for l := range strings.SplitSeq(h, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%q is not a host name: each dot-separated label needs 1 to 63 characters", h)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q is not a host name: a label cannot start or end with a hyphen", h)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is not a host name: use lowercase letters, digits, hyphens and dots", h)
			}
		}
	}
	return nil
}

// CheckPathPrefix reports whether p may be a route's path prefix: "/"
// followed by at most 1000 characters allowed in a URL path (RFC 3986
// pchar and "/", percent-escapes well formed).
func CheckPathPrefix(p string) error {
	if !strings.HasPrefix(p, "/") || len(p) > 1001 {
		return fmt.Errorf("path prefix %q must start with / and have at most 1001 characters", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			i += 2
		default:
			return fmt.Errorf("path prefix %q has a character not allowed in a URL path at position %d", p, i)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// ruleArg writes s as a string argument of a Traefik rule. Traefik parses
// rules as Go expressions: a raw (backquoted) literal cannot contain a
// backquote, so a value holding one, a control character or invalid
// UTF-8 is written as an interpreted Go literal instead, which encodes
// every byte. Values are validated before they get here; this keeps a
// value that slipped through from ever changing the rule's structure.
func ruleArg(s string) string {
	if strconv.CanBackquote(s) {
		return "`" + s + "`"
	}
	return strconv.Quote(s)
}
