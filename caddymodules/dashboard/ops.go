package dashboard

import (
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/caddymodules/logs"
	whapp "github.com/wisehosting/wisehosting/caddymodules/webhooks"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/logbus"
	"github.com/wisehosting/wisehosting/internal/usage"
	"github.com/wisehosting/wisehosting/internal/webhooks"
)

// opsDeps are the running services the operations routes expose. The log
// bus and the webhook dispatcher belong to their own Caddy apps; without
// the logs app there is no live stream (history still works), without the
// webhooks app test deliveries use a dispatcher of the dashboard's own
// with the default (strict) SSRF guard.
type opsDeps struct {
	bus       *logbus.Bus
	archive   *logbus.Archive
	usage     *usage.Reports
	hooks     *webhooks.Service
	disp      *webhooks.Dispatcher
	hookGuard httpx.GuardOptions
	recheck   time.Duration
}

func (h *Handler) provisionOps() {
	ctx := h.wh.Context()
	h.ops = opsDeps{hooks: &webhooks.Service{Pool: h.wh.Pool(), Keyring: h.wh.Keyring()}, recheck: time.Duration(h.LiveRecheck),
		archive: &logbus.Archive{Pool: h.wh.Pool()}, usage: &usage.Reports{Pool: h.wh.Pool()}}
	if h.ops.recheck <= 0 {
		h.ops.recheck = 15 * time.Second
	}
	if a, err := ctx.AppIfConfigured("wisehosting_logs"); err == nil {
		h.ops.bus = a.(*logs.App).Bus()
	} else if !errors.Is(err, caddy.ErrNotConfigured) {
		h.logger.Warn("dashboard: live logs unavailable", zap.Error(err))
	}
	if a, err := ctx.AppIfConfigured("wisehosting_webhooks"); err == nil {
		app := a.(*whapp.App)
		h.ops.disp = app.Dispatcher()
		for _, n := range app.AllowNetworks {
			if p, err := netip.ParsePrefix(n); err == nil {
				h.ops.hookGuard.Allow = append(h.ops.hookGuard.Allow, p)
			}
		}
	}
	if h.ops.disp == nil {
		h.ops.disp = &webhooks.Dispatcher{Pool: h.wh.Pool(), Keyring: h.wh.Keyring(), Client: httpx.NewWebhookClient(httpx.GuardOptions{}), Logger: h.logger}
	}
}

// unprocessable answers 422 with a message for the person.
func unprocessable(w http.ResponseWriter, msg string) {
	api.WriteError(w, http.StatusUnprocessableEntity, msg)
}

// parseTime reads a query time: RFC 3339, or a duration ("15m", "2h")
// meaning that long ago.
func parseTime(s string, now time.Time) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return &t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		t := now.Add(-d)
		return &t, nil
	}
	return nil, errors.New("use an RFC 3339 time (2024-05-01T12:00:00Z) or a duration such as 15m")
}

// Bounds of one page of log history.
const (
	defaultLogLimit = 200
	maxLogLimit     = 1000
	maxLogQuery     = 200
)

