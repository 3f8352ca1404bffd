package api

import "net/http"

// Hijackable finds the writer under Caddy's wrappers that can take over
// the connection (for a WebSocket upgrade).
func Hijackable(w http.ResponseWriter) http.ResponseWriter {
	for {
		if _, ok := w.(http.Hijacker); ok {
			return w
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}
