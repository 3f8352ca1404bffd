package api

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/plans"
	"github.com/wisehosting/wisehosting/internal/ratelimit"
)

// MaxGitHookBody bounds an inbound git webhook. Push payloads list at most
// 20 commits (GitHub, GitLab); 5 MiB is far above real deliveries.
const MaxGitHookBody = 5 << 20

// gitHookLimiter is shared by every config so a reload does not reset it:
// 60 deliveries a minute per client IP.
var gitHookLimiter = ratelimit.New(60, time.Minute)

// PlanPolicy is deploys.PlanPolicy (kept for the handlers that call it).
func PlanPolicy(reg *plans.Registry) deploys.Policy { return deploys.PlanPolicy(reg) }

// gitHookRoutes serves the git providers' push and pull-request webhooks.
func (h *Handler) gitHookRoutes(mux *http.ServeMux) {
	wh, logger := h.wh, h.logger
	mux.HandleFunc("POST /v1/hooks/{provider}/{app}", func(w http.ResponseWriter, r *http.Request) {
		serveGitHook(w, r, wh, logger)
	})
}

// ClientIP is the request's client address as Caddy determined it (honouring
// trusted_proxies), else the connection's remote address.
func ClientIP(r *http.Request) string {
	if v, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && v != "" {
		return v
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// serveGitHook receives a provider's webhook for one app:
// POST /v1/hooks/<github|gitlab|bitbucket|codeberg>/<app id>.
func serveGitHook(w http.ResponseWriter, r *http.Request, wh *core.App, logger *zap.Logger) {
	ip := ClientIP(r)
	if !gitHookLimiter.Allow(ip) {
		w.Header().Set("Retry-After", "60")
		WriteError(w, http.StatusTooManyRequests, "too many webhook deliveries from this address")
		return
	}
	provider := r.PathValue("provider")
	if !gitproviders.Known(provider) {
		WriteError(w, http.StatusNotFound, "unknown git provider")
		return
	}
	appID, err := strconv.ParseInt(r.PathValue("app"), 10, 64)
	if err != nil || appID <= 0 {
		WriteError(w, http.StatusNotFound, "unknown app")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxGitHookBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteError(w, http.StatusRequestEntityTooLarge, "webhook body too large")
			return
		}
		WriteError(w, http.StatusBadRequest, "reading body")
		return
	}
	ctx := r.Context()
	app, err := deploys.LoadApp(ctx, wh.Pool(), appID)
	if err != nil {
		// Same answer as a bad signature: do not reveal which app ids exist.
		logger.Info("git webhook: rejected", zap.String("reason", "unknown app"), zap.Int64("app", appID), zap.String("ip", ip))
		WriteError(w, http.StatusUnauthorized, "invalid signature")
		return
	}
	secret, err := deploys.HookSecret(ctx, wh.Pool(), wh.Keyring(), appID, false)
	if err == nil {
		err = gitproviders.VerifySignature(provider, []byte(secret), r.Header, body)
	}
	if err != nil {
		logger.Info("git webhook: rejected", zap.String("reason", err.Error()), zap.Int64("app", appID),
			zap.String("provider", provider), zap.String("ip", ip))
		WriteError(w, http.StatusUnauthorized, "invalid signature")
		return
	}
	ev, err := gitproviders.ParseEvent(provider, r.Header, body)
	if err != nil {
		WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	out, err := deploys.HandleEvent(ctx, wh.Pool(), app, ev, PlanPolicy(wh.PlanRegistry()))
	if err != nil {
		Fail(w, logger.With(zap.Int64("app", appID)), "handling the git event", err)
		return
	}
	logger.Info("git webhook", zap.String("provider", provider), zap.Int64("app", appID), zap.String("delivery", ev.DeliveryID),
		zap.String("action", out.Action), zap.Int64("deployment", out.DeploymentID))
	code := http.StatusOK
	if out.JobID != 0 {
		code = http.StatusAccepted
	}
	WriteJSON(w, code, out)
}
