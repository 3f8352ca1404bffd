// Package hub is the `wisehosting_hub` HTTP handler: the WebSocket endpoint
// (/v1/workers/ws) that worker agents dial out to. A connection is
// registered only after the wsproto handshake (a signed hello over a fresh
// server nonce); then it has one read pump and one write pump, and frames
// are wsproto envelopes, verified (session-key MAC, clock skew, replay
// window) before they reach the control plane's features through the
// worker bus (core.App.Workers()).
package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/api"
	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/auth"
	"github.com/wisehosting/wisehosting/internal/workerbus"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

func init() {
	caddy.RegisterModule(new(Handler))
	httpcaddyfile.RegisterHandlerDirective("wisehosting_hub", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("wisehosting_hub", httpcaddyfile.Before, "respond")
}

// Path is where agents connect.
const Path = "/v1/workers/ws"

// Handler accepts worker connections.
type Handler struct {
	// Interval between pings to each worker. A worker that answers no ping
	// for two intervals is disconnected. Default: 20s.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`

	// Deadline of one write to a worker. Default: 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// Messages queued for one worker before it counts as a slow consumer
	// and is disconnected. Default: 64.
	SendQueue int `json:"send_queue,omitempty"`

	// Largest accepted frame in bytes. Default: 1 MiB.
	MaxFrameBytes int64 `json:"max_frame_bytes,omitempty"`

	// Time a new connection has to answer the challenge with a signed
	// hello; until then it is not registered and is sent nothing else.
	// Default: 10s.
	HandshakeTimeout caddy.Duration `json:"handshake_timeout,omitempty"`

	wh       *core.App
	logger   *zap.Logger
	upgrader websocket.Upgrader
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wisehosting_hub",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies defaults and installs the registry as the worker bus's
// sender.
func (h *Handler) Provision(ctx caddy.Context) (err error) {
	if h.wh, h.logger, err = core.Use(ctx); err != nil {
		return err
	}
	if h.PingInterval <= 0 {
		h.PingInterval = caddy.Duration(20 * time.Second)
	}
	if h.WriteTimeout <= 0 {
		h.WriteTimeout = caddy.Duration(10 * time.Second)
	}
	if h.SendQueue <= 0 {
		h.SendQueue = 64
	}
	if h.MaxFrameBytes <= 0 {
		h.MaxFrameBytes = wsproto.MaxFrameBytes
	}
	if h.HandshakeTimeout <= 0 {
		h.HandshakeTimeout = caddy.Duration(10 * time.Second)
	}
	h.upgrader = websocket.Upgrader{
		// Small read buffers and pooled write buffers keep an idle
		// connection cheap: thousands of workers idle most of the time.
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		WriteBufferPool: writeBuffers,
		// Agents send no Origin; a browser always does. Refusing any Origin
		// closes cross-site WebSocket hijacking for good.
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
	}
	reg.mu.Lock()
	reg.bus = h.wh.Workers()
	reg.mu.Unlock()
	h.wh.Workers().SetSender(reg)
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if h.MaxFrameBytes < 1024 {
		return errors.New("max_frame_bytes must be at least 1024")
	}
	return nil
}

// ServeHTTP upgrades requests to Path and passes others on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.URL.Path != Path {
		return next.ServeHTTP(w, r)
	}
	h.serveWS(w, r)
	return nil
}

func bearer(r *http.Request) string {
	tok, _ := auth.BearerToken(r.Header)
	return tok
}

