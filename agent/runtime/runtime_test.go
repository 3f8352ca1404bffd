//go:build remote && containers_image_openpgp

package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime"
	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/internal/frameworks"
)

func newRuntime(t *testing.T) (*runtime.Runtime, *podmantest.Service) {
	t.Helper()
	svc := podmantest.Start(t)
	ctx := context.Background()
	rt, err := runtime.New(ctx, runtime.Config{Socket: svc.URL, Instance: fmt.Sprintf("t%d", time.Now().UnixNano()%1e9), StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs, _ := rt.List(context.Background())
		for _, c := range cs {
			rt.Remove(context.Background(), c.ID)
		}
	})
	return rt, svc
}

func get(url string) (int, string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func waitHTTP(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body, err := get(url)
		if err == nil && code == 200 {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %v", url, code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBuildRunStaticSite(t *testing.T) {
	rt, _ := newRuntime(t)
	ctx := context.Background()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>hello from a preset</h1>\n"), 0o644)
	plan, err := frameworks.Detect(dir, "auto")
	if err != nil || plan.Framework != frameworks.Static {
		t.Fatalf("detect: %+v %v", plan, err)
	}
	var log strings.Builder
	img, err := rt.Build(ctx, runtime.BuildSpec{Dir: dir, Containerfile: plan.Containerfile, Tag: "localhost/wisehosting-test/site:1"}, &log)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	t.Cleanup(func() { rt.RemoveImage(context.Background(), img) })
	if !strings.Contains(log.String(), "COPY") {
		t.Errorf("build output not streamed: %q", log.String())
	}
	c, err := rt.Run(ctx, runtime.RunSpec{AppID: 7, DeploymentID: 11, Slug: "site", Image: img, Port: plan.Port, CPUMillis: 250, MemoryMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	if c.HostPort < 20000 || c.HostPort > 29999 || c.AppID != 7 || c.DeploymentID != 11 || !c.Running() {
		t.Fatalf("container %+v", c)
	}
	body := waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/", c.HostPort))
	if !strings.Contains(body, "hello from a preset") {
		t.Fatalf("body %q", body)
	}
	limit, err := rt.MemoryLimit(ctx, c.ID)
	if err != nil || limit != 64<<20 {
		t.Fatalf("memory limit %d, %v; want %d", limit, err, 64<<20)
	}
	// Bandwidth shaping enters the container's network namespace.
	if err := rt.ShapeContainer(ctx, c.ID, 2000); err != nil {
		t.Fatal(err)
	}
	qd, err := exec.Command("nsenter", "--target", fmt.Sprint(c.Pid), "--net", "--", "tc", "qdisc", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(qd), "tbf") || !strings.Contains(string(qd), "2Mbit") {
		t.Fatalf("qdisc in the container: %s %v", qd, err)
	}
	list, err := rt.List(ctx)
	if err != nil || len(list) != 1 || list[0].HostPort != c.HostPort || list[0].Slug != "site" {
		t.Fatalf("list %+v %v", list, err)
	}
	st, err := rt.Stats(ctx, []string{c.ID})
	if err != nil || len(st) != 1 || st[0].MemBytes <= 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if err := rt.Kill(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	got, err := rt.Inspect(ctx, c.ID)
	if err != nil || got.Running() {
		t.Fatalf("after kill: %+v %v", got, err)
	}
}

func TestBuildFailureAndBuildNetwork(t *testing.T) {
	rt, svc := newRuntime(t)
	ctx := context.Background()
	dir := t.TempDir()
	// The build's RUN step reports its network interface: a bridge
	// (eth0 with an address), not the host's interfaces.
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+podmantest.BaseImage+"\nRUN ip -o -4 addr show > /netinfo; cat /netinfo\nRUN false\n"), 0o644)
	var log strings.Builder
	_, err := rt.Build(ctx, runtime.BuildSpec{Dir: dir, Containerfile: "Dockerfile", OwnFile: true, Tag: "localhost/wisehosting-test/fail:1"}, &log)
	if err == nil {
		t.Fatal("a failing RUN step built")
	}
	out := log.String()
	raw, err := svc.Podman(ctx, "network", "inspect", "wisehosting-build")
	if err != nil {
		t.Fatal(err)
	}
	var nets []struct {
		Subnets []struct{ Subnet string } `json:"subnets"`
	}
	if err := json.Unmarshal([]byte(raw), &nets); err != nil || len(nets) != 1 || len(nets[0].Subnets) == 0 {
		t.Fatalf("network inspect: %v %s", err, raw)
	}
	_, subnet, _ := net.ParseCIDR(nets[0].Subnets[0].Subnet)
	onBuildNet := false
	for _, f := range strings.Fields(out) {
		if ip, _, err := net.ParseCIDR(f); err == nil && subnet.Contains(ip) {
			onBuildNet = true
		}
	}
	if !onBuildNet {
		t.Fatalf("build did not run on wisehosting-build (%s):\n%s", subnet, out)
	}
	// A Containerfile outside the repository is refused.
	if _, err := rt.Build(ctx, runtime.BuildSpec{Dir: dir, Containerfile: "../etc/passwd", OwnFile: true, Tag: "localhost/x:1"}, nil); err == nil {
		t.Fatal("containerfile outside the repository accepted")
	}
}

func TestBuildCancel(t *testing.T) {
	rt, _ := newRuntime(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+podmantest.BaseImage+"\nRUN sleep 30\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := rt.Build(ctx, runtime.BuildSpec{Dir: dir, Containerfile: "Dockerfile", OwnFile: true, Tag: "localhost/wisehosting-test/slow:1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("cancel took %v", d)
	}
}
