// Package httpx is the one outbound HTTP client of the control plane: every
// integration (git providers, DNS providers, OAuth, Hetzner, webhooks) goes
// through an APIClient, which retries 5xx answers and network errors with
// exponential backoff and jitter, honours 429 Retry-After with a window
// shared by all requests of the client, never retries other 4xx, and stops
// at once when the context is cancelled.
//
// URLs that users give (webhooks, notification channels) must use
// NewWebhookClient, whose dialer refuses loopback, private, link-local and
// metadata addresses after resolving the name, so neither a hostile name
// nor a redirect reaches the control plane's own network.
package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RetryConfig shapes retries.
type RetryConfig struct {
	// MaxAttempts counts the first try. Default 4; 1 disables retries.
	MaxAttempts int
	// BaseDelay is the first backoff; each retry doubles it. Default 250ms.
	BaseDelay time.Duration
	// MaxDelay caps one backoff and one Retry-After wait. Default 30s.
	MaxDelay time.Duration
}

// Clock abstracts time for tests.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// APIClient calls one HTTP API.
type APIClient struct {
	prefix    string
	http      *http.Client
	auth      func(*http.Request) error
	retry     RetryConfig
	clock     Clock
	jitter    func() float64 // in [0, 1)
	userAgent string
	maxBody   int64

	mu           sync.Mutex
	blockedUntil time.Time // shared 429 window
}

// Option configures an APIClient.
type Option func(*APIClient)

// WithPrefix sets the base URL that request paths are appended to.
func WithPrefix(p string) Option { return func(c *APIClient) { c.prefix = strings.TrimRight(p, "/") } }

// WithHTTPClient replaces the underlying client (default: NewSecureClient).
func WithHTTPClient(h *http.Client) Option { return func(c *APIClient) { c.http = h } }

// WithAuth sets a function that authenticates each request (and each retry).
func WithAuth(f func(*http.Request) error) Option { return func(c *APIClient) { c.auth = f } }

// WithBearer authenticates with "Authorization: Bearer <token>".
func WithBearer(token string) Option {
	return WithAuth(func(r *http.Request) error { r.Header.Set("Authorization", "Bearer "+token); return nil })
}

// WithRetry sets the retry policy.
func WithRetry(r RetryConfig) Option { return func(c *APIClient) { c.retry = r } }

// WithClock injects time (tests).
func WithClock(cl Clock) Option { return func(c *APIClient) { c.clock = cl } }

// WithJitter injects the random source of the backoff jitter (tests).
func WithJitter(f func() float64) Option { return func(c *APIClient) { c.jitter = f } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *APIClient) { c.userAgent = ua } }

// WithMaxResponse caps how much of a response body is read (default 8 MiB).
func WithMaxResponse(n int64) Option { return func(c *APIClient) { c.maxBody = n } }

// New returns an APIClient.
func New(opts ...Option) *APIClient {
	c := &APIClient{clock: realClock{}, jitter: rand.Float64, userAgent: "WiseHosting", maxBody: 8 << 20}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = NewSecureClient()
	}
	if c.retry.MaxAttempts <= 0 {
		c.retry.MaxAttempts = 4
	}
	if c.retry.BaseDelay <= 0 {
		c.retry.BaseDelay = 250 * time.Millisecond
	}
	if c.retry.MaxDelay <= 0 {
		c.retry.MaxDelay = 30 * time.Second
	}
	return c
}

// APIError is a non-2xx answer.
type APIError struct {
	Method, URL string
	Status      int
	Body        string
	RetryAfter  time.Duration
}

func (e *APIError) Error() string {
	body := e.Body
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, strings.TrimSpace(body))
}

// StatusOf returns the HTTP status of an *APIError in err's chain, else 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// Response is a raw answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends in as JSON (if non-nil) and decodes a 2xx answer into out (if
// non-nil). Non-2xx answers are *APIError.
func (c *APIClient) Do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	h := http.Header{"Accept": {"application/json"}}
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		h.Set("Content-Type", "application/json")
	}
	resp, err := c.DoRaw(ctx, method, path, body, h)
	if err != nil {
		return err
	}
	if out != nil && len(bytes.TrimSpace(resp.Body)) > 0 {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return fmt.Errorf("decoding %s %s: %w", method, path, err)
		}
	}
	return nil
}

