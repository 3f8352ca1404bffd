package api

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/workers"
)

// routing serves the proxies' configuration documents.
type routing struct {
	wh       *core.App
	logger   *zap.Logger
	provider *network.Provider
	proxy    network.Traefik
	worker   network.Traefik
}

// traefikRoutes serves the routing documents of proxies and workers, and has the control plane push zone tables to workers.
func (h *Handler) traefikRoutes(mux *http.ServeMux) {
	resolver := h.CertResolver
	if resolver == "off" {
		resolver = ""
	}
	rt := &routing{wh: h.wh, logger: h.logger,
		provider: h.wh.Routing(),
		proxy:    network.Traefik{EntryPoints: h.ProxyEntryPoints, CertResolver: resolver},
		worker:   network.Traefik{EntryPoints: h.WorkerEntryPoints, ZoneHosts: true},
	}
	h.wh.PushZoneTables(rt.worker)
	mux.HandleFunc("GET /v1/traefik/config", rt.workerConfig)
	mux.HandleFunc("GET /v1/traefik/proxy-config", rt.proxyConfig)
	mux.HandleFunc("GET /v1/proxy/routes", rt.proxyTable)
}

// authorized checks the proxy token in constant time.
func (rt *routing) authorized(w http.ResponseWriter, r *http.Request) bool {
	want := rt.wh.ProxyToken
	if want == "" {
		WriteError(w, http.StatusServiceUnavailable, "proxy_token is not configured on the control plane")
		return false
	}
	got := BearerToken(r)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		WriteError(w, http.StatusUnauthorized, "invalid proxy token")
		return false
	}
	return true
}

// workerAuthorized reports whether the request carries a valid JWT of
// worker id that is not revoked.
func (rt *routing) workerAuthorized(r *http.Request, id int64) bool {
	tok := BearerToken(r)
	if strings.Count(tok, ".") != 2 {
		return false // not a JWT: maybe the proxy token
	}
	key := rt.wh.Keyring().DeriveKey(workers.TokenKeyPurpose, 32)
	got, _, err := workers.ParseToken(key, tok, time.Now())
	if err != nil || got != id {
		return false
	}
	wk, err := workers.Get(r.Context(), rt.wh.Pool(), id)
	return err == nil && !wk.Revoked()
}

// serveDoc answers 304 only to a client that sent If-None-Match naming the
// document, or "*" (any current document: RFC 9110 13.1.2). Traefik's HTTP
// provider never sends it, and treats anything but 200 as an error.
func serveDoc(w http.ResponseWriter, r *http.Request, d *network.Doc) {
	w.Header().Set("ETag", d.ETag)
	w.Header().Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(t); t == "*" || strings.TrimPrefix(t, "W/") == d.ETag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(d.Body)))
	w.WriteHeader(http.StatusOK)
	w.Write(d.Body)
}

func (rt *routing) proxyConfig(w http.ResponseWriter, r *http.Request) {
	if !rt.authorized(w, r) {
		return
	}
	d, err := rt.provider.Get(r.Context(), rt.proxy.Key("traefik-proxy"), rt.proxy, nil)
	if err != nil {
		Fail(w, rt.logger, "building the proxy's routing config", err)
		return
	}
	serveDoc(w, r, d)
}

// workerConfig serves one worker's zone routing. It accepts the proxy
// token (a local Traefik configured by the operator) or the worker's own
// JWT for its own worker_id (the agent's built-in zone router).
func (rt *routing) workerConfig(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.URL.Query().Get("worker_id"), 10, 64)
	if err != nil || id <= 0 {
		WriteError(w, http.StatusBadRequest, "worker_id must be a positive integer")
		return
	}
	if !rt.workerAuthorized(r, id) && !rt.authorized(w, r) {
		return
	}
	d, err := rt.provider.Get(r.Context(), rt.worker.Key("traefik-worker-"+strconv.FormatInt(id, 10)), rt.worker,
		func(s *network.Snapshot) *network.Snapshot { return s.ForWorker(id) })
	if err != nil {
		Fail(w, rt.logger.With(zap.Int64("worker", id)), "building the worker's routing config", err)
		return
	}
	serveDoc(w, r, d)
}

// proxyTable serves the Caddy proxy mode's table. With ?wait=1 and an
// If-None-Match naming the current table it long-polls: the answer comes
// as soon as routing changes, or 304 after 25 seconds.
func (rt *routing) proxyTable(w http.ResponseWriter, r *http.Request) {
	if !rt.authorized(w, r) {
		return
	}
	deadline := time.After(25 * time.Second)
	for {
		changed := rt.provider.Changed()
		d, err := rt.provider.Get(r.Context(), "caddy-proxy", network.CaddyProxy{}, nil)
		if err != nil {
			Fail(w, rt.logger, "building the routing table", err)
			return
		}
		inm := r.Header.Get("If-None-Match")
		if r.URL.Query().Get("wait") == "" || inm == "" || inm != d.ETag {
			serveDoc(w, r, d)
			return
		}
		select {
		case <-changed:
		case <-deadline:
			serveDoc(w, r, d)
			return
		case <-r.Context().Done():
			return
		}
	}
}
