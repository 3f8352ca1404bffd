package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/internal/accounts"
	"github.com/wisehosting/wisehosting/internal/apps"
	"github.com/wisehosting/wisehosting/internal/logbus"
)

// Live stream limits. A client that cannot take lines as fast as the app
// writes them is dropped (it can reconnect and search the history) rather
// than holding lines in memory or slowing the bus.
const (
	liveBacklog    = 200              // ring lines sent first
	liveBusBuffer  = 1024             // lines the bus may queue for the stream
	liveMaxPending = 5000             // lines waiting for the socket before the client counts as too slow
	liveBatch      = 500              // lines per frame at most
	liveWriteWait  = 10 * time.Second // one frame's write deadline
	livePongWait   = 60 * time.Second // silence after which the client is gone
	livePingEvery  = 25 * time.Second
)

// Close codes of a live stream, besides the standard ones.
const (
	closeSignedOut = 4401 // the session or token ended, or membership was lost
	closeGone      = 4404 // the app was deleted
	closeTooSlow   = 4408 // the client fell behind
)

var liveUpgrader = websocket.Upgrader{
	ReadBufferSize:  512,
	WriteBufferSize: 8192,
	// Same host only (checked before the upgrade, in liveLogs, so a refusal
	// is a plain 403); a browser always sends Origin on a WebSocket, so a
	// request without one is not a page of another site.
	CheckOrigin: func(*http.Request) bool { return true },
}

// sameOrigin reports whether the request's Origin (if any) names the host
// it was sent to: a session cookie rides along on cross-site WebSocket
// handshakes, so this check is what keeps other sites out.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

type liveFrame struct {
	Type    string        `json:"type"` // "lines"
	Backlog bool          `json:"backlog,omitempty"`
	Lines   []logbus.Line `json:"lines"`
}

// liveFilter keeps lines of ?stream= containing ?q= (case-insensitive).
type liveFilter struct{ q, stream string }

func (f liveFilter) keep(l logbus.Line) bool {
	return (f.stream == "" || l.Stream == f.stream) && (f.q == "" || strings.Contains(strings.ToLower(l.Text), f.q))
}

// liveLogs streams an app's runtime log over a WebSocket: the ring's recent
// lines first, then new lines as workers send them, as JSON frames
// {"type":"lines","lines":[{ts,stream,line}…]}. The stream ends (close
// code 4401/4404) when the caller's session or token stops being valid or
// the app is deleted, re-checked every live_recheck.
func (h *Handler) liveLogs(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		api.WriteError(w, http.StatusForbidden, "cross-origin WebSocket refused")
		return
	}
	app, ok := h.appAccess(w, r, accounts.RoleMember)
	if !ok {
		return
	}
	if h.ops.bus == nil {
		api.WriteError(w, http.StatusServiceUnavailable, "live logs need the wisehosting_logs app in the configuration")
		return
	}
	filter := liveFilter{q: strings.ToLower(r.URL.Query().Get("q")), stream: r.URL.Query().Get("stream")}
	if len(filter.q) > maxLogQuery || (filter.stream != "" && filter.stream != "stdout" && filter.stream != "stderr") {
		unprocessable(w, "q has at most 200 characters; stream is stdout or stderr")
		return
	}
	conn, err := liveUpgrader.Upgrade(api.Hijackable(w), r, nil)
	if err != nil {
		return // the upgrader answered the client
	}
	defer conn.Close()
	// Subscribe before reading the backlog so no line falls between them
	// (a line may then come twice, never not at all).
	ch, cancel := h.ops.bus.Subscribe(app.ID, liveBusBuffer)
	defer cancel()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	conn.SetReadLimit(1024)
	conn.SetReadDeadline(time.Now().Add(livePongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(livePongWait)) })
	go func() {
		// Clients say nothing but pongs and the close; reading processes them.
		defer stop()
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()

	var mu sync.Mutex
	var pending []logbus.Line
	slow := false
	wake := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case l := <-ch:
				if !filter.keep(l) {
					continue
				}
				mu.Lock()
				if len(pending) >= liveMaxPending {
					slow = true
				} else {
					pending = append(pending, l)
				}
				mu.Unlock()
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}
	}()

	write := func(v any) error {
		conn.SetWriteDeadline(time.Now().Add(liveWriteWait))
		return conn.WriteJSON(v)
	}
	closeWith := func(code int, reason string) {
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	}
	backlog := []logbus.Line{}
	for _, l := range h.ops.bus.Recent(app.ID, liveBacklog) {
		if filter.keep(l) {
			backlog = append(backlog, l)
		}
	}
	if err := write(liveFrame{Type: "lines", Backlog: true, Lines: backlog}); err != nil {
		return
	}
	ping := time.NewTicker(livePingEvery)
	defer ping.Stop()
	recheck := time.NewTicker(h.ops.recheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
			mu.Lock()
			batch, tooSlow := pending, slow
			pending = nil
			mu.Unlock()
			if tooSlow {
				closeWith(closeTooSlow, "too slow: reconnect and search the history for missed lines")
				return
			}
			for len(batch) > 0 {
				n := min(len(batch), liveBatch)
				if err := write(liveFrame{Type: "lines", Lines: batch[:n]}); err != nil {
					return
				}
				batch = batch[n:]
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(liveWriteWait)); err != nil {
				return
			}
		case <-recheck.C:
			code, reason, err := h.liveStillAllowed(ctx, r, app.ID)
			if err != nil {
				if ctx.Err() == nil {
					h.logger.Warn("dashboard: re-checking a live log stream", zap.Error(err))
				}
				continue // a database hiccup does not end the stream
			}
			if code != 0 {
				closeWith(code, reason)
				return
			}
		}
	}
}

// liveStillAllowed re-resolves the stream's credentials and its app: a
// close code and reason when the stream must end, 0 when it may go on.
func (h *Handler) liveStillAllowed(ctx context.Context, r *http.Request, appID int64) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := h.caller(ctx, r)
	if errors.Is(err, accounts.ErrUnauthorized) {
		return closeSignedOut, "signed out", nil
	}
	if err != nil {
		return 0, "", err
	}
	team, err := h.apps.TeamOf(ctx, appID)
	if errors.Is(err, apps.ErrNotFound) {
		return closeGone, "the app was deleted", nil
	}
	if err != nil {
		return 0, "", err
	}
	role, err := h.acc.Role(ctx, p, team)
	if err != nil {
		return 0, "", err
	}
	if role == "" {
		return closeSignedOut, "no longer a member of the app's team", nil
	}
	return 0, "", nil
}