func (h *Handler) serveWS(w http.ResponseWriter, r *http.Request) {
	key := h.wh.Keyring().DeriveKey(workers.TokenKeyPurpose, 32)
	id, exp, err := workers.ParseToken(key, bearer(r), time.Now())
	if err != nil {
		h.logger.Warn("hub: connection refused", zap.String("reason", err.Error()), zap.String("remote", r.RemoteAddr))
		api.WriteError(w, http.StatusUnauthorized, "invalid worker token")
		return
	}
	wk, err := workers.Get(r.Context(), h.wh.Pool(), id)
	if err != nil && !errors.Is(err, workers.ErrNotFound) {
		// The database is down: a 403 would make the worker drop its
		// token for nothing; it redials after a backoff.
		h.logger.Warn("hub: connection refused", zap.String("reason", "database unavailable"), zap.Int64("worker", id), zap.Error(err))
		api.WriteError(w, http.StatusServiceUnavailable, "database unavailable, retry later")
		return
	}
	if err != nil || wk.Revoked() {
		h.logger.Warn("hub: connection refused", zap.String("reason", "worker revoked or deleted"), zap.Int64("worker", id))
		api.WriteError(w, http.StatusForbidden, "worker revoked")
		return
	}
	clientNonce := r.Header.Get(wsproto.NonceHeader)
	if err := wsproto.CheckNonce(clientNonce); err != nil {
		h.logger.Warn("hub: connection refused", zap.String("reason", "no handshake nonce (agent older than the control plane?)"), zap.Int64("worker", id))
		api.WriteError(w, http.StatusBadRequest, "missing or malformed "+wsproto.NonceHeader+" header: upgrade the agent")
		return
	}
	wkey, err := wk.Key(h.wh.Keyring())
	if err != nil {
		api.Fail(w, h.logger.With(zap.Int64("worker", id)), "opening the worker key", err)
		return
	}
	ws, err := h.upgrader.Upgrade(api.Hijackable(w), r, nil)
	if err != nil {
		h.logger.Warn("hub: upgrade failed", zap.Int64("worker", id), zap.Error(err))
		return
	}
	serverNonce := wsproto.NewNonce()
	c := &conn{
		h: h, id: id, name: wk.Name, worker: wk, key: wsproto.SessionKey(wkey, clientNonce, serverNonce), ws: ws, tokenExp: exp,
		send: make(chan []byte, h.SendQueue), done: make(chan struct{}),
		dedup: wsproto.NewDedup(128), lastSeen: time.Now(), remote: r.RemoteAddr,
	}
	c.via = "WSS"
	if r.TLS == nil {
		c.via = "WS (plaintext)"
	}
	// The handshake gets a goroutine of its own and ServeHTTP returns: the
	// HTTP server then drops its per-request state (buffers, context,
	// logger), which would otherwise stay alive for the connection's life.
	go c.handshake(serverNonce)
}

// Registry holds the live connections of this process. It outlives config
// reloads: a reload must not disconnect every worker.
type Registry struct {
	mu    sync.RWMutex
	conns map[int64]*conn
	bus   interface {
		NotifyConnection(int64, bool)
	}
}

var reg = &Registry{conns: make(map[int64]*conn)}

// Default is the process's registry.
func Default() *Registry { return reg }

// add registers a connection that has completed the handshake. A
// previous connection of the same worker is closed and returned.
func (g *Registry) add(c *conn) (old *conn) {
	g.mu.Lock()
	old = g.conns[c.id]
	g.conns[c.id] = c
	bus := g.bus
	g.mu.Unlock()
	if old != nil {
		old.close("replaced by a new connection of the same worker")
	}
	if bus != nil {
		bus.NotifyConnection(c.id, true)
	}
	return old
}

func (g *Registry) remove(c *conn) {
	g.mu.Lock()
	removed := g.conns[c.id] == c
	if removed {
		delete(g.conns, c.id)
	}
	bus := g.bus
	g.mu.Unlock()
	if removed && bus != nil {
		bus.NotifyConnection(c.id, false)
	}
}

// Send queues a message for a connected worker; it never blocks. A worker
// whose queue is full is disconnected (it reconnects and resynchronises).
func (g *Registry) Send(workerID int64, msgType string, payload json.RawMessage) error {
	g.mu.RLock()
	c := g.conns[workerID]
	g.mu.RUnlock()
	if c == nil {
		return fmt.Errorf("worker %d: %w", workerID, errNotConnected)
	}
	return c.enqueue(msgType, payload)
}

// Connected reports whether the worker has a connection to this process.
func (g *Registry) Connected(workerID int64) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.conns[workerID] != nil
}

// Count is the number of connected workers.
func (g *Registry) Count() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.conns)
}

// Disconnect closes a worker's connection (operators; revocation).
func (g *Registry) Disconnect(workerID int64, reason string) bool {
	g.mu.RLock()
	c := g.conns[workerID]
	g.mu.RUnlock()
	if c != nil {
		c.close(reason)
	}
	return c != nil
}

var errNotConnected = workerbus.ErrNotConnected

// writeBuffers is shared by every connection: a buffer is held only while a
// message is being written.
var writeBuffers = new(sync.Pool)

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	return parseHandler(h.Dispenser)
}

// parseHandler reads:
//
//	wisehosting_hub {
//		ping_interval     <duration>
//		write_timeout     <duration>
//		handshake_timeout <duration>
//		send_queue        <n>
//		max_frame_bytes   <n>
//	}
func parseHandler(d *caddyfile.Dispenser) (*Handler, error) {
	h := new(Handler)
	err := core.Options{App: "wisehosting_hub",
		Durations: map[string]*caddy.Duration{"ping_interval": &h.PingInterval, "write_timeout": &h.WriteTimeout, "handshake_timeout": &h.HandshakeTimeout},
		Ints:      map[string]*int{"send_queue": &h.SendQueue},
		Int64s:    map[string]*int64{"max_frame_bytes": &h.MaxFrameBytes}}.Read(d)
	return h, err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
