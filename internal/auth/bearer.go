package auth

import (
	"net/http"
	"strings"
)

// BearerToken returns the credential of an "Authorization: Bearer <token>"
// header (the scheme in any case, RFC 7235) and whether there was one. It
// is the one parser of that header in the project.
func BearerToken(h http.Header) (string, bool) {
	scheme, tok, ok := strings.Cut(h.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
