package httpx

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock records sleeps instead of sleeping.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	f.mu.Unlock()
	return nil
}

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestRetriesServerErrorsWithBoundedBackoff(t *testing.T) {
	var calls atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 4 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	})
	clock := newFakeClock()
	for _, jitter := range []float64{0, 0.999} {
		calls.Store(0)
		clock.sleeps = nil
		c := New(WithPrefix(s.URL), WithClock(clock), WithJitter(func() float64 { return jitter }),
			WithRetry(RetryConfig{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}))
		var out struct{ OK bool }
		if err := c.Do(context.Background(), "GET", "/x", nil, &out); err != nil || !out.OK {
			t.Fatalf("%v %v", out, err)
		}
		if calls.Load() != 4 || len(clock.sleeps) != 3 {
			t.Fatalf("calls %d sleeps %v", calls.Load(), clock.sleeps)
		}
		// Backoff n is base·2^(n-1) scaled into [50%, 100%).
		for i, d := range clock.sleeps {
			full := 100 * time.Millisecond << i
			if d < full/2 || d > full {
				t.Fatalf("sleep %d = %s, want within [%s, %s]", i, d, full/2, full)
			}
		}
	}
	// The cap applies.
	c := New(WithRetry(RetryConfig{BaseDelay: time.Second, MaxDelay: 3 * time.Second}), WithJitter(func() float64 { return 0.999 }))
	if d := c.Backoff(10); d > 3*time.Second || d < 1500*time.Millisecond {
		t.Fatalf("capped backoff %s", d)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	var calls atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1); w.WriteHeader(500) })
	c := New(WithPrefix(s.URL), WithClock(newFakeClock()), WithRetry(RetryConfig{MaxAttempts: 3}))
	err := c.Do(context.Background(), "POST", "/x", map[string]int{"a": 1}, nil)
	if StatusOf(err) != 500 || calls.Load() != 3 {
		t.Fatalf("err %v calls %d", err, calls.Load())
	}
}

func TestNoRetryOn4xx(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 409, 422} {
		var calls atomic.Int32
		s := server(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.WriteHeader(code)
			w.Write([]byte(`{"message":"nope"}`))
		})
		c := New(WithPrefix(s.URL), WithClock(newFakeClock()))
		err := c.Do(context.Background(), "GET", "/x", nil, nil)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != code || calls.Load() != 1 {
			t.Fatalf("%d: err %v calls %d", code, err, calls.Load())
		}
	}
}

// A 429 with Retry-After holds every request of the client for that long.
func TestRetryAfterSharedWindow(t *testing.T) {
	var calls atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write([]byte(`{}`))
	})
	clock := newFakeClock()
	c := New(WithPrefix(s.URL), WithClock(clock), WithJitter(func() float64 { return 0 }),
		WithRetry(RetryConfig{BaseDelay: 10 * time.Millisecond, MaxDelay: time.Minute}))
	start := clock.Now()
	if err := c.Do(context.Background(), "GET", "/a", nil, nil); err != nil {
		t.Fatal(err)
	}
	if waited := clock.Now().Sub(start); waited < 7*time.Second {
		t.Fatalf("waited %s, want the 7s of Retry-After", waited)
	}
	// Another request during an open window waits too.
	c.block(5 * time.Second)
	before := clock.Now()
	if err := c.Do(context.Background(), "GET", "/b", nil, nil); err != nil {
		t.Fatal(err)
	}
	if clock.Now().Sub(before) < 5*time.Second {
		t.Fatal("second request ignored the shared 429 window")
	}
	if d := parseRetryAfter(start.Add(30*time.Second).Format(http.TimeFormat), start); d != 30*time.Second {
		t.Fatalf("HTTP-date Retry-After: %s", d)
	}
}

func TestContextCancellation(t *testing.T) {
	release := make(chan struct{})
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := New(WithPrefix(s.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Do(ctx, "GET", "/slow", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("cancellation did not stop the request")
	}
	// A cancelled context also stops a backoff wait.
	s2 := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	c2 := New(WithPrefix(s2.URL), WithRetry(RetryConfig{MaxAttempts: 10, BaseDelay: time.Hour}))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	start = time.Now()
	if err := c2.Do(ctx2, "GET", "/", nil, nil); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("backoff not cancelled: %v after %s", err, time.Since(start))
	}
}

func TestAuthAndBodyResentOnRetry(t *testing.T) {
	var calls atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 100)
		n, _ := r.Body.Read(buf)
		if r.Header.Get("Authorization") != "Bearer tok" || string(buf[:n]) != `{"a":1}` {
			w.WriteHeader(400)
			return
		}
		if calls.Add(1) == 1 {
			w.WriteHeader(500)
			return
		}
		w.Write([]byte(`{}`))
	})
	c := New(WithPrefix(s.URL), WithBearer("tok"), WithClock(newFakeClock()))
	if err := c.Do(context.Background(), "POST", "/", map[string]int{"a": 1}, nil); err != nil {
		t.Fatal(err)
	}
}

// Libraries given the client as an http.Client get the same retries, with
// the request body sent again on each attempt, and a final refusal as an
// *APIError.
func TestDoerRetriesWithBody(t *testing.T) {
	var calls atomic.Int32
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n := calls.Add(1)
		switch {
		case string(b) != `{"a":1}`:
			w.WriteHeader(http.StatusBadRequest)
		case n == 1:
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.Write([]byte("ok " + r.Header.Get("X-Lib")))
		}
	})
	d := New(WithClock(newFakeClock())).HTTPClient()
	req, _ := http.NewRequest("POST", srv.URL+"/x", strings.NewReader(`{"a":1}`))
	req.Header.Set("X-Lib", "v1")
	resp, err := d.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ok v1" || calls.Load() != 2 {
		t.Fatalf("%d %q after %d calls", resp.StatusCode, b, calls.Load())
	}
	req, _ = http.NewRequest("POST", srv.URL+"/x", strings.NewReader(`{}`))
	if _, err := d.Do(req); StatusOf(err) != http.StatusBadRequest || calls.Load() != 3 {
		t.Fatalf("refused request: %v after %d calls", err, calls.Load())
	}
}
