package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/ratelimit"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// registerFailures limits failed worker registrations: 10 a minute per IP.
var registerFailures = ratelimit.New(10, time.Minute)

// workerRoutes serves worker registration and token refresh.
func (h *Handler) workerRoutes(mux *http.ServeMux) {
	wh, logger := h.wh, h.logger
	w := &workerEndpoints{wh: wh, logger: logger}
	mux.HandleFunc("POST /v1/workers/register", w.register)
	mux.HandleFunc("POST /v1/workers/refresh-token", w.refresh)
}

type workerEndpoints struct {
	wh     *core.App
	logger *zap.Logger
}

// TokenResponse is the answer to register and refresh-token.
type TokenResponse struct {
	WorkerID  int64     `json:"worker_id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// BearerToken returns the token of an "Authorization: Bearer" header, or "".
func BearerToken(r *http.Request) string {
	tok, _ := auth.BearerToken(r.Header)
	return tok
}

func (e *workerEndpoints) issue(w http.ResponseWriter, id int64) {
	key := e.wh.Keyring().DeriveKey(workers.TokenKeyPurpose, 32)
	tok, exp, err := workers.IssueToken(key, id, time.Duration(e.wh.WorkerTokenTTL), time.Now())
	if err != nil {
		Fail(w, e.logger, "issuing a worker token", err)
		return
	}
	WriteJSON(w, http.StatusOK, TokenResponse{WorkerID: id, Token: tok, ExpiresAt: exp.UTC()})
}

// register exchanges a worker's raw API key for a JWT. Body
// {"api_key": "whk_…"} or "Authorization: Bearer whk_…".
func (e *workerEndpoints) register(w http.ResponseWriter, r *http.Request) {
	ip := ClientIP(r)
	if registerFailures.Exhausted(ip) {
		w.Header().Set("Retry-After", "60")
		WriteError(w, http.StatusTooManyRequests, "too many failed registrations from this address")
		return
	}
	raw := BearerToken(r)
	if raw == "" {
		var body struct {
			APIKey string `json:"api_key"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
			WriteError(w, http.StatusBadRequest, "expected {\"api_key\": \"…\"}")
			return
		}
		raw = body.APIKey
	}
	wk, err := workers.Authenticate(r.Context(), e.wh.Pool(), raw)
	switch {
	case errors.Is(err, workers.ErrNotFound):
		registerFailures.Allow(ip)
		e.logger.Warn("worker registration refused", zap.String("reason", "unknown key"), zap.String("ip", ip))
		WriteError(w, http.StatusUnauthorized, "unknown worker key")
		return
	case err != nil:
		Fail(w, e.logger, "worker registration", err)
		return
	case wk.Revoked():
		registerFailures.Allow(ip)
		e.logger.Warn("worker registration refused", zap.String("reason", "revoked"), zap.Int64("worker", wk.ID), zap.String("ip", ip))
		WriteError(w, http.StatusForbidden, "worker key revoked")
		return
	}
	e.logger.Info("worker registered", zap.Int64("worker", wk.ID), zap.String("name", wk.Name), zap.String("ip", ip))
	e.issue(w, wk.ID)
}

// refresh exchanges a still-valid worker JWT for a new one. The JWT alone
// is not enough: the request carries a proof of the worker key
// (wsproto.SignRefresh over the JWT) in wsproto.SignatureHeader, so a
// stolen JWT cannot be kept alive.
func (e *workerEndpoints) refresh(w http.ResponseWriter, r *http.Request) {
	ip := ClientIP(r)
	if registerFailures.Exhausted(ip) {
		w.Header().Set("Retry-After", "60")
		WriteError(w, http.StatusTooManyRequests, "too many failed worker authentications from this address")
		return
	}
	key := e.wh.Keyring().DeriveKey(workers.TokenKeyPurpose, 32)
	tok := BearerToken(r)
	id, _, err := workers.ParseToken(key, tok, time.Now())
	if err != nil {
		registerFailures.Allow(ip)
		WriteError(w, http.StatusUnauthorized, err.Error())
		return
	}
	wk, err := workers.Get(r.Context(), e.wh.Pool(), id)
	if err != nil && !errors.Is(err, workers.ErrNotFound) {
		// Not the worker's fault: a 403 would say it is revoked.
		Fail(w, e.logger, "worker token refresh", err)
		return
	}
	if err != nil || wk.Revoked() {
		WriteError(w, http.StatusForbidden, "worker revoked or deleted")
		return
	}
	wkey, err := wk.Key(e.wh.Keyring())
	if err != nil {
		Fail(w, e.logger.With(zap.Int64("worker", id)), "opening the worker key", err)
		return
	}
	if err := wsproto.VerifyRefresh(wkey, tok, r.Header.Get(wsproto.SignatureHeader), time.Now()); err != nil {
		registerFailures.Allow(ip)
		e.logger.Warn("worker token refresh refused", zap.String("reason", err.Error()), zap.Int64("worker", id), zap.String("ip", ip))
		WriteError(w, http.StatusUnauthorized, "refreshing needs a proof of the worker key in "+wsproto.SignatureHeader+" ("+err.Error()+")")
		return
	}
	e.issue(w, id)
}
