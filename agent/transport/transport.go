// Package transport is the worker agent's side of the control-plane channel:
// it registers with the raw API key, keeps a JWT fresh (refreshing 2 minutes
// before expiry with a signed request), holds one WebSocket connection to
// /v1/workers/ws and redials with exponential backoff and jitter when it
// drops. Each connection starts with the wsproto handshake (the control
// plane's challenge, answered by the signed hello); its frames are
// wsproto envelopes signed and verified with the connection's session key.
package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Config configures a Client.
type Config struct {
	// URL is the control plane's base URL, e.g. https://cp.example.com.
	// Plain http:// is accepted only for loopback and RFC 1918 IP literals
	// (a mesh address), never for a name.
	URL string
	// APIKey is the worker's raw key (wisehosting worker add).
	APIKey string
	// Name is informational (logs).
	Name   string
	Logger *zap.Logger
	// TLSConfig overrides the TLS client settings (e.g. a private root CA).
	TLSConfig *tls.Config
	// Backoff bounds between reconnect attempts. Defaults: 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// RefreshBefore is how long before expiry the JWT is refreshed.
	// Default: 2m.
	RefreshBefore time.Duration
}

// Handler processes one message from the control plane.
type Handler func(ctx context.Context, payload json.RawMessage) error

// Client is a connection to the control plane that survives disconnects.
type Client struct {
	cfg      Config
	base     *url.URL
	key      wsproto.Key
	http     *http.Client
	dialer   *websocket.Dialer
	logger   *zap.Logger
	dedup    *wsproto.Dedup
	seq      atomic.Uint64
	workerID atomic.Int64

	mu        sync.RWMutex
	handlers  map[string]Handler
	onConnect []func(ctx context.Context)
	hello     func() wsproto.Hello
	token     string
	tokenExp  time.Time
	ws        *websocket.Conn
	session   wsproto.Key // session key of ws
	wmu       sync.Mutex  // serialises writes to ws

	connects atomic.Int64
}

// ErrNotConnected is returned by Send while the connection is down.
var ErrNotConnected = errors.New("not connected to the control plane")

// CheckURL enforces the transport rule for the control-plane URL.
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid control plane URL %q", raw)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]"))
		if err != nil {
			return nil, fmt.Errorf("refusing plain http:// to %q: use https://, or an IP literal on loopback or a private (RFC 1918) network", u.Hostname())
		}
		ip = ip.Unmap()
		if !ip.IsLoopback() && !(ip.Is4() && ip.IsPrivate()) {
			return nil, fmt.Errorf("refusing plain http:// to %s: only loopback and RFC 1918 addresses may skip TLS", ip)
		}
		return u, nil
	}
	return nil, fmt.Errorf("control plane URL must be https:// (got %q)", u.Scheme)
}

// New validates cfg and returns a client; Run connects it.
func New(cfg Config) (*Client, error) {
	u, err := CheckURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(cfg.APIKey, "whk_") || len(cfg.APIKey) < 20 {
		return nil, errors.New("worker API key missing or malformed (expected whk_…, from `wisehosting worker add`)")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = 2 * time.Minute
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsCfg = cfg.TLSConfig.Clone()
	}
	// WebSockets upgrade over HTTP/1.1 only: pin ALPN so a server that
	// prefers h2 does not break the handshake.
	tlsCfg.NextProtos = []string{"http/1.1"}
	netDialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	c := &Client{
		cfg: cfg, base: u, key: wsproto.KeyFromAPIKey(cfg.APIKey), logger: cfg.Logger,
		dedup: wsproto.NewDedup(1024), handlers: make(map[string]Handler),
		http: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			TLSClientConfig: tlsCfg, DialContext: netDialer.DialContext, ForceAttemptHTTP2: false,
			TLSHandshakeTimeout: 10 * time.Second,
		}},
		dialer: &websocket.Dialer{NetDialContext: netDialer.DialContext, TLSClientConfig: tlsCfg,
			HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096},
	}
	return c, nil
}

// Handle registers fn for messages of msgType (replacing an earlier one).
func (c *Client) Handle(msgType string, fn Handler) {
	c.mu.Lock()
	c.handlers[msgType] = fn
	c.mu.Unlock()
}

// SetHello sets what builds the hello of every connection's handshake
// (what this worker is and can do). Without it the hello is empty.
func (c *Client) SetHello(fn func() wsproto.Hello) {
	c.mu.Lock()
	c.hello = fn
	c.mu.Unlock()
}

// OnConnect registers fn to run after every (re)connect, e.g. to send Hello
// and reconcile.
func (c *Client) OnConnect(fn func(ctx context.Context)) {
	c.mu.Lock()
	c.onConnect = append(c.onConnect, fn)
	c.mu.Unlock()
}

// WorkerID is the id the control plane knows this worker by (0 until the
// first registration).
func (c *Client) WorkerID() int64 { return c.workerID.Load() }

