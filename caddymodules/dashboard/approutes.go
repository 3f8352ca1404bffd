package dashboard

import (
	"net/http"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/network"
)

// appRoutes adds the endpoints of an app's routes: path prefixes with
// their port, protocol, weight (traffic split within a prefix) and
// strip_prefix. Changes reach every proxy at once (route.changed).
func (h *Handler) appRoutes(handle func(string, http.HandlerFunc)) {
	handle("GET /api/apps/{app}/routes", h.authed(h.listRoutes))
	handle("POST /api/apps/{app}/routes", h.authed(h.addRoute))
	handle("PATCH /api/apps/{app}/routes/{route}", h.authed(h.updateRoute))
	handle("DELETE /api/apps/{app}/routes/{route}", h.authed(h.removeRoute))
}

func (h *Handler) listRoutes(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	rs, err := h.routes.List(r.Context(), app.ID)
	if err != nil {
		h.fail(w, "listing routes", err)
		return
	}
	if rs == nil {
		rs = []network.StoredRoute{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"routes": rs})
}

func (h *Handler) addRoute(w http.ResponseWriter, r *http.Request) {
	h.saveRoute(w, r, http.StatusCreated, "route.add", func(app deploys.App, in network.RouteInput, audit accounts.Hook[network.StoredRoute]) (network.StoredRoute, error) {
		return h.routes.Add(r.Context(), app.TeamID, app.ID, app.Port, in, audit)
	})
}

func (h *Handler) updateRoute(w http.ResponseWriter, r *http.Request) {
	h.saveRoute(w, r, http.StatusOK, "route.update", func(app deploys.App, in network.RouteInput, audit accounts.Hook[network.StoredRoute]) (network.StoredRoute, error) {
		return h.routes.Update(r.Context(), app.TeamID, app.ID, app.Port, pathID(r, "route"), in, audit)
	})
}

// saveRoute decodes a route, saves it with save (auditing action in its
// transaction) and answers code with the stored route.
func (h *Handler) saveRoute(w http.ResponseWriter, r *http.Request, code int, action string,
	save func(deploys.App, network.RouteInput, accounts.Hook[network.StoredRoute]) (network.StoredRoute, error)) {
	app, in, ok := appRequest[network.RouteInput](h, w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	rt, err := save(app, in, routeEntry(r, app, action))
	if err != nil {
		h.fail(w, "saving the route", err)
		return
	}
	api.WriteJSON(w, code, rt)
}

func (h *Handler) removeRoute(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleAdmin)
	if !ok {
		return
	}
	err := h.routes.Remove(r.Context(), app.TeamID, app.ID, pathID(r, "route"), routeEntry(r, app, "route.remove"))
	if err != nil {
		h.fail(w, "removing the route", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// routeEntry is the audit record of a change of an app's route.
func routeEntry(r *http.Request, app deploys.App, action string) accounts.Hook[network.StoredRoute] {
	return func(rt network.StoredRoute) accounts.Entry {
		return entry(r, app.TeamID, action, app.Slug+rt.PathPrefix, map[string]any{"app_id": rt.AppID, "route_id": rt.ID,
			"path_prefix": rt.PathPrefix, "port": rt.Port, "protocol": rt.Protocol, "weight": rt.Weight, "strip_prefix": rt.StripPrefix})
	}
}
