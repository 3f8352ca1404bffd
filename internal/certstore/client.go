package certstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// API paths of the control plane's storage API (Bearer proxy token).
const (
	PathValue  = "/v1/proxy/storage/value"  // GET, PUT, DELETE ?key=
	PathStat   = "/v1/proxy/storage/stat"   // GET ?key=
	PathList   = "/v1/proxy/storage/list"   // GET ?prefix=
	PathLock   = "/v1/proxy/storage/lock"   // POST LockRequest → LockResponse
	PathUnlock = "/v1/proxy/storage/unlock" // POST LockRequest
)

// HeaderModified carries a value's modification time (RFC 3339).
const HeaderModified = "X-Modified"

// LockRequest takes, extends or releases a lock.
type LockRequest struct {
	Name   string `json:"name"`
	Holder string `json:"holder"`
	TTLms  int64  `json:"ttl_ms,omitempty"`
}

// LockResponse says whether the holder has the lock.
type LockResponse struct {
	Held bool `json:"held"`
}

// ListResponse lists a directory.
type ListResponse struct {
	Keys []string `json:"keys"`
}

// ErrUnavailable wraps failures to reach the control plane or its
// database (transport errors, 5xx): the caller may use its local copy.
var ErrUnavailable = errors.New("certificate storage unavailable")

// Client calls the control plane's storage API.
type Client struct {
	BaseURL string // e.g. http://10.50.0.1:8080
	Token   string
	HTTP    *http.Client
}

func (c *Client) do(ctx context.Context, method, p string, q url.Values, body []byte) (*http.Response, error) {
	u := strings.TrimRight(c.BaseURL, "/") + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fs.ErrNotExist
	case resp.StatusCode >= 500:
		msg := apiError(resp)
		return nil, fmt.Errorf("%w: control plane answered %d: %s", ErrUnavailable, resp.StatusCode, msg)
	case resp.StatusCode >= 300:
		msg := apiError(resp)
		return nil, fmt.Errorf("control plane answered %d: %s", resp.StatusCode, msg)
	}
	return resp, nil
}

func apiError(resp *http.Response) string {
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(b))
}

func keyQuery(name, v string) url.Values { return url.Values{name: {v}} }

// Get returns key's value and modification time.
func (c *Client) Get(ctx context.Context, key string) ([]byte, time.Time, error) {
	resp, err := c.do(ctx, http.MethodGet, PathValue, keyQuery("key", key), nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxValueLen+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if len(b) > MaxValueLen {
		return nil, time.Time{}, fmt.Errorf("value of %s is too large", key)
	}
	mod, _ := time.Parse(time.RFC3339Nano, resp.Header.Get(HeaderModified))
	return b, mod, nil
}

// Put stores value at key.
func (c *Client) Put(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	resp, err := c.do(ctx, http.MethodPut, PathValue, keyQuery("key", key), value)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Delete removes key (and what is below it).
func (c *Client) Delete(ctx context.Context, key string) error {
	resp, err := c.do(ctx, http.MethodDelete, PathValue, keyQuery("key", key), nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func decode[T any](resp *http.Response) (T, error) {
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&v); err != nil {
		return v, fmt.Errorf("%w: decoding the answer: %v", ErrUnavailable, err)
	}
	return v, nil
}

// Stat describes key.
func (c *Client) Stat(ctx context.Context, key string) (KeyInfo, error) {
	resp, err := c.do(ctx, http.MethodGet, PathStat, keyQuery("key", key), nil)
	if err != nil {
		return KeyInfo{}, err
	}
	return decode[KeyInfo](resp)
}

// List lists prefix's direct children.
func (c *Client) List(ctx context.Context, prefix string) ([]string, error) {
	resp, err := c.do(ctx, http.MethodGet, PathList, keyQuery("prefix", prefix), nil)
	if err != nil {
		return nil, err
	}
	l, err := decode[ListResponse](resp)
	return l.Keys, err
}

// TryLock takes or extends lock name for holder.
func (c *Client) TryLock(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	b, _ := json.Marshal(LockRequest{Name: name, Holder: holder, TTLms: ttl.Milliseconds()})
	resp, err := c.do(ctx, http.MethodPost, PathLock, nil, b)
	if err != nil {
		return false, err
	}
	l, err := decode[LockResponse](resp)
	return l.Held, err
}

// Unlock releases holder's lock name.
func (c *Client) Unlock(ctx context.Context, name, holder string) error {
	b, _ := json.Marshal(LockRequest{Name: name, Holder: holder})
	resp, err := c.do(ctx, http.MethodPost, PathUnlock, nil, b)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