// HTTPClient is the client the transport uses for REST calls (its TLS
// settings), for other requests to the control plane.
func (c *Client) HTTPClient() *http.Client { return c.http }

// BearerToken returns the current JWT ("" before registration).
func (c *Client) BearerToken() string {
	t, _ := c.Token()
	return t
}

// Connects counts successful connections (1 + reconnects).
func (c *Client) Connects() int64 { return c.connects.Load() }

// Token returns the current JWT and its expiry.
func (c *Client) Token() (string, time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token, c.tokenExp
}

// Send signs and writes a message; it fails while disconnected.
func (c *Client) Send(ctx context.Context, msgType string, payload any) error {
	c.mu.RLock()
	ws, session := c.ws, c.session
	c.mu.RUnlock()
	if ws == nil {
		return ErrNotConnected
	}
	// Signed with the session key of the connection it is written to: a
	// frame never crosses to another connection.
	env, err := wsproto.Seal(session, msgType, c.seq.Add(1), time.Now(), payload)
	if err != nil {
		return err
	}
	frame, _ := json.Marshal(env)
	return c.writeFrame(ctx, ws, frame)
}

func (c *Client) writeFrame(ctx context.Context, ws *websocket.Conn, frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	dl := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	ws.SetWriteDeadline(dl)
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		ws.Close()
		return fmt.Errorf("writing to control plane: %w", err)
	}
	return nil
}

