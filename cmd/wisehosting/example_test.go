package main_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// The example's control-plane site over HTTPS (as localhost, so Caddy's
// internal CA signs it and clients send SNI): TLS 1.3 only, and an access
// log without the agents' WebSocket and the health checks.
func TestExampleSiteTLSAndAccessLog(t *testing.T) {
	db := pgtest.NewEmpty(t, false)
	port := freePort(t)
	site, mesh, internal := fmt.Sprintf("localhost:%d", port), fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, out, done := startExample(t, db.URL, 16, "https://"+site, mesh, internal,
		[2]string{"\temail ops@example.com\n", "\temail ops@example.com\n\tskip_install_trust\n\tauto_https disable_redirects\n"},
		[2]string{"\tencode zstd gzip\n", "\tbind 127.0.0.1\n\tencode zstd gzip\n"})

	client := func(v uint16) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}, // the version is under test, not the chain
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
			},
		}}
	}
	tls13 := client(tls.VersionTLS13)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := tls13.Get("https://" + site + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("control plane exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /health 200 over TLS 1.3 within 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, err := client(tls.VersionTLS12).Get("https://" + site + "/health"); err == nil {
		resp.Body.Close()
		t.Fatal("a TLS 1.2 client was served")
	}

	for _, p := range []string{"/health", "/v1/workers/ws", "/api/me", "/v1/workers/ws?x=1"} {
		resp, err := tls13.Get("https://" + site + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	meshResp, err := http.Get("http://" + mesh + "/health")
	if err != nil {
		t.Fatal(err)
	}
	meshResp.Body.Close()
	if r, err := http.Get("http://" + mesh + "/v1/proxy/routes"); err == nil {
		r.Body.Close()
	}

	// Access entries are written as requests end: wait for the last one.
	var uris []string
	deadline = time.Now().Add(10 * time.Second)
	for {
		uris = uris[:0]
		for _, line := range strings.Split(out.String(), "\n") {
			var e struct {
				Logger  string `json:"logger"`
				Request struct {
					URI string `json:"uri"`
				} `json:"request"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && strings.HasPrefix(e.Logger, "http.log.access") {
				uris = append(uris, e.Request.URI)
			}
		}
		if strings.Contains(strings.Join(uris, " "), "/v1/proxy/routes") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := strings.Join(uris, " ")
	if !strings.Contains(got, "/api/me") || !strings.Contains(got, "/v1/proxy/routes") {
		t.Fatalf("requests missing from the access log: %q", uris)
	}
	for _, u := range uris {
		if strings.HasPrefix(u, "/health") || strings.HasPrefix(u, "/v1/workers/ws") {
			t.Fatalf("%s was logged: %q", u, uris)
		}
	}
}