// DoRaw sends body with headers and returns the raw 2xx answer.
func (c *APIClient) DoRaw(ctx context.Context, method, path string, body []byte, headers http.Header) (*Response, error) {
	return c.doURL(ctx, method, c.prefix+path, body, headers)
}

// HTTPClient adapts the client to libraries that take an injected client
// with net/http's Do method (the libdns providers): each request they make
// goes through the same retries and shared 429 window as DoRaw.
func (c *APIClient) HTTPClient() *Doer { return &Doer{c: c} }

// Doer is an APIClient seen as an http.Client (see APIClient.HTTPClient).
type Doer struct{ c *APIClient }

// Do sends req (its URL taken as is, without the client's prefix) and
// returns the 2xx answer as a response with a fully read body. A final
// non-2xx answer is returned as an *APIError, not as a response, so its
// status stays visible to the caller through the library's error.
func (d *Doer) Do(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading request body: %w", err)
		}
		body = b
	}
	resp, err := d.c.doURL(req.Context(), req.Method, req.URL.String(), body, req.Header)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", resp.Status, http.StatusText(resp.Status)),
		StatusCode:    resp.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        resp.Header,
		Body:          io.NopCloser(bytes.NewReader(resp.Body)),
		ContentLength: int64(len(resp.Body)),
		Request:       req,
	}, nil
}

func (c *APIClient) doURL(ctx context.Context, method, url string, body []byte, headers http.Header) (*Response, error) {
	var lastErr error
	for attempt := 0; attempt < c.retry.MaxAttempts; attempt++ {
		if err := c.waitBlocked(ctx); err != nil {
			return nil, err
		}
		if attempt > 0 {
			if err := c.clock.Sleep(ctx, c.Backoff(attempt)); err != nil {
				return nil, err
			}
		}
		resp, err := c.once(ctx, method, url, body, headers)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ae *APIError
		if errors.As(err, &ae) {
			switch {
			case ae.Status == http.StatusTooManyRequests:
				c.block(ae.RetryAfter)
				continue
			case ae.Status >= 500:
				continue
			default:
				return nil, err // other 4xx (and 3xx): retrying will not help
			}
		}
		// Network error: retry.
	}
	return nil, fmt.Errorf("giving up after %d attempts: %w", c.retry.MaxAttempts, lastErr)
}

// Backoff is the wait before retry number attempt (1-based): base·2^(n-1),
// capped, scaled by a random 50–100%.
func (c *APIClient) Backoff(attempt int) time.Duration {
	d := c.retry.BaseDelay << (attempt - 1)
	if d > c.retry.MaxDelay || d <= 0 {
		d = c.retry.MaxDelay
	}
	return time.Duration(float64(d) * (0.5 + 0.5*c.jitter()))
}

func (c *APIClient) block(retryAfter time.Duration) {
	if retryAfter <= 0 {
		retryAfter = c.retry.BaseDelay
	}
	retryAfter = min(retryAfter, c.retry.MaxDelay)
	until := c.clock.Now().Add(retryAfter)
	c.mu.Lock()
	if until.After(c.blockedUntil) {
		c.blockedUntil = until
	}
	c.mu.Unlock()
}

// waitBlocked holds every request of the client while a 429 window is open.
func (c *APIClient) waitBlocked(ctx context.Context) error {
	c.mu.Lock()
	until := c.blockedUntil
	c.mu.Unlock()
	if d := until.Sub(c.clock.Now()); d > 0 {
		return c.clock.Sleep(ctx, d)
	}
	return nil
}

func (c *APIClient) once(ctx context.Context, method, url string, body []byte, headers http.Header) (*Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range headers {
		req.Header[k] = append([]string(nil), v...)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if c.auth != nil {
		if err := c.auth(req); err != nil {
			return nil, fmt.Errorf("authenticating request: %w", err)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &APIError{Method: method, URL: url, Status: resp.StatusCode, Body: string(b),
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now())}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