// runtimeLogs searches an app's stored runtime log, newest first, one page
// at a time: ?before=<id> continues after the last line of a page. The
// search is a case-insensitive substring match (strpos on lowered text, so
// % and _ mean themselves).
func (h *Handler) runtimeLogs(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	qv := r.URL.Query()
	now := time.Now()
	var problems []string
	since, err := parseTime(qv.Get("since"), now)
	if err != nil {
		problems = append(problems, "since: "+err.Error())
	}
	until, err := parseTime(qv.Get("until"), now)
	if err != nil {
		problems = append(problems, "until: "+err.Error())
	}
	stream := qv.Get("stream")
	if stream != "" && stream != "stdout" && stream != "stderr" {
		problems = append(problems, "stream is stdout or stderr")
	}
	q := qv.Get("q")
	if len(q) > maxLogQuery {
		problems = append(problems, "q has at most 200 characters")
	}
	limit, before := defaultLogLimit, int64(0)
	if s := qv.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit <= 0 {
			problems = append(problems, "limit is a positive number")
		}
		limit = min(limit, maxLogLimit)
	}
	if s := qv.Get("before"); s != "" {
		if before, err = strconv.ParseInt(s, 10, 64); err != nil || before <= 0 {
			problems = append(problems, "before is a line id")
		}
	}
	if len(problems) > 0 {
		unprocessable(w, strings.Join(problems, "; "))
		return
	}
	out, err := h.ops.archive.Search(r.Context(), logbus.Search{TeamID: app.TeamID, AppID: app.ID, Query: q, Since: since, Until: until,
		Stream: stream, Before: before, Limit: limit})
	if err != nil {
		h.fail(w, "searching logs", err)
		return
	}
	resp := map[string]any{"lines": out, "live": h.ops.bus != nil}
	if len(out) == limit {
		resp["next_before"] = out[len(out)-1].ID
	}
	api.WriteJSON(w, http.StatusOK, resp)
}

// usageRanges maps ?range= to the span shown and the width of one point:
// about 100 to 300 points whatever the range.
var usageRanges = map[string]struct{ span, step time.Duration }{
	"1h":  {time.Hour, 5 * time.Minute},
	"24h": {24 * time.Hour, 15 * time.Minute},
	"7d":  {7 * 24 * time.Hour, time.Hour},
	"30d": {30 * 24 * time.Hour, 6 * time.Hour},
}

// usageWindow reads ?range= (default 24h) and returns the span's start,
// aligned to the step.
func usageWindow(w http.ResponseWriter, r *http.Request) (string, time.Time, time.Duration, bool) {
	name := r.URL.Query().Get("range")
	if name == "" {
		name = "24h"
	}
	rg, ok := usageRanges[name]
	if !ok {
		unprocessable(w, "range is one of 1h, 24h, 7d, 30d")
		return "", time.Time{}, 0, false
	}
	return name, time.Now().UTC().Add(-rg.span).Truncate(rg.step), rg.step, true
}

// appUsage is an app's usage over ?range=1h|24h|7d|30d, with its limits
// so a chart can show how close it runs to them.
func (h *Handler) appUsage(w http.ResponseWriter, r *http.Request) {
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	name, since, step, ok := usageWindow(w, r)
	if !ok {
		return
	}
	points, err := h.ops.usage.Chart(r.Context(), app.TeamID, app.ID, since, step)
	if err != nil {
		h.fail(w, "reading usage", err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"range": name, "since": since, "step_s": int(step.Seconds()), "points": points,
		"limits": map[string]any{"cpu_millis": app.CPUMillis, "memory_mb": app.MemoryMB, "disk_mb": app.DiskMB}})
}

// teamUsage sums the team's apps per point and lists each app's share of
// the range.
func (h *Handler) teamUsage(w http.ResponseWriter, r *http.Request) {
	team, ok := h.teamRole(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	name, since, step, ok := usageWindow(w, r)
	if !ok {
		return
	}
	points, err := h.ops.usage.Chart(r.Context(), team, 0, since, step)
	if err != nil {
		h.fail(w, "reading usage", err)
		return
	}
	apps, err := h.ops.usage.TeamApps(r.Context(), team, since)
	if err != nil {
		h.fail(w, "reading usage", err)
		return
	}
	var total usage.AppSum
	for _, a := range apps {
		total.CPUAvg += a.CPUAvg
		total.MemMax += a.MemMax
		total.NetRxBytes += a.NetRxBytes
		total.NetTxBytes += a.NetTxBytes
		total.DiskBytes += a.DiskBytes
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"range": name, "since": since, "step_s": int(step.Seconds()), "points": points, "apps": apps,
		"totals": map[string]any{"cpu_pct_avg": total.CPUAvg, "mem_bytes_max": total.MemMax, "net_rx_bytes": total.NetRxBytes,
			"net_tx_bytes": total.NetTxBytes, "disk_bytes": total.DiskBytes}})
}
