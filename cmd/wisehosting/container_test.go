package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// The control plane image builds without a registry (on scratch, and on
// the local busybox base), runs as a non-root user, and serves /health
// from a Caddyfile and credentials mounted the way the README says.
func TestContainerImage(t *testing.T) {
	svc := podmantest.Start(t)
	ctx := context.Background()
	b := make([]byte, 4)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	db := pgtest.NewEmpty(t, false)

	for _, base := range []string{"scratch", podmantest.BaseImage} {
		tag := "localhost/wisehosting-test-" + suffix + ":" + strings.NewReplacer("/", "-", ":", "-", ".", "-").Replace(base)
		build := exec.Command("bash", "../../scripts/container-build.sh", "--base", base, "--tag", tag, "--binary", binPath)
		build.Env = svc.Env
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building on %s: %v\n%s", base, err, out)
		}
		t.Cleanup(func() { svc.Podman(ctx, "rmi", "-f", tag) })
		if user, err := svc.Podman(ctx, "image", "inspect", "--format", "{{.Config.User}}", tag); err != nil || user != "65532:65532" {
			t.Fatalf("image user %q %v", user, err)
		}

		dir := t.TempDir()
		creds := filepath.Join(dir, "credentials")
		os.Mkdir(creds, 0o755)
		os.WriteFile(filepath.Join(creds, "database_url"), []byte(db.URL), 0o644)
		os.WriteFile(filepath.Join(creds, "api_server_secret"), []byte(loadSecret), 0o644)
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cfg := filepath.Join(dir, "Caddyfile")
		os.WriteFile(cfg, []byte(`{
	admin off
	wisehosting {
		subdomain_base apps.example.com
		admin_email off
	}
}
http://`+addr+` {
	route {
		wisehosting_api
	}
}
`), 0o644)
		name := "wh-image-" + suffix + "-" + fmt.Sprint(len(base))
		// Host networking: the database is on this machine's loopback.
		if out, err := svc.Podman(ctx, "run", "-d", "--name", name, "--network", "host",
			"-v", cfg+":/etc/wisehosting/Caddyfile:ro", "-v", creds+":/run/credentials:ro",
			"-e", "CREDENTIALS_DIRECTORY=/run/credentials", tag); err != nil {
			t.Fatalf("run on %s: %v %s", base, err, out)
		}
		t.Cleanup(func() { svc.Podman(ctx, "rm", "-f", "-t", "2", name) })
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/health")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				logs, _ := svc.Podman(ctx, "logs", name)
				t.Fatalf("no /health from the %s image: %v\n%s", base, err, logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if users, err := svc.Podman(ctx, "top", name, "huser", "user"); err != nil || strings.Contains(users, "root") || !strings.Contains(users, "65532") {
			t.Fatalf("process user on %s: %q %v", base, users, err)
		}
	}
}
