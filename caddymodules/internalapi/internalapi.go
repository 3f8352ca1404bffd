// Package internalapi is the loopback internal API for operator tooling:
// the Caddy app `wisehosting_internal` runs its own HTTP listener on a
// loopback address, only when the core app has an internal_token, and
// answers only requests carrying that token (compared in constant time).
//
//	{
//		wisehosting_internal {
//			listen 127.0.0.1:2021
//		}
//	}
//
// Endpoints (JSON):
//
//	GET  /v1/workers                    every worker
//	POST /v1/workers                    add one: {"name", "zone", "wg_ip"} → the worker and its API key (shown once)
//	PATCH /v1/workers/{name}            set its zone and/or mesh IP: {"zone", "wg_ip"}
//	GET  /v1/apps                       every app: team, plan, status, placement, limits
//	GET  /v1/jobs?state=failed&limit=N  recent jobs, newest first
//	POST /v1/workers/{name}/drain       no new jobs on the worker (apps keep running)
//	POST /v1/workers/{name}/resume      place jobs on it again
//	POST /v1/jobs/{id}/requeue          enqueue a failed or cancelled job again
package internalapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/apps"
	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/workers"
)

func init() {
	core.RegisterApp(new(App), parseGlobalOption)
}

// DefaultListen is the listener address when none is configured.
const DefaultListen = "127.0.0.1:2021"

// App is the internal API.
type App struct {
	// Listen is a loopback host:port. Default: 127.0.0.1:2021. Any other
	// address is refused: this API is for tools on the same host.
	Listen string `json:"listen,omitempty"`

	ctx    caddy.Context
	wh     *core.App
	logger *zap.Logger
	srv    *http.Server
	ln     net.Listener
	wg     sync.WaitGroup
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "wisehosting_internal", New: func() caddy.Module { return new(App) }}
}

// Provision finds the core app.
func (a *App) Provision(ctx caddy.Context) (err error) {
	if a.wh, a.logger, err = core.Use(ctx); err != nil {
		return err
	}
	a.ctx = ctx
	if a.Listen == "" {
		a.Listen = DefaultListen
	}
	return nil
}

// CheckLoopback accepts only a loopback IP literal or localhost with a
// port.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen %q: %v", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("listen %q: invalid port", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen %q: the internal API binds only to a loopback address (127.0.0.1, ::1), never %q", addr, host)
	}
	return nil
}

// Validate refuses non-loopback listeners.
func (a *App) Validate() error {
	return CheckLoopback(a.Listen)
}

// Start listens when an internal token is configured.
func (a *App) Start() error {
	if a.wh.InternalToken == "" {
		a.logger.Info("internal API off: no internal_token configured")
		return nil
	}
	host, port, _ := net.SplitHostPort(a.Listen)
	if host == "localhost" {
		host = "127.0.0.1"
	}
	// Caddy's listener (SO_REUSEPORT): on a config reload the new app
	// binds before the old one closes.
	na, err := caddy.ParseNetworkAddress("tcp/" + net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("internal API: %w", err)
	}
	l, err := na.Listen(a.ctx, 0, net.ListenConfig{})
	if err != nil {
		return fmt.Errorf("internal API: listening on %s: %w", a.Listen, err)
	}
	ln, ok := l.(net.Listener)
	if !ok {
		return fmt.Errorf("internal API: %s is not a stream listener", a.Listen)
	}
	a.ln = ln
	a.srv = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("internal API stopped", zap.Error(err))
		}
	}()
	a.logger.Info("internal API listening", zap.String("address", ln.Addr().String()))
	return nil
}

// Addr is the listener's address (nil when off).
func (a *App) Addr() net.Addr {
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// Stop closes the listener.
func (a *App) Stop() error {
	if a.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	a.wg.Wait()
	return err
}

// Handler serves the API (authenticated).
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/workers", a.listWorkers)
	mux.HandleFunc("POST /v1/workers", a.addWorker)
	mux.HandleFunc("PATCH /v1/workers/{name}", a.placeWorker)
	mux.HandleFunc("GET /v1/apps", a.listApps)
	mux.HandleFunc("GET /v1/jobs", a.listJobs)
	mux.HandleFunc("POST /v1/workers/{name}/drain", a.drain(true))
	mux.HandleFunc("POST /v1/workers/{name}/resume", a.drain(false))
	mux.HandleFunc("POST /v1/jobs/{id}/requeue", a.requeue)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := auth.BearerToken(r.Header)
		want := a.wh.InternalToken
		if !ok || want == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) != 1 {
			api.WriteError(w, http.StatusUnauthorized, "missing or invalid internal token")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if _, pattern := mux.Handler(r); pattern == "" {
			// No route (404) or the wrong method (405): the mux's answer,
			// as JSON.
			sw := &statusOnly{header: http.Header{}}
			mux.ServeHTTP(sw, r)
			if allow := sw.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			api.WriteError(w, sw.code, strings.ToLower(http.StatusText(sw.code)))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// statusOnly keeps the status code and headers of a response, not its body.
type statusOnly struct {
	header http.Header
	code   int
}

func (s *statusOnly) Header() http.Header { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return len(b), nil
}
func (s *statusOnly) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
}

// fail answers err through the one mapper (api.Fail): an error of the
// services' vocabulary with its status and sentence, anything else 500
// "<what> failed" with the cause logged.
func (a *App) fail(w http.ResponseWriter, what string, err error) {
	api.Fail(w, a.logger, what, err)
}

func (a *App) listWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := workers.List(r.Context(), a.wh.Pool())
	if err != nil {
		a.fail(w, "listing workers", err)
		return
	}
	if ws == nil {
		ws = []workers.Worker{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"workers": ws})
}

