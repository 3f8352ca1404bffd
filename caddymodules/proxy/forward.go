package proxy

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wisehosting/wisehosting/internal/network"
)

// forwardTransport carries every request of the direct path: one pool of
// keep-alive connections per upstream address, shared by all routes and
// kept across table swaps (an address that leaves the table only leaves
// idle connections that time out).
var forwardTransport = &http.Transport{
	Proxy:                 nil, // upstreams are private addresses of workers
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConns:          0,
	MaxIdleConnsPerHost:   256,
	IdleConnTimeout:       2 * time.Minute,
	ResponseHeaderTimeout: 0,
	ExpectContinueTimeout: time.Second,
}

// errKey is the request variable through which the direct path's error
// handler reports an upstream failure to ServeHTTP.
const errKey = "wisehosting.forward_error"

// bufferPool recycles the body copy buffers (32 KiB each) across requests.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

var forwarder = &httputil.ReverseProxy{
	Transport:  forwardTransport,
	BufferPool: new(bufferPool),
	Rewrite: func(pr *httputil.ProxyRequest) {
		p, _ := caddyhttp.GetVar(pr.In.Context(), pathVar).(*network.PathEntry)
		pr.Out.URL.Scheme = "http"
		if p != nil && len(p.Upstreams) > 0 {
			pr.Out.URL.Host = pick(p.Upstreams).Dial
		}
		pr.Out.Host = pr.In.Host // the app sees the host the client asked for
		pr.SetXForwarded()
	},
	ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		caddyhttp.SetVar(r.Context(), errKey, err)
	},
}

// forward proxies r to one of p's upstreams (weighted draw). Upstream
// failures become Caddy errors (502, or 504 on timeouts), so the site's
// error handling and logs see them as they see reverse_proxy's.
func forward(w http.ResponseWriter, r *http.Request, p *network.PathEntry) error {
	if len(p.Upstreams) == 0 {
		return caddyhttp.Error(http.StatusBadGateway, ErrNoRoute)
	}
	forwarder.ServeHTTP(w, r)
	if err, _ := caddyhttp.GetVar(r.Context(), errKey).(error); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return caddyhttp.Error(http.StatusGatewayTimeout, err)
		}
		return caddyhttp.Error(http.StatusBadGateway, err)
	}
	return nil
}

// plainHTTP reports whether every upstream of p speaks plain HTTP/1.1.
func plainHTTP(p *network.PathEntry) bool {
	for _, u := range p.Upstreams {
		if u.Scheme != "" && u.Scheme != "http" {
			return false
		}
	}
	return true
}

// pick draws one upstream by weight (the first when no weight is set).
func pick(ups []network.Upstream) network.Upstream {
	if len(ups) == 1 {
		return ups[0]
	}
	total := 0
	for _, u := range ups {
		total += max(u.Weight, 0)
	}
	if total == 0 {
		return ups[0]
	}
	n := rand.IntN(total)
	for _, u := range ups {
		if n -= max(u.Weight, 0); n < 0 {
			return u
		}
	}
	return ups[len(ups)-1]
}
