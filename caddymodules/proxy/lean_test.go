package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wisehosting/wisehosting/internal/network"
)

// rawBackend answers every request on its connections with resp, reading
// requests without allocating (so a benchmark counts only the proxy's).
func rawBackend(t testing.TB, resp string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) <= 2 { // end of the request head
						if _, err := c.Write([]byte(resp)); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// rawClient sends GET / with Host on one keep-alive connection and reads
// the response (Content-Length framed), allocating nothing per request.
type rawClient struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

func newRawClient(t testing.TB, addr, host string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{c: c, br: bufio.NewReader(c), req: []byte("GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")}
}

// do returns the status code and the body length.
func (rc *rawClient) do(t testing.TB) (int, int) {
	if _, err := rc.c.Write(rc.req); err != nil {
		t.Fatal(err)
	}
	status, n := 0, 0
	for first := true; ; first = false {
		line, err := rc.br.ReadSlice('\n')
		if err != nil {
			t.Fatal(err)
		}
		if first && len(line) > 12 {
			status, _ = strconv.Atoi(string(line[9:12]))
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if _, err := rc.br.Discard(n); err != nil {
		t.Fatal(err)
	}
	return status, n
}

const benchResponse = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Wed, 02 Dec 2026 06:00:00 GMT\r\n\r\nsite /"

// BenchmarkForwardPath: one request through net/http's server and the
// forwarding path to a backend, lean against httputil.ReverseProxy, with
// allocations per request (the client and the backend allocate nothing).
func BenchmarkForwardPath(b *testing.B) {
	up := rawBackend(b, benchResponse)
	setTable(&network.Table{Hosts: map[string]*network.HostEntry{
		"site.apps.test": {App: "site", Paths: []network.PathEntry{{Prefix: "/", Upstreams: []network.Upstream{{Dial: up, Weight: 1}}}}},
	}})
	for _, lean := range []bool{true, false} {
		name := "lean"
		if !lean {
			name = "httputil"
		}
		b.Run(name, func(b *testing.B) {
			rt := &Route{Forward: true}
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
				if !lean {
					r.Header.Set("Upgrade", "none") // leaves the lean path
				}
				if err := rt.ServeHTTP(w, r, nil); err != nil {
					w.WriteHeader(599)
				}
			}))
			defer front.Close()
			rc := newRawClient(b, front.Listener.Addr().String(), "site.apps.test")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if code, n := rc.do(b); code != 200 || n != 6 {
					b.Fatalf("status %d, %d bytes", code, n)
				}
			}
		})
	}
}

