package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/net/http/httpguts"
)

// The lean path forwards the common request, one without a body, upgrade
// or Expect, over HTTP/1.1 on the handler's own goroutine: the request is
// written straight from the incoming one to a pooled upstream connection
// (no clone, no header copy), and the response is read on the same
// goroutine and moved into the client's header map. Everything else goes
// through httputil.ReverseProxy (forward.go).

const (
	// maxIdlePerAddr bounds the idle connections kept per upstream address.
	maxIdlePerAddr = 256
	// idleTimeout closes connections unused for this long.
	idleTimeout = 90 * time.Second
	// checkAfter: a connection idle for longer than this is checked for a
	// close by the upstream before it is used (many servers close idle
	// keep-alive connections after a few seconds).
	checkAfter = time.Second
	// maxResponseHead bounds an upstream's status line and headers.
	maxResponseHead = 1 << 20
)

// upConn is one keep-alive connection to an upstream.
type upConn struct {
	conn net.Conn
	lim  limitedConn
	br   *bufio.Reader
	bw   *bufio.Writer
	idle time.Time // when it was last put back
	buf  []byte    // a response head's bytes while they are read
}

// limitedConn is the reader under an upConn's bufio.Reader: it caps how
// much of a response's head is read, and gives up waiting for the
// upstream once the request's context is done (the client left): reads
// wake up every watchEvery to look, which costs no allocation, unlike a
// context.AfterFunc per request.
type limitedConn struct {
	net.Conn
	n   int64
	ctx context.Context // of the request being served; nil while idle
}

const watchEvery = time.Second

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	for {
		n, err := l.Conn.Read(p)
		if n == 0 && l.ctx != nil && errors.Is(err, os.ErrDeadlineExceeded) && l.ctx.Err() == nil {
			l.Conn.SetReadDeadline(time.Now().Add(watchEvery))
			continue
		}
		l.n -= int64(n)
		return n, err
	}
}

var errHeadTooLarge = errors.New("upstream response head larger than 1 MiB")

// aLongTimeAgo is a deadline in the past: blocked I/O returns at once.
var aLongTimeAgo = time.Unix(1, 0)

type addrPool struct {
	mu   sync.Mutex
	idle []*upConn
}

var (
	pools      sync.Map // upstream address → *addrPool
	sweepStart sync.Once
	dialer     = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
)

func poolFor(addr string) *addrPool {
	if p, ok := pools.Load(addr); ok {
		return p.(*addrPool)
	}
	sweepStart.Do(func() { go sweep() })
	p, _ := pools.LoadOrStore(addr, new(addrPool))
	return p.(*addrPool)
}

// sweep closes connections idle for longer than idleTimeout.
func sweep() {
	for range time.Tick(idleTimeout / 3) {
		cut := time.Now().Add(-idleTimeout)
		pools.Range(func(k, v any) bool {
			p := v.(*addrPool)
			p.mu.Lock()
			keep := p.idle[:0]
			for _, c := range p.idle {
				if c.idle.Before(cut) {
					c.conn.Close()
				} else {
					keep = append(keep, c)
				}
			}
			clear(p.idle[len(keep):])
			p.idle = keep
			p.mu.Unlock()
			return true
		})
	}
}

// get returns an idle connection to addr (reused true) or dials one.
func (p *addrPool) get(ctx context.Context, addr string) (*upConn, bool, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if time.Since(c.idle) < checkAfter || c.alive() {
			return c, true, nil
		}
		c.conn.Close()
	}
	c, err := dial(ctx, addr)
	return c, false, err
}

func (p *addrPool) put(c *upConn) {
	c.idle = time.Now()
	p.mu.Lock()
	if len(p.idle) < maxIdlePerAddr {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.conn.Close()
	}
}

func dial(ctx context.Context, addr string) (*upConn, error) {
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &upConn{conn: conn}
	c.lim.Conn = conn
	c.br = bufio.NewReaderSize(&c.lim, 4096)
	c.bw = bufio.NewWriterSize(conn, 4096)
	return c, nil
}

