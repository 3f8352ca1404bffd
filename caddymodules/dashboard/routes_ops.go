package dashboard

import "net/http"

// opsRoutes adds the operations routes: runtime logs, usage, webhooks,
// alert rules and alerts, workers and team members.
func (h *Handler) opsRoutes(handle func(string, http.HandlerFunc)) {
	handle("GET /api/apps/{app}/logs", h.authed(h.runtimeLogs))
	handle("GET /api/apps/{app}/logs/live", h.authed(h.liveLogs))
	handle("GET /api/apps/{app}/usage", h.authed(h.appUsage))
	handle("GET /api/teams/{team}/usage", h.authed(h.teamUsage))
	handle("GET /api/apps/{app}/alert-rules", h.authed(h.listAlertRules))
	handle("POST /api/apps/{app}/alert-rules", h.authed(h.createAlertRule))
	handle("PATCH /api/apps/{app}/alert-rules/{rule}", h.authed(h.updateAlertRule))
	handle("DELETE /api/apps/{app}/alert-rules/{rule}", h.authed(h.deleteAlertRule))
	handle("GET /api/apps/{app}/alerts", h.authed(h.appAlerts))
	handle("GET /api/teams/{team}/alerts", h.authed(h.teamAlerts))
	handle("GET /api/teams/{team}/webhooks", h.authed(h.listWebhooks))
	handle("POST /api/teams/{team}/webhooks", h.authed(h.createWebhook))
	handle("PATCH /api/teams/{team}/webhooks/{hook}", h.authed(h.updateWebhook))
	handle("DELETE /api/teams/{team}/webhooks/{hook}", h.authed(h.deleteWebhook))
	handle("POST /api/teams/{team}/webhooks/{hook}/rotate-secret", h.authed(h.rotateWebhookSecret))
	handle("GET /api/teams/{team}/webhooks/{hook}/deliveries", h.authed(h.webhookDeliveries))
	handle("POST /api/teams/{team}/webhooks/{hook}/test", h.authed(h.testWebhook))
	handle("GET /api/workers", h.authed(h.listWorkers))
	handle("GET /api/workers/online", h.authed(h.workerStatus))
	handle("POST /api/workers/{worker}/drain", h.authed(h.drainWorker))
	handle("POST /api/workers/{worker}/resume", h.authed(h.resumeWorker))
	handle("POST /api/teams", h.authed(h.createTeam))
	handle("GET /api/teams/{team}/members", h.authed(h.listMembers))
	handle("POST /api/teams/{team}/members", h.authed(h.addMember))
	handle("PATCH /api/teams/{team}/members/{user}", h.authed(h.updateMember))
	handle("DELETE /api/teams/{team}/members/{user}", h.authed(h.removeMember))
}