// front serves rt like Caddy would (the variables map in the context,
// errors answered with their status).
func front(t testing.TB) *httptest.Server {
	rt := &Route{Forward: true}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
		if err := rt.ServeHTTP(w, r, nil); err != nil {
			var he caddyhttp.HandlerError
			errors.As(err, &he)
			w.WriteHeader(he.StatusCode)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func route(up string) {
	setTable(&network.Table{Hosts: map[string]*network.HostEntry{
		"site.test": {App: "site", Paths: []network.PathEntry{{Prefix: "/", Upstreams: []network.Upstream{{Dial: up, Weight: 1}}}}},
	}})
}

func get(t testing.TB, c *http.Client, method, url string, h http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Host = "site.test"
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// The lean path sends what a proxy must: Host kept, forwarded headers set
// (client-sent ones dropped), hop-by-hop headers and those the Connection
// header names removed both ways; it streams, passes trailers and 103
// Early Hints, reuses connections, and sends HEAD and 304 without body.
func TestLeanForwardHeadersAndFraming(t *testing.T) {
	var conns atomic.Int64
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			fmt.Fprintf(w, "host=%s xff=%s xfh=%s xfp=%s fwd=%q drop=%q keep=%q te=%q ka=%q q=%s",
				r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"),
				r.Header.Get("Forwarded"), r.Header.Get("X-Drop"), r.Header.Get("X-Keep"), r.Header.Get("Te"), r.Header.Get("Keep-Alive"), r.URL.RawQuery)
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("Connection", "X-Hop")
			w.Header().Set("X-Hop", "1")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Write([]byte("part1 "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part2"))
			w.Header().Set("X-Sum", "42")
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.Write([]byte("final"))
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
		}
	}))
	app.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	app.Start()
	defer app.Close()
	route(app.Listener.Addr().String())
	f := front(t)
	c := f.Client()

	_, body := get(t, c, "GET", f.URL+"/echo?a=1&b=%20", http.Header{
		"Connection": {"keep-alive, X-Drop"}, "X-Drop": {"1"}, "X-Keep": {"2"}, "Keep-Alive": {"300"},
		"X-Forwarded-For": {"6.6.6.6"}, "X-Forwarded-Host": {"evil"}, "Forwarded": {"for=6.6.6.6"}, "Te": {"trailers"},
	})
	if want := `host=site.test xff=127.0.0.1 xfh=site.test xfp=http fwd="" drop="" keep="2" te="trailers" ka="" q=a=1&b=%20`; body != want {
		t.Fatalf("upstream saw\n%s\nwant\n%s", body, want)
	}

	resp, body := get(t, c, "GET", f.URL+"/trailers", nil)
	if body != "part1 part2" || resp.Trailer.Get("X-Sum") != "42" || resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Fatalf("streamed response: %q trailer %v header %v", body, resp.Trailer, resp.Header)
	}

	var hints []int
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, code)
		return nil
	}})
	req, _ := http.NewRequestWithContext(ctx, "GET", f.URL+"/hints", nil)
	req.Host = "site.test"
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 || resp.Header.Get("Link") != "" || len(hints) != 1 || hints[0] != 103 {
		t.Fatalf("early hints: %v %v %v", err, resp, hints)
	} else {
		resp.Body.Close()
	}

	if resp, body := get(t, c, "HEAD", f.URL+"/", nil); resp.StatusCode != 200 || body != "" || resp.ContentLength != 5 {
		t.Fatalf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	if resp, body := get(t, c, "GET", f.URL+"/304", nil); resp.StatusCode != 304 || body != "" {
		t.Fatalf("304: %d %q", resp.StatusCode, body)
	}
	before := conns.Load()
	for i := 0; i < 20; i++ {
		if resp, body := get(t, c, "GET", f.URL+"/", nil); resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("GET: %d %q", resp.StatusCode, body)
		}
	}
	if n := conns.Load() - before; n != 0 {
		t.Fatalf("sequential requests opened %d new upstream connections, want 0 (keep-alive)", n)
	}
}

// An upstream that closes a kept-alive connection: the next GET goes out
// again on a new connection instead of failing; a request that cannot be
// replayed gets a 502.
func TestLeanForwardRetriesClosedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // one request per connection, then close, as an idle timeout would
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil || len(line) <= 2 {
						break
					}
				}
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			}()
		}
	}()
	route(ln.Addr().String())
	f := front(t)
	for i := 0; i < 10; i++ {
		if resp, body := get(t, f.Client(), "GET", f.URL+"/", nil); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond) // let the upstream's close arrive
	}
	codes := map[int]int{}
	for i := 0; i < 10; i++ {
		resp, _ := get(t, f.Client(), "DELETE", f.URL+"/", nil)
		codes[resp.StatusCode]++
		time.Sleep(20 * time.Millisecond)
	}
	if codes[200] == 0 || codes[502] == 0 || codes[200]+codes[502] != 10 {
		t.Fatalf("DELETE on closed connections: %v, want 200s (new connections) and 502s (closed ones, not replayed)", codes)
	}
}

// When the client leaves while the upstream has not answered, the proxy
// drops the upstream connection (the upstream's request context ends).
func TestLeanForwardClientGone(t *testing.T) {
	done := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(done)
	}))
	defer app.Close()
	route(app.Listener.Addr().String())
	f := front(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.URL+"/wait", nil)
	req.Host = "site.test"
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	if _, err := f.Client().Do(req); err == nil {
		t.Fatal("request not canceled")
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("upstream request still open 30 s after the client left")
	}
}

// Upgrades (WebSocket) and requests with a body take the httputil path:
// the upgraded connection carries bytes both ways, the body arrives whole.
func TestForwardUpgradeAndBody(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo " + line)
			brw.Flush()
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d", r.Method, len(b))
	}))
	defer app.Close()
	route(app.Listener.Addr().String())
	f := front(t)
	req, _ := http.NewRequest("POST", f.URL+"/", strings.NewReader(strings.Repeat("x", 100000)))
	req.Host = "site.test"
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "POST 100000" {
		t.Fatalf("body: %q", b)
	}
	c, err := net.Dial("tcp", f.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: site.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	ur, err := http.ReadResponse(br, nil)
	if err != nil || ur.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", err, ur)
	}
	fmt.Fprintf(c, "hi\n")
	if line, _ := br.ReadString('\n'); line != "echo hi\n" {
		t.Fatalf("upgraded connection: %q", line)
	}
}
