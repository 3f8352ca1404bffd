// Package api is the `wisehosting_api` HTTP handler: health checks and the
// REST endpoints that workers and proxies call (worker registration and
// token refresh, routing provider documents). Paths it does not serve fall
// through to the next handler.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/errs"
)

func init() {
	caddy.RegisterModule(new(Handler))
	httpcaddyfile.RegisterHandlerDirective("wisehosting_api", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("wisehosting_api", httpcaddyfile.Before, "respond")
}

// Version is reported by /health; set at build time with -ldflags.
var Version = "dev"

// Handler serves the control plane's REST API.
type Handler struct {
	// Traefik entry points of the routers in /v1/traefik/proxy-config
	// (the proxy host's HTTPS entry point). Default: [websecure].
	ProxyEntryPoints []string `json:"proxy_entry_points,omitempty"`
	// Traefik certificate resolver named in /v1/traefik/proxy-config's
	// routers; "off" names none (certificates managed otherwise).
	// Default: letsencrypt.
	CertResolver string `json:"cert_resolver,omitempty"`
	// Traefik entry points of the routers in /v1/traefik/config (a
	// worker's local Traefik). Default: [web].
	WorkerEntryPoints []string `json:"worker_entry_points,omitempty"`

	wh     *core.App
	mux    *http.ServeMux
	logger *zap.Logger
	start  time.Time
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wisehosting_api",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision wires the routes.
func (h *Handler) Provision(ctx caddy.Context) (err error) {
	if h.wh, h.logger, err = core.Use(ctx); err != nil {
		return err
	}
	h.start = time.Now()
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /health", h.health)
	h.mux.HandleFunc("GET /healthz", h.health)
	if len(h.ProxyEntryPoints) == 0 {
		h.ProxyEntryPoints = []string{"websecure"}
	}
	if h.CertResolver == "" {
		h.CertResolver = "letsencrypt"
	}
	if len(h.WorkerEntryPoints) == 0 {
		h.WorkerEntryPoints = []string{"web"}
	}
	h.workerRoutes(h.mux)
	h.traefikRoutes(h.mux)
	h.gitHookRoutes(h.mux)
	h.certStorageRoutes(h.mux)
	return nil
}

// ServeHTTP serves the API's paths and passes others to next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if _, pattern := h.mux.Handler(r); pattern == "" {
		return next.ServeHTTP(w, r)
	}
	h.mux.ServeHTTP(w, r)
	return nil
}

type healthBody struct {
	Status   string `json:"status"`
	Database string `json:"database"`
	Version  string `json:"version"`
	Uptime   string `json:"uptime"`
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := healthBody{Status: "ok", Database: "ok", Version: Version, Uptime: time.Since(h.start).Round(time.Second).String()}
	code := http.StatusOK
	if ok, why := h.wh.Ready(); !ok {
		// Started before the database: not ready until it is reachable
		// and migrated.
		body.Status, body.Database, code = "starting", why, http.StatusServiceUnavailable
	} else if err := h.wh.Pool().Ping(ctx); err != nil {
		body.Status, body.Database, code = "degraded", "unreachable", http.StatusServiceUnavailable
		h.logger.Warn("health: database unreachable", zap.Error(err))
	}
	WriteJSON(w, code, body)
}

// WriteJSON writes v as a JSON response with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": msg}.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}

// Decode reads the request's JSON body into v, refusing unknown fields (an
// empty body leaves v as it is). A body that is not such JSON is answered
// 400 with a sentence saying what is wrong (DecodeError; "field" names the
// field at fault), and Decode returns false.
func Decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		msg, field := DecodeError(err)
		body := map[string]string{"error": "invalid JSON body: " + msg}
		if field != "" {
			body["field"] = field
		}
		WriteJSON(w, http.StatusBadRequest, body)
		return false
	}
	return true
}

// Fail answers err: an error for the person (internal/errs) with its
// kind's status and its sentence ({"error": …, "field": …}); anything else
// is logged under what and answered 500 "<what> failed", never shown. It
// is the one place errors become HTTP answers.
func Fail(w http.ResponseWriter, log *zap.Logger, what string, err error) {
	if e, ok := errs.As(err); ok && e.Kind != errs.Internal {
		body := map[string]string{"error": e.Msg}
		if e.Field != "" {
			body["field"] = e.Field
		}
		WriteJSON(w, e.Kind.Status(), body)
		return
	}
	if k := errs.KindOf(err); k != errs.Internal {
		WriteError(w, k.Status(), "not found")
		return
	}
	log.Error(what, zap.Error(err))
	WriteError(w, http.StatusInternalServerError, what+" failed")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	return parseHandler(h.Dispenser)
}

// parseHandler reads
//
//	wisehosting_api {
//		proxy_entry_points  <name>...
//		cert_resolver       <name>|off
//		worker_entry_points <name>...
//	}
//
// (the rest of the configuration is the wisehosting global option).
func parseHandler(d *caddyfile.Dispenser) (*Handler, error) {
	h := new(Handler)
	err := core.Options{App: "wisehosting_api", Hint: "the rest is configured in the wisehosting global option",
		Lists:   map[string]*[]string{"proxy_entry_points": &h.ProxyEntryPoints, "worker_entry_points": &h.WorkerEntryPoints},
		Strings: map[string]*string{"cert_resolver": &h.CertResolver}}.Read(d)
	return h, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