// alive reports whether an idle connection is still open: the upstream
// has neither closed it nor sent anything unasked.
func (c *upConn) alive() bool {
	c.conn.SetReadDeadline(aLongTimeAgo)
	c.lim.n = 1
	_, err := c.br.Peek(1)
	c.conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// leanOK reports whether r can take the lean path.
func leanOK(r *http.Request) bool {
	if r.ContentLength != 0 || r.Method == http.MethodConnect || r.Trailer != nil {
		return false
	}
	h := r.Header
	if _, ok := h["Expect"]; ok {
		return false
	}
	if _, ok := h["Upgrade"]; ok {
		return false
	}
	return r.URL.Opaque == "" && cleanQuery(r.URL.RawQuery)
}

// cleanQuery reports whether q is a query httputil.ReverseProxy would
// pass unchanged (no `;`, no broken %-escapes).
func cleanQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// hopByHop reports whether a header (canonical key) applies to one
// connection only (RFC 9110 7.6.1) or is one the proxy sets itself.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// listed reports whether the Connection header values conn name key.
func listed(conn []string, key string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), key) {
				return true
			}
		}
	}
	return false
}

// replayable: a request that may be sent again when a reused connection
// turns out to be closed (net/http's rule).
func replayable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := r.Header["Idempotency-Key"]
	_, b := r.Header["X-Idempotency-Key"]
	return a || b
}

// writeRequest writes r's head for the upstream.
func writeRequest(bw *bufio.Writer, r *http.Request) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if p := r.URL.EscapedPath(); p != "" {
		bw.WriteString(p)
	} else {
		bw.WriteByte('/')
	}
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(r.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		switch k {
		case "Host", "Content-Length", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			continue
		}
		if hopByHop(k) || (conn != nil && listed(conn, k)) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		bw.WriteString("Te: trailers\r\n")
	}
	if _, ok := r.Header["Content-Length"]; ok || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		bw.WriteString("Content-Length: 0\r\n")
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Forwarded-Host: ")
	bw.WriteString(r.Host)
	if r.TLS != nil {
		bw.WriteString("\r\nX-Forwarded-Proto: https\r\n\r\n")
	} else {
		bw.WriteString("\r\nX-Forwarded-Proto: http\r\n\r\n")
	}
	return bw.Flush()
}

// copyBuf holds the body copy buffers of both paths (32 KiB each).
var copyBuf = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// leanForward proxies r to addr. The error is one for the client (502,
// 504, 499), or nil once the response is under way.
func leanForward(w http.ResponseWriter, r *http.Request, addr string) error {
	ctx := r.Context()
	pool := poolFor(addr)
	h := w.Header()
	var c *upConn
	var hd head
	for attempt := 0; ; attempt++ {
		var reused bool
		var err error
		if attempt == 0 {
			c, reused, err = pool.get(ctx, addr)
		} else {
			c, err = dial(ctx, addr)
		}
		if err != nil {
			return upstreamError(ctx, err)
		}
		c.lim.ctx = ctx
		c.conn.SetReadDeadline(time.Now().Add(watchEvery))
		hd, err = roundTrip(w, h, c, r)
		if err == nil {
			break
		}
		c.conn.Close()
		if !reused || !retryable(err) || !replayable(r) || ctx.Err() != nil {
			return upstreamError(ctx, err)
		}
	}
	if hd.trailer != "" {
		h["Trailer"] = []string{hd.trailer}
	}
	w.WriteHeader(hd.status)

	err := copyBody(w, h, c, hd, hd.length < 0 || strings.HasPrefix(h.Get("Content-Type"), "text/event-stream"))
	if err != nil {
		c.conn.Close()
		if errors.Is(err, errClientWrite) {
			return nil // the client is gone; nothing to answer
		}
		// The response is truncated: abort the client's connection (or
		// stream) so it cannot take it for a complete one (only a server
		// recovers that panic).
		if r.Context().Value(http.ServerContextKey) == nil {
			return err
		}
		panic(http.ErrAbortHandler)
	}
	if cap(c.buf) > 64<<10 {
		c.buf = nil // an unusually large head: do not keep its buffer
	}
	if hd.close || c.br.Buffered() > 0 {
		c.conn.Close()
	} else {
		c.lim.ctx = nil
		pool.put(c)
	}
	return nil
}

