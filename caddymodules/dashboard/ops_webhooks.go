package dashboard

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/webhooks"
)

// webhookEvents is what the webhook screens offer, "*" (all) first.
var webhookEvents = append([]string{events.AllTeamEvents}, events.TeamEvents...)

func checkEvents(evs []string) string {
	if len(evs) > len(webhookEvents) {
		return "too many events"
	}
	for _, e := range evs {
		if !events.Subscribable(e) {
			return "unknown event " + strconv.Quote(e) + "; known: " + strings.Join(webhookEvents, ", ")
		}
	}
	return ""
}

// hostOf is what the audit log records of a webhook URL: the host only,
// since paths and queries often hold tokens.
func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return ""
}

// listWebhooks lists the team's webhooks; ?app=<id> keeps the team-wide
// ones and those bound to that app.
func (h *Handler) listWebhooks(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	app, _ := strconv.ParseInt(r.URL.Query().Get("app"), 10, 64)
	all, err := h.ops.hooks.List(r.Context(), team)
	if err != nil {
		h.fail(w, "listing webhooks", err)
		return
	}
	out := []webhooks.Webhook{}
	for _, wh := range all {
		if app == 0 || wh.AppID == 0 || wh.AppID == app {
			out = append(out, wh)
		}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": out, "events": webhookEvents})
}

// createWebhook adds an endpoint (kind http, signed; the secret is in this
// answer only) or a chat channel (kind shoutrrr), team-wide or bound to
// one of the team's apps.
func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in struct {
		URL    string   `json:"url"`
		Kind   string   `json:"kind"`
		Events []string `json:"events"`
		AppID  int64    `json:"app_id"`
	}
	if !decode(w, r, &in) {
		return
	}
	if msg := checkEvents(in.Events); msg != "" {
		unprocessable(w, msg)
		return
	}
	if len(in.URL) > 2000 {
		unprocessable(w, "the URL has at most 2000 characters")
		return
	}
	var n int
	if in.AppID != 0 {
		// Another team's app looks like no app.
		if err := h.wh.Pool().QueryRow(r.Context(), "SELECT 1 FROM apps WHERE id = $1 AND team_id = $2", in.AppID, team).Scan(&n); err != nil {
			h.fail(w, "creating the webhook", err)
			return
		}
	}
	if err := h.wh.Pool().QueryRow(r.Context(), "SELECT count(*) FROM webhooks WHERE team_id = $1", team).Scan(&n); err != nil {
		h.fail(w, "creating the webhook", err)
		return
	}
	if n >= 50 {
		unprocessable(w, "a team has at most 50 webhooks")
		return
	}
	var created webhooks.Webhook
	var secret string
	var err error
	switch in.Kind {
	case "", "http":
		if err = webhooks.CheckTarget(in.URL, h.ops.hookGuard); err == nil {
			created, secret, err = h.ops.hooks.Create(r.Context(), team, in.AppID, in.URL, in.Events)
		}
	case "shoutrrr":
		created, err = h.ops.hooks.CreateChannel(r.Context(), team, in.AppID, in.URL, in.Events)
		if err != nil && !errs.Is(err, errs.Invalid) {
			err = errs.Wrap(errs.Invalid, "not a usable notification URL: "+err.Error(), err)
		}
	default:
		err = errs.Field("kind", "kind is http or shoutrrr")
	}
	if err != nil {
		h.fail(w, "creating the webhook", err)
		return
	}
	h.audit1(r.Context(), h.wh.Pool(), r, team, "webhook.create", hostOf(created.URL), map[string]any{"webhook_id": created.ID,
		"app_id": created.AppID, "kind": created.Kind, "events": created.Events})
	api.WriteJSON(w, http.StatusCreated, struct {
		webhooks.Webhook
		Secret string `json:"secret,omitempty"`
	}{created, secret})
}

func (h *Handler) updateWebhook(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in struct {
		Enabled *bool    `json:"enabled"`
		Events  []string `json:"events"`
	}
	if !decode(w, r, &in) {
		return
	}
	if msg := checkEvents(in.Events); msg != "" {
		unprocessable(w, msg)
		return
	}
	if in.Events != nil && len(in.Events) == 0 {
		unprocessable(w, `events must name at least one event (or "*")`)
		return
	}
	got, err := h.ops.hooks.Update(r.Context(), team, pathID(r, "hook"), in.Enabled, in.Events)
	if err != nil {
		h.fail(w, "updating the webhook", err)
		return
	}
	h.audit1(r.Context(), h.wh.Pool(), r, team, "webhook.update", hostOf(got.URL), map[string]any{"webhook_id": got.ID,
		"enabled": got.Enabled, "events": got.Events})
	api.WriteJSON(w, http.StatusOK, got)
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	id := pathID(r, "hook")
	got, err := h.ops.hooks.Get(r.Context(), team, id)
	if err == nil {
		err = h.ops.hooks.Delete(r.Context(), team, id)
	}
	if err != nil {
		h.fail(w, "deleting the webhook", err)
		return
	}
	h.audit1(r.Context(), h.wh.Pool(), r, team, "webhook.delete", hostOf(got.URL), map[string]any{"webhook_id": id})
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// rotateWebhookSecret returns the new secret once; the previous one keeps
// signing alongside until the next rotation.
func (h *Handler) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	id := pathID(r, "hook")
	got, err := h.ops.hooks.Get(r.Context(), team, id)
	if err == nil && got.Kind != "http" {
		err = errs.New(errs.Invalid, "only http webhooks are signed")
	}
	var secret string
	if err == nil {
		secret, err = h.ops.hooks.RotateSecret(r.Context(), team, id)
	}
	if err != nil {
		h.fail(w, "rotating the secret", err)
		return
	}
	h.audit1(r.Context(), h.wh.Pool(), r, team, "webhook.rotate_secret", hostOf(got.URL), map[string]any{"webhook_id": id})
	api.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "secret": secret})
}

func (h *Handler) webhookDeliveries(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	id := pathID(r, "hook")
	if _, err := h.ops.hooks.Get(r.Context(), team, id); err != nil {
		h.fail(w, "listing deliveries", err)
		return
	}
	ds, err := h.ops.hooks.Deliveries(r.Context(), team, id, 50)
	if err != nil {
		h.fail(w, "listing deliveries", err)
		return
	}
	if ds == nil {
		ds = []webhooks.Delivery{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
}

// testWebhook queues a webhook.test delivery and sends it at once through
// the dispatcher (same signing, same SSRF guard as every delivery), then
// reports how the endpoint answered. A failed test is retried like any
// delivery.
func (h *Handler) testWebhook(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	id := pathID(r, "hook")
	got, err := h.ops.hooks.Get(r.Context(), team, id)
	if err != nil {
		h.fail(w, "sending a test", err)
		return
	}
	did, err := webhooks.EnqueueTest(r.Context(), h.wh.Pool(), team, id)
	if err != nil {
		h.fail(w, "sending a test", err)
		return
	}
	h.audit1(r.Context(), h.wh.Pool(), r, team, "webhook.test", hostOf(got.URL), map[string]any{"webhook_id": id, "delivery_id": did})
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	sendErr := h.ops.disp.DeliverNow(ctx, did)
	out := map[string]any{"delivery_id": did, "ok": sendErr == nil}
	if sendErr != nil {
		out["error"] = sendErr.Error()
	}
	var status *int
	if err := h.wh.Pool().QueryRow(r.Context(), "SELECT last_status FROM webhook_deliveries WHERE id = $1", did).Scan(&status); err == nil && status != nil {
		out["status"] = *status
	}
	api.WriteJSON(w, http.StatusOK, out)
}
