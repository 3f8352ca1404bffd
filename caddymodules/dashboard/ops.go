package dashboard

import (
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/caddymodules/logs"
	whapp "github.com/wisehosting/wisehosting/caddymodules/webhooks"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/httpx"
	"github.com/wisehosting/wisehosting/internal/logbus"
	"github.com/wisehosting/wisehosting/internal/webhooks"
)

// opsDeps are the running services the operations routes expose. The log
// bus and the webhook dispatcher belong to their own Caddy apps; without
// the logs app there is no live stream (history still works), without the
// webhooks app test deliveries use a dispatcher of the dashboard's own
// with the default (strict) SSRF guard.
type opsDeps struct {
	bus       *logbus.Bus
	hooks     *webhooks.Service
	disp      *webhooks.Dispatcher
	hookGuard httpx.GuardOptions
	recheck   time.Duration
}

func (h *Handler) provisionOps() {
	ctx := h.wh.Context()
	h.ops = opsDeps{hooks: &webhooks.Service{Pool: h.wh.Pool(), Keyring: h.wh.Keyring()}, recheck: time.Duration(h.LiveRecheck)}
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

type logLine struct {
	ID     int64     `json:"id"`
	TS     time.Time `json:"ts"`
	Stream string    `json:"stream"`
	Line   string    `json:"line"`
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
	rows, err := h.wh.Pool().Query(r.Context(), `SELECT l.id, l.ts, l.stream, l.line FROM runtime_logs l JOIN apps a ON a.id = l.app_id
		WHERE a.team_id = $1 AND l.app_id = $2
			AND ($3 = '' OR strpos(lower(l.line), lower($3)) > 0)
			AND ($4::timestamptz IS NULL OR l.ts >= $4) AND ($5::timestamptz IS NULL OR l.ts < $5)
			AND ($6 = '' OR l.stream = $6) AND ($7 = 0 OR l.id < $7)
		ORDER BY l.id DESC LIMIT $8`, app.TeamID, app.ID, q, since, until, stream, before, limit)
	if err != nil {
		h.fail(w, "searching logs", err)
		return
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (logLine, error) {
		var l logLine
		err := row.Scan(&l.ID, &l.TS, &l.Stream, &l.Line)
		return l, err
	})
	if err != nil {
		h.fail(w, "searching logs", err)
		return
	}
	if out == nil {
		out = []logLine{}
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

type usagePoint struct {
	At         time.Time `json:"at"`
	CPUAvg     float64   `json:"cpu_pct_avg"`
	CPUMax     float64   `json:"cpu_pct_max"`
	MemAvg     float64   `json:"mem_bytes_avg"`
	MemMax     int64     `json:"mem_bytes_max"`
	NetRxBytes int64     `json:"net_rx_bytes"`
	NetTxBytes int64     `json:"net_tx_bytes"`
	DiskBytes  int64     `json:"disk_bytes"`
	// VolumeBytes is the disk the app's volumes use (the largest in the
	// point's buckets).
	VolumeBytes int64 `json:"volume_bytes"`
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

// usageSeries folds an app's (or, with app 0, all the team's apps') 5-minute
// buckets into points of step: CPU and memory averages weighted by samples,
// peaks, network bytes summed, the largest disk and volume sizes. For a
// team, the apps' values add up per point.
func (h *Handler) usageSeries(r *http.Request, team, app int64, since time.Time, step time.Duration) ([]usagePoint, error) {
	rows, err := h.wh.Pool().Query(r.Context(), `WITH per_app AS (
			SELECT date_bin(make_interval(secs => $4), u.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS at, u.app_id,
				sum(u.cpu_pct_sum) / NULLIF(sum(u.samples), 0) AS cpu_avg, max(u.cpu_pct_max) AS cpu_max,
				sum(u.mem_bytes_sum) / NULLIF(sum(u.samples), 0) AS mem_avg, max(u.mem_bytes_max) AS mem_max,
				sum(u.net_rx_bytes) AS rx, sum(u.net_tx_bytes) AS tx, max(u.disk_bytes) AS disk, max(u.volume_bytes) AS vol
			FROM usage_samples u JOIN apps a ON a.id = u.app_id
			WHERE a.team_id = $1 AND ($2 = 0 OR u.app_id = $2) AND u.bucket >= $3
			GROUP BY 1, 2)
		SELECT at, COALESCE(sum(cpu_avg), 0), COALESCE(sum(cpu_max), 0), COALESCE(sum(mem_avg), 0), COALESCE(sum(mem_max), 0)::bigint,
			sum(rx)::bigint, sum(tx)::bigint, sum(disk)::bigint, sum(vol)::bigint
		FROM per_app GROUP BY at ORDER BY at`, team, app, since, step.Seconds())
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (usagePoint, error) {
		var p usagePoint
		err := row.Scan(&p.At, &p.CPUAvg, &p.CPUMax, &p.MemAvg, &p.MemMax, &p.NetRxBytes, &p.NetTxBytes, &p.DiskBytes, &p.VolumeBytes)
		return p, err
	})
	if out == nil {
		out = []usagePoint{}
	}
	return out, err
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
	points, err := h.usageSeries(r, app.TeamID, app.ID, since, step)
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
	points, err := h.usageSeries(r, team, 0, since, step)
	if err != nil {
		h.fail(w, "reading usage", err)
		return
	}
	rows, err := h.wh.Pool().Query(r.Context(), `SELECT a.id, a.slug, a.name, a.status,
			COALESCE(sum(u.cpu_pct_sum) / NULLIF(sum(u.samples), 0), 0), COALESCE(max(u.cpu_pct_max), 0),
			COALESCE(max(u.mem_bytes_max), 0), COALESCE(sum(u.net_rx_bytes), 0)::bigint, COALESCE(sum(u.net_tx_bytes), 0)::bigint,
			COALESCE((SELECT s.disk_bytes FROM usage_samples s WHERE s.app_id = a.id ORDER BY s.bucket DESC LIMIT 1), 0)
		FROM apps a LEFT JOIN usage_samples u ON u.app_id = a.id AND u.bucket >= $2
		WHERE a.team_id = $1 GROUP BY a.id ORDER BY a.name, a.id`, team, since)
	if err != nil {
		h.fail(w, "reading usage", err)
		return
	}
	type appSum struct {
		ID         int64   `json:"id"`
		Slug       string  `json:"slug"`
		Name       string  `json:"name"`
		Status     string  `json:"status"`
		CPUAvg     float64 `json:"cpu_pct_avg"`
		CPUMax     float64 `json:"cpu_pct_max"`
		MemMax     int64   `json:"mem_bytes_max"`
		NetRxBytes int64   `json:"net_rx_bytes"`
		NetTxBytes int64   `json:"net_tx_bytes"`
		DiskBytes  int64   `json:"disk_bytes"`
	}
	apps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (appSum, error) {
		var a appSum
		err := row.Scan(&a.ID, &a.Slug, &a.Name, &a.Status, &a.CPUAvg, &a.CPUMax, &a.MemMax, &a.NetRxBytes, &a.NetTxBytes, &a.DiskBytes)
		return a, err
	})
	if err != nil {
		h.fail(w, "reading usage", err)
		return
	}
	var total appSum
	for _, a := range apps {
		total.CPUAvg += a.CPUAvg
		total.MemMax += a.MemMax
		total.NetRxBytes += a.NetRxBytes
		total.NetTxBytes += a.NetTxBytes
		total.DiskBytes += a.DiskBytes
	}
	if apps == nil {
		apps = []appSum{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"range": name, "since": since, "step_s": int(step.Seconds()), "points": points, "apps": apps,
		"totals": map[string]any{"cpu_pct_avg": total.CPUAvg, "mem_bytes_max": total.MemMax, "net_rx_bytes": total.NetRxBytes,
			"net_tx_bytes": total.NetTxBytes, "disk_bytes": total.DiskBytes}})
}