func (a *App) listApps(w http.ResponseWriter, r *http.Request) {
	out, err := apps.All(r.Context(), a.wh.Pool())
	if err != nil {
		a.fail(w, "listing apps", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"apps": out})
}

type jobRow struct {
	ID           int64     `json:"id"`
	Kind         string    `json:"kind"`
	State        string    `json:"state"`
	AppID        *int64    `json:"app_id,omitempty"`
	DeploymentID *int64    `json:"deployment_id,omitempty"`
	WorkerID     *int64    `json:"worker_id,omitempty"`
	Attempt      int       `json:"attempt"`
	Error        string    `json:"error,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

func (a *App) listJobs(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil {
			a.fail(w, "listing jobs", errs.Field("limit", "limit must be between 1 and 1000"))
			return
		}
	}
	list, err := jobs.List(r.Context(), a.wh.Pool(), r.URL.Query().Get("state"), limit)
	if err != nil {
		a.fail(w, "listing jobs", err)
		return
	}
	out := make([]jobRow, len(list))
	for i, j := range list {
		out[i] = jobRow{ID: j.ID, Kind: j.Kind, State: j.State, AppID: ref(j.AppID), DeploymentID: ref(j.DeploymentID),
			WorkerID: ref(j.WorkerID), Attempt: j.Attempt, Error: j.Error, CreatedAt: j.CreatedAt}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

// ref is id's address, nil for 0 (none).
func ref(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// addWorker creates a worker; its zone and mesh IP are set here (or with
// PATCH), never by the worker itself.
func (a *App) addWorker(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
		Zone string `json:"zone"`
		WGIP string `json:"wg_ip"`
	}
	if !api.Decode(w, r, &body) {
		return
	}
	wk, key, err := workers.Add(r.Context(), a.wh.Pool(), a.wh.Keyring(), body.Name, body.Zone, body.WGIP)
	if err != nil {
		a.fail(w, "adding the worker", err)
		return
	}
	a.logger.Info("internal API: worker added", zap.String("worker", wk.Name), zap.String("zone", wk.Zone), zap.String("wg_ip", wk.WGIP))
	api.WriteJSON(w, http.StatusCreated, map[string]any{"worker": wk, "api_key": key})
}

// placeWorker changes a worker's zone and/or mesh IP.
func (a *App) placeWorker(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Zone *string `json:"zone"`
		WGIP *string `json:"wg_ip"`
	}
	if !api.Decode(w, r, &body) {
		return
	}
	name := r.PathValue("name")
	if body.Zone == nil && body.WGIP == nil {
		a.fail(w, "changing the worker", errs.Invalidf(`give "zone" and/or "wg_ip"`))
		return
	}
	wk, err := workers.Place(r.Context(), a.wh.Pool(), name, body.Zone, body.WGIP)
	if err != nil {
		a.fail(w, "changing the worker", err)
		return
	}
	a.logger.Info("internal API: worker placement changed", zap.String("worker", name), zap.String("zone", wk.Zone), zap.String("wg_ip", wk.WGIP))
	api.WriteJSON(w, http.StatusOK, wk)
}

func (a *App) drain(draining bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		wk, err := workers.SetDraining(r.Context(), a.wh.Pool(), name, draining)
		if err != nil {
			a.fail(w, "changing the worker", err)
			return
		}
		a.logger.Info("internal API: worker drain changed", zap.String("worker", name), zap.Bool("draining", draining))
		api.WriteJSON(w, http.StatusOK, wk)
	}
}

func (a *App) requeue(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		a.fail(w, "enqueueing the job", errs.Field("id", "job id must be a positive integer"))
		return
	}
	var newID int64
	err = pgx.BeginFunc(r.Context(), a.wh.Pool(), func(tx pgx.Tx) error {
		var err error
		newID, err = deploys.Requeue(r.Context(), tx, id)
		return err
	})
	if err != nil {
		a.fail(w, "enqueueing the job", err)
		return
	}
	a.logger.Info("internal API: job enqueued again", zap.Int64("job", id), zap.Int64("new_job", newID))
	api.WriteJSON(w, http.StatusOK, map[string]any{"job_id": newID, "requeued": id})
}

// parseGlobalOption reads:
//
//	wisehosting_internal {
//		listen <loopback host:port>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("wisehosting_internal may appear only once")
	}
	a := new(App)
	return core.Options{App: "wisehosting_internal", Block: func(d *caddyfile.Dispenser, key string) (bool, error) {
		if key != "listen" {
			return false, nil
		}
		if !d.AllArgs(&a.Listen) {
			return true, d.ArgErr()
		}
		if err := CheckLoopback(a.Listen); err != nil {
			return true, d.Err(err.Error())
		}
		return true, nil
	}}.Parse(d, a)
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
