package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"slices"
	"testing"

	"golang.org/x/net/http/httpguts"
)

func readHead(data []byte, method string) (head, http.Header, error) {
	buf, err := readLines(bufio.NewReaderSize(bytes.NewReader(data), 16), nil)
	if err != nil {
		return head{}, nil, err
	}
	h := http.Header{}
	hd, err := parseHead(string(buf), method, h)
	return hd, h, err
}

func TestParseHead(t *testing.T) {
	hd, h, err := readHead([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nTrailer: X-Sum\r\nX-Long: "+string(bytes.Repeat([]byte("v"), 100))+"\r\n\r\nhello"), "GET")
	if err != nil || hd.status != 200 || hd.length != 5 || hd.chunked || hd.close || hd.noBody || hd.trailer != "X-Sum" {
		t.Fatalf("%v %+v", err, hd)
	}
	if !slices.Equal(h["Set-Cookie"], []string{"a=1", "b=2"}) || len(h["Content-Length"]) != 1 || h["X-Hop"] != nil || h["Keep-Alive"] != nil || h["Connection"] != nil || h["Trailer"] != nil || len(h["X-Long"][0]) != 100 {
		t.Fatalf("fields %v", h)
	}
	for in, want := range map[string]head{
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n": {status: 200, length: -1, chunked: true},
		"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n":                               {status: 200, length: 3, close: true},
		"HTTP/1.1 200 OK\r\n\r\n":                                                    {status: 200, length: -1, close: true},
		"HTTP/1.1 204 No Content\r\n\r\n":                                            {status: 204, length: -1, noBody: true},
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n":          {status: 200, length: 0, close: true},
	} {
		if hd, _, err := readHead([]byte(in), "GET"); err != nil || hd != want {
			t.Errorf("%q: %v %+v, want %+v", in, err, hd, want)
		}
	}
	for _, in := range []string{
		"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n", "HTX 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", "HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
	} {
		if _, h, err := readHead([]byte(in), "GET"); err == nil {
			t.Errorf("%q accepted", in)
		} else if len(h) != 0 {
			t.Errorf("%q: fields set on error: %v", in, h)
		}
	}
}

// FuzzParseHead: whatever an upstream sends, the parser does not panic,
// and a head it accepts puts only valid, canonical, end-to-end fields in
// the client's header map and agrees with net/http on status and framing.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: X-A\r\nX-A: 1\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 304 Not Modified\r\nSet-Cookie: a\r\nset-cookie: b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		hd, h, err := readHead(data, "GET")
		if err != nil {
			return
		}
		if hd.status < 100 || hd.status > 999 {
			t.Fatalf("status %d", hd.status)
		}
		for k, vv := range h {
			if k != textproto.CanonicalMIMEHeaderKey(k) || !httpguts.ValidHeaderFieldName(k) || hopByHop(k) {
				t.Fatalf("field name %q", k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("value %q", v)
				}
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), &http.Request{Method: "GET"})
		if err != nil {
			return // net/http is stricter here
		}
		if resp.StatusCode != hd.status || (hd.chunked != (len(resp.TransferEncoding) > 0)) {
			t.Fatalf("net/http: %d %v, parser: %+v", resp.StatusCode, resp.TransferEncoding, hd)
		}
		if !hd.chunked && !hd.noBody && resp.ContentLength != hd.length {
			t.Fatalf("length: net/http %d, parser %d", resp.ContentLength, hd.length)
		}
	})
}
