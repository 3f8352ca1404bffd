package proxy

import (
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wisehosting/wisehosting/internal/network"
)

// forwardTransport carries the requests the lean path does not take: one
// pool of keep-alive connections per upstream address, shared by all
// routes and kept across table swaps (an address that leaves the table
// only leaves idle connections that time out).
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

// bufferPool lends httputil.ReverseProxy the body copy buffers of copyBuf.
type bufferPool struct{}

func (bufferPool) Get() []byte  { return *copyBuf.Get().(*[]byte) }
func (bufferPool) Put(v []byte) { copyBuf.Put(&v) }

var forwarder = &httputil.ReverseProxy{
	Transport:  forwardTransport,
	BufferPool: bufferPool{},
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

// forward proxies r to one of p's upstreams (weighted draw): requests
// without a body, upgrade or Expect on the lean path (lean.go), the others
// through httputil.ReverseProxy. Upstream failures become Caddy errors
// (502, 504 on timeouts, 499 when the client left first), so the site's
// error handling and logs see them as they see reverse_proxy's.
func forward(w http.ResponseWriter, r *http.Request, p *network.PathEntry) error {
	if len(p.Upstreams) == 0 {
		return caddyhttp.Error(http.StatusBadGateway, ErrNoRoute)
	}
	if leanOK(r) {
		return leanForward(w, r, pick(p.Upstreams).Dial)
	}
	caddyhttp.SetVar(r.Context(), pathVar, p)
	forwarder.ServeHTTP(w, r)
	if err, _ := caddyhttp.GetVar(r.Context(), errKey).(error); err != nil {
		return upstreamError(r.Context(), err)
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
