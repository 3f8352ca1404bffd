package dashboard

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/webhooks"
)

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
	api.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": out, "events": webhooks.Subscribable})
}

// createWebhook adds an endpoint (kind http, signed; the secret is in this
// answer only) or a chat channel (kind shoutrrr), team-wide or bound to
// one of the team's apps.
func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	var in webhooks.New
	if !api.Decode(w, r, &in) {
		return
	}
	created, secret, err := h.ops.hooks.Add(r.Context(), team, in, h.ops.hookGuard)
	if err != nil {
		h.fail(w, "creating the webhook", err)
		return
	}
	h.record(r, team, "webhook.create", hostOf(created.URL), map[string]any{"webhook_id": created.ID,
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
	if !api.Decode(w, r, &in) {
		return
	}
	got, err := h.ops.hooks.Change(r.Context(), team, pathID(r, "hook"), in.Enabled, in.Events)
	if err != nil {
		h.fail(w, "updating the webhook", err)
		return
	}
	h.record(r, team, "webhook.update", hostOf(got.URL), map[string]any{"webhook_id": got.ID,
		"enabled": got.Enabled, "events": got.Events})
	api.WriteJSON(w, http.StatusOK, got)
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	id := pathID(r, "hook")
	got, err := h.ops.hooks.Remove(r.Context(), team, id)
	if err != nil {
		h.fail(w, "deleting the webhook", err)
		return
	}
	h.record(r, team, "webhook.delete", hostOf(got.URL), map[string]any{"webhook_id": id})
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
	got, secret, err := h.ops.hooks.Rotate(r.Context(), team, id)
	if err != nil {
		h.fail(w, "rotating the secret", err)
		return
	}
	h.record(r, team, "webhook.rotate_secret", hostOf(got.URL), map[string]any{"webhook_id": id})
	api.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "secret": secret})
}

func (h *Handler) webhookDeliveries(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	ds, err := h.ops.hooks.History(r.Context(), team, pathID(r, "hook"), 50)
	h.answer(w, http.StatusOK, "listing deliveries", map[string]any{"deliveries": ds}, err)
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
	res, err := h.ops.hooks.Test(r.Context(), h.ops.disp, team, pathID(r, "hook"), func(t webhooks.TestResult) accounts.Entry {
		return entry(r, team, "webhook.test", hostOf(t.Webhook.URL), map[string]any{"webhook_id": t.Webhook.ID, "delivery_id": t.DeliveryID})
	})
	if err != nil {
		h.fail(w, "sending a test", err)
		return
	}
	out := map[string]any{"delivery_id": res.DeliveryID, "ok": res.Err == nil}
	if res.Err != nil {
		out["error"] = res.Err.Error()
	}
	if res.Status != nil {
		out["status"] = *res.Status
	}
	api.WriteJSON(w, http.StatusOK, out)
}
