package webhooks

import (
	"net/url"
	"regexp"
	"strings"
)

// Webhook and channel URLs are write-only like env vars: the full value is
// stored encrypted and only the dispatcher reads it. Everyone, the team's
// admins included, sees Redact's form, which keeps enough (scheme, host,
// plain path words) to tell webhooks apart.

var (
	secretKeyRe = regexp.MustCompile(`(?i)token|key|secret|pass|auth|sig|code|hash|cred|session`)
	hasDigitRe  = regexp.MustCompile(`[0-9]`)
	hasLetterRe = regexp.MustCompile(`[A-Za-z]`)
)

// tokenLike: long, or mixing letters and digits (Slack's T0123ABCD,
// Discord's webhook ids and tokens, random ntfy topics).
func tokenLike(s string) bool {
	return len(s) >= 16 || (len(s) >= 8 && hasDigitRe.MatchString(s) && hasLetterRe.MatchString(s))
}

// Redact replaces the parts of rawURL that authenticate to its target with
// "***": the user information (user:pass, discord://token@id), token-like
// path segments, and the values of query parameters that are named like a
// secret or look like a token. A URL that does not parse is hidden whole.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return "***"
	}
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	if u.User != nil {
		b.WriteString("***@")
	}
	b.WriteString(u.Host)
	if p := u.EscapedPath(); p != "" {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			if tokenLike(s) {
				segs[i] = "***"
			}
		}
		b.WriteString(strings.Join(segs, "/"))
	}
	if u.RawQuery != "" {
		q := u.Query()
		var parts []string
		for _, kv := range strings.Split(u.RawQuery, "&") {
			k, _, _ := strings.Cut(kv, "=")
			key, _ := url.QueryUnescape(k)
			v := q.Get(key)
			if secretKeyRe.MatchString(key) || tokenLike(v) {
				v = "***"
			} else {
				v = url.QueryEscape(v)
			}
			parts = append(parts, url.QueryEscape(key)+"="+v)
		}
		b.WriteString("?" + strings.Join(parts, "&"))
	}
	return b.String()
}