type tokenResponse struct {
	WorkerID  int64     `json:"worker_id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Error     string    `json:"error"`
}

func (c *Client) post(ctx context.Context, path, bearer string, header http.Header, body any) (*tokenResponse, int, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.JoinPath(path).String(), rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var tr tokenResponse
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&tr)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, fmt.Errorf("%s: %d %s", path, resp.StatusCode, tr.Error)
	}
	return &tr, resp.StatusCode, nil
}

// ErrRevoked means the control plane refused the key for good.
var ErrRevoked = errors.New("worker key refused by the control plane (revoked or unknown)")

func (c *Client) register(ctx context.Context) error {
	tr, code, err := c.post(ctx, "/v1/workers/register", "", nil, map[string]string{"api_key": c.cfg.APIKey})
	if err != nil {
		if code == http.StatusUnauthorized || code == http.StatusForbidden {
			return fmt.Errorf("%w: %v", ErrRevoked, err)
		}
		return fmt.Errorf("registering: %w", err)
	}
	c.setToken(tr)
	return nil
}

func (c *Client) refresh(ctx context.Context) error {
	tok, _ := c.Token()
	h := http.Header{}
	h.Set(wsproto.SignatureHeader, wsproto.SignRefresh(c.key, tok, time.Now()))
	tr, _, err := c.post(ctx, "/v1/workers/refresh-token", tok, h, nil)
	if err != nil {
		// The token may have expired or the secret rotated: start over.
		return c.register(ctx)
	}
	c.setToken(tr)
	return nil
}

func (c *Client) setToken(tr *tokenResponse) {
	c.mu.Lock()
	c.token, c.tokenExp = tr.Token, tr.ExpiresAt
	c.mu.Unlock()
	c.workerID.Store(tr.WorkerID)
}

// tokenFn returns a valid token, refreshing or registering when it is
// missing or close to expiry. Dials call it, so a rotation applies on the
// next reconnect.
func (c *Client) tokenFn(ctx context.Context) (string, error) {
	tok, exp := c.Token()
	switch {
	case tok == "" || time.Until(exp) < 10*time.Second:
		if err := c.register(ctx); err != nil {
			return "", err
		}
	case time.Until(exp) < c.cfg.RefreshBefore:
		if err := c.refresh(ctx); err != nil {
			return "", err
		}
	}
	tok, _ = c.Token()
	return tok, nil
}

// Run keeps the client connected until ctx is done. It returns ctx.Err(),
// or ErrRevoked when the control plane refuses the key.
func (c *Client) Run(ctx context.Context) error {
	go c.refreshLoop(ctx)
	backoff := c.cfg.MinBackoff
	for {
		connected, err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrRevoked) {
			c.logger.Error("transport: control plane refused this worker's key; not retrying", zap.Error(err))
			return err
		}
		if connected {
			backoff = c.cfg.MinBackoff
		}
		// Full jitter: a fleet that lost the control plane together does
		// not come back in lockstep.
		wait := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
		c.logger.Warn("transport: disconnected, reconnecting", zap.Error(err), zap.Duration("in", wait))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

// refreshLoop renews the JWT RefreshBefore its expiry, while connected or
// not, so the next dial has a valid token.
func (c *Client) refreshLoop(ctx context.Context) {
	for {
		_, exp := c.Token()
		wait := time.Until(exp) - c.cfg.RefreshBefore
		if exp.IsZero() {
			wait = time.Second
		}
		if wait < time.Second {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		tok, exp := c.Token()
		if tok == "" || time.Until(exp) > c.cfg.RefreshBefore {
			continue
		}
		if err := c.refresh(ctx); err != nil {
			c.logger.Warn("transport: refreshing token", zap.Error(err))
		} else {
			c.logger.Info("transport: token refreshed")
		}
	}
}

func (c *Client) wsURL() string {
	u := *c.base
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	return u.JoinPath("/v1/workers/ws").String()
}

// handshakeTimeout bounds the wait for the control plane's challenge.
const handshakeTimeout = 15 * time.Second

func (c *Client) runOnce(ctx context.Context) (connected bool, err error) {
	tok, err := c.tokenFn(ctx)
	if err != nil {
		return false, err
	}
	clientNonce := wsproto.NewNonce()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	h.Set(wsproto.NonceHeader, clientNonce)
	ws, resp, err := c.dialer.DialContext(ctx, c.wsURL(), h)
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			c.mu.Lock()
			c.token = "" // register again next time; a revoked key fails there
			c.mu.Unlock()
		}
		return false, fmt.Errorf("dialing %s: %w", c.wsURL(), err)
	}
	ws.SetReadLimit(wsproto.MaxFrameBytes)
	var in wsproto.Window
	session, err := c.handshake(ws, &in, clientNonce)
	if err != nil {
		ws.Close()
		return false, err
	}
	c.mu.Lock()
	c.ws, c.session = ws, session
	hooks := append([]func(context.Context){}, c.onConnect...)
	c.mu.Unlock()
	c.connects.Add(1)
	c.logger.Info("transport: connected to control plane", zap.String("url", c.wsURL()), zap.Int64("worker", c.WorkerID()))

	connCtx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		c.mu.Lock()
		if c.ws == ws {
			c.ws = nil
		}
		c.mu.Unlock()
		ws.Close()
	}()
	go func() {
		<-connCtx.Done()
		ws.Close()
	}()
	for _, fn := range hooks {
		go fn(connCtx)
	}
	for {
		kind, frame, err := ws.ReadMessage()
		if err != nil {
			return true, err
		}
		if kind != websocket.TextMessage {
			continue
		}
		env, err := wsproto.Open(session, &in, frame, time.Now())
		if err != nil {
			c.logger.Warn("transport: dropping invalid frame from control plane", zap.Error(err))
			return true, err
		}
		if !c.dedup.First(env.I) {
			continue
		}
		c.mu.RLock()
		fn := c.handlers[env.T]
		c.mu.RUnlock()
		if fn == nil {
			continue
		}
		if err := fn(connCtx, env.P); err != nil {
			c.logger.Warn("transport: handling message", zap.String("type", env.T), zap.Error(err))
		}
	}
}

// handshake reads the control plane's challenge, checks that it is signed
// with the session key (only a holder of this worker's key can), and
// answers with the signed hello. It returns the session key.
func (c *Client) handshake(ws *websocket.Conn, in *wsproto.Window, clientNonce string) (wsproto.Key, error) {
	ws.SetReadDeadline(time.Now().Add(handshakeTimeout))
	defer ws.SetReadDeadline(time.Time{})
	kind, frame, err := ws.ReadMessage()
	if err != nil {
		return wsproto.Key{}, fmt.Errorf("%w: waiting for the challenge: %v", wsproto.ErrHandshake, err)
	}
	env, err := wsproto.Decode(frame)
	if err != nil || kind != websocket.TextMessage || env.T != wsproto.TypeChallenge {
		return wsproto.Key{}, fmt.Errorf("%w: the control plane's first frame is not a challenge", wsproto.ErrHandshake)
	}
	var ch wsproto.Challenge
	if err := json.Unmarshal(env.P, &ch); err != nil {
		return wsproto.Key{}, fmt.Errorf("%w: challenge: %v", wsproto.ErrHandshake, err)
	}
	if err := wsproto.CheckNonce(ch.Nonce); err != nil {
		return wsproto.Key{}, err
	}
	session := wsproto.SessionKey(c.key, clientNonce, ch.Nonce)
	if _, err := wsproto.Open(session, in, frame, time.Now()); err != nil {
		return wsproto.Key{}, fmt.Errorf("%w: challenge not signed with this worker's key: %v", wsproto.ErrHandshake, err)
	}
	c.mu.RLock()
	helloFn := c.hello
	c.mu.RUnlock()
	var msg wsproto.Hello
	if helloFn != nil {
		msg = helloFn()
	}
	hello, err := wsproto.Seal(session, wsproto.TypeHello, c.seq.Add(1), time.Now(), msg)
	if err != nil {
		return wsproto.Key{}, err
	}
	b, _ := json.Marshal(hello)
	ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return wsproto.Key{}, fmt.Errorf("%w: sending the hello: %v", wsproto.ErrHandshake, err)
	}
	return session, nil
}