// roundTrip writes r on c and reads the final response's head into h,
// passing on informational responses (103 Early Hints) but 100 Continue
// (no Expect is sent).
func roundTrip(w http.ResponseWriter, h http.Header, c *upConn, r *http.Request) (head, error) {
	if err := writeRequest(c.bw, r); err != nil {
		return head{}, writeError{err}
	}
	c.lim.n = maxResponseHead
	if _, err := c.br.Peek(1); err != nil {
		return head{}, closedError{err}
	}
	for {
		var err error
		c.buf, err = readLines(c.br, c.buf[:0])
		if err != nil {
			return head{}, err
		}
		if len(c.buf) > 12 && c.buf[9] == '1' { // "HTTP/1.1 1xx": informational
			info := http.Header{}
			hd, err := parseHead(string(c.buf), r.Method, info)
			if err != nil {
				return head{}, err
			}
			if hd.status == http.StatusSwitchingProtocols {
				return head{}, fmt.Errorf("%w: switching protocols unasked", errMalformed)
			}
			if hd.status != http.StatusContinue {
				saved := maps.Clone(h)
				clear(h)
				maps.Copy(h, info)
				w.WriteHeader(hd.status)
				clear(h)
				maps.Copy(h, saved)
			}
			c.lim.n = maxResponseHead
			continue
		}
		hd, err := parseHead(string(c.buf), r.Method, h)
		if err != nil {
			return head{}, err
		}
		if hd.status < 200 {
			return head{}, fmt.Errorf("%w: status line %.20q", errMalformed, c.buf)
		}
		c.lim.n = 1<<63 - 1
		return hd, nil
	}
}

// writeError and closedError are failures before any of the response was
// read: on a reused connection the upstream most likely closed it while
// idle, and a replayable request can go out again on a new one.
type writeError struct{ error }
type closedError struct{ error }

func (e writeError) Unwrap() error  { return e.error }
func (e closedError) Unwrap() error { return e.error }

func retryable(err error) bool {
	var we writeError
	var ce closedError
	return errors.As(err, &we) || errors.As(err, &ce)
}

var errClientWrite = errors.New("writing to the client")

// copyBody copies the response body from c to w, and the trailers of a
// chunked one into h. Bytes already buffered are written from c's
// buffer; larger bodies go through a pooled 32 KiB buffer.
func copyBody(w http.ResponseWriter, h http.Header, c *upConn, hd head, flush bool) error {
	if hd.noBody {
		return nil
	}
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
	}
	write := func(b []byte) error {
		if _, err := w.Write(b); err != nil {
			return errClientWrite
		}
		if rc != nil && rc.Flush() != nil {
			return errClientWrite
		}
		return nil
	}
	if !hd.chunked && hd.length >= 0 {
		for n := hd.length; n > 0; {
			if k := c.br.Buffered(); k > 0 {
				b, _ := c.br.Peek(int(min(int64(k), n)))
				if err := write(b); err != nil {
					return err
				}
				c.br.Discard(len(b))
				n -= int64(len(b))
				continue
			}
			bp := copyBuf.Get().(*[]byte)
			m, err := c.br.Read((*bp)[:min(int64(len(*bp)), n)])
			if m > 0 {
				if werr := write((*bp)[:m]); werr != nil {
					err = werr
				}
				n -= int64(m)
			}
			copyBuf.Put(bp)
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	var src io.Reader = c.br
	if hd.chunked {
		src = httputil.NewChunkedReader(c.br)
	}
	bp := copyBuf.Get().(*[]byte)
	defer copyBuf.Put(bp)
	for {
		m, rerr := src.Read(*bp)
		if m > 0 {
			if err := write((*bp)[:m]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if !hd.chunked {
		return nil
	}
	c.lim.n = maxResponseHead
	var err error
	if c.buf, err = readLines(c.br, c.buf[:0]); err != nil {
		return err
	}
	if len(c.buf) <= 2 {
		return nil
	}
	if rc == nil {
		rc = http.NewResponseController(w)
	}
	rc.Flush() // chunked to the client, so the trailers can follow
	return parseTrailer(string(c.buf), h)
}

// upstreamError turns a failure before the response into the client's
// status: 499 when the client left, 504 on timeouts, else 502.
func upstreamError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return caddyhttp.Error(499, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return caddyhttp.Error(http.StatusGatewayTimeout, err)
	}
	return caddyhttp.Error(http.StatusBadGateway, err)
}
