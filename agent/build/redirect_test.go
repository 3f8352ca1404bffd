package build

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// gitServer serves repo over git's smart HTTP protocol (git http-backend)
// and counts the requests it gets.
type gitServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newGitServer(t *testing.T, bare string, tls bool) *gitServer {
	t.Helper()
	execPath := git(t, ".", "--exec-path")
	backend := &cgi.Handler{Path: filepath.Join(execPath, "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1"}}
	g := &gitServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.hits.Add(1)
		backend.ServeHTTP(w, r)
	})
	if tls {
		g.Server = httptest.NewTLSServer(h)
	} else {
		g.Server = httptest.NewServer(h)
	}
	t.Cleanup(g.Close)
	return g
}

// redirector answers every request with a redirect to target.
func redirector(t *testing.T, target string) *httptest.Server {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusMovedPermanently)
	}))
	t.Cleanup(s.Close)
	return s
}

// Git on the worker follows no redirect: not from https to plain http
// (the token would travel in clear), not to another address (it could be
// the mesh or the metadata service). Real git, real smart-HTTP servers on
// loopback.
func TestCloneRefusesRedirects(t *testing.T) {
	repo, _, second := origin(t)
	bare := filepath.Join(t.TempDir(), "app.git")
	git(t, ".", "clone", "--quiet", "--bare", repo, bare)
	plain := newGitServer(t, bare, false)
	secure := newGitServer(t, bare, true)
	// httptest's TLS servers share one self-signed certificate.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o644)
	opts := Options{CAFile: ca}
	src := func(base string) Source { return Source{URL: base + "/app.git", Branch: "main", Token: "secret-token"} }

	// The repository itself clones over https.
	head, err := Clone(context.Background(), src(secure.URL), filepath.Join(t.TempDir(), "ok"), opts)
	if err != nil || head != second {
		t.Fatalf("direct https clone: %s %v", head, err)
	}
	before := secure.hits.Load()

	for _, tc := range []struct {
		name   string
		target *gitServer
	}{
		{"https to http", plain},
		{"https to another address", secure},
	} {
		from := redirector(t, tc.target.URL)
		dst := filepath.Join(t.TempDir(), "src")
		_, err := Clone(context.Background(), src(from.URL), dst, opts)
		if err == nil {
			t.Fatalf("%s: clone followed the redirect", tc.name)
		}
		if strings.Contains(err.Error(), "secret-token") {
			t.Fatalf("%s: token in the error: %v", tc.name, err)
		}
		if _, serr := os.Stat(dst); !os.IsNotExist(serr) {
			t.Fatalf("%s: checkout left behind", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
	}
	if n := plain.hits.Load(); n != 0 {
		t.Fatalf("the plain-http server got %d requests", n)
	}
	if n := secure.hits.Load() - before; n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
	// Only https, and file only for local installs.
	env := strings.Join(gitEnv(Source{}, "/h", Options{}), "\n")
	if !strings.Contains(env, "=protocol.allow\n") || strings.Contains(env, "protocol.file.allow") {
		t.Fatalf("protocols: %s", env)
	}
}
