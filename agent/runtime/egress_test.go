//go:build remote && containers_image_openpgp

package runtime_test

import (
	"context"
	"fmt"
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
)

// meshPeer plays the control plane on the mesh: a network namespace the
// test creates, joined to the host by a veth pair (host side .2, namespace
// side .1 of a /30 in 10.250.77.0/24), with busybox httpd on .1:8080.
// No traffic leaves the machine.
func meshPeer(t *testing.T) (peer, hostSide string) {
	t.Helper()
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e6)
	ns, vh, vn := "whcp"+id, "whh"+id, "whn"+id
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "link", "add", vh, "type", "veth", "peer", "name", vn)
	t.Cleanup(func() { exec.Command("ip", "link", "del", vh).Run() })
	run("ip", "link", "set", vn, "netns", ns)
	run("ip", "addr", "add", "10.250.77.2/30", "dev", vh)
	run("ip", "link", "set", vh, "up")
	run("ip", "-n", ns, "addr", "add", "10.250.77.1/30", "dev", vn)
	run("ip", "-n", ns, "link", "set", vn, "up")
	run("ip", "-n", ns, "link", "set", "lo", "up")
	run("ip", "-n", ns, "route", "add", "default", "via", "10.250.77.2")
	www := t.TempDir()
	os.WriteFile(filepath.Join(www, "index.html"), []byte("control plane\n"), 0o644)
	httpd := exec.Command("ip", "netns", "exec", ns, "busybox", "httpd", "-f", "-p", "10.250.77.1:8080", "-h", www)
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { httpd.Process.Kill(); httpd.Wait() })
	// The peer answers the host (which is not an app container).
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get("http://10.250.77.1:8080/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mesh peer not answering: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "10.250.77.1:8080", "10.250.77.2"
}

// Tenants do not share a network: on a real Podman, two teams' apps each
// get their team's bridge network, and nftables rules the runtime owns
// keep team A's container from reaching team B's, the control plane's
// mesh address and the worker's own addresses, while A's containers still
// reach each other. Taking the rules away shows each target was reachable
// (the block is the rules' doing); removing a team's last container
// removes its network and rules.
func TestTeamNetworksAndEgress(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nftables is not installed (scripts/ci-deps.sh installs it): %v", err)
	}
	peer, hostAddr := meshPeer(t)
	// A listener on one of the worker's own addresses.
	own, err := net.Listen("tcp", hostAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(own, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "worker") }))
	t.Cleanup(func() { own.Close() })

	svc := podmantest.Start(t)
	svc.EnsureBase(t)
	ctx := context.Background()
	inst := fmt.Sprintf("n%d", time.Now().UnixNano()%1e9)
	rt, err := runtime.New(ctx, runtime.Config{Socket: svc.URL, Instance: inst, StopTimeout: time.Second,
		Egress: runtime.Egress{MeshRange: "10.250.77.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM "+podmantest.BaseImage+
		"\nRUN mkdir -p /srv && echo app > /srv/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/srv\"]\n"), 0o644)
	img := "localhost/wisehosting-test/egress:" + inst
	if _, err := svc.Podman(ctx, "build", "-q", "-t", img, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Podman(context.Background(), "rmi", "-f", img) })
	var all []runtime.Container
	t.Cleanup(func() {
		for _, c := range all {
			rt.Remove(context.Background(), c.ID)
		}
	})
	start := func(team, app int64) (runtime.Container, string) {
		t.Helper()
		c, err := rt.Run(ctx, runtime.RunSpec{AppID: app, TeamID: team, DeploymentID: app, Slug: fmt.Sprintf("app%d", app), Image: img, Port: 8080})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, c)
		ip, err := svc.Podman(ctx, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", c.ID)
		if err != nil || net.ParseIP(ip) == nil {
			t.Fatalf("container address %q %v", ip, err)
		}
		return c, ip
	}
	a1, a1IP := start(1, 11)
	a2, _ := start(1, 12)
	b1, b1IP := start(2, 21)
	// (busybox nc: its static wget crashes resolving in a container.)
	reach := func(from runtime.Container, addr string) error {
		host, port, _ := net.SplitHostPort(addr)
		out, err := svc.Podman(ctx, "exec", from.ID, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 "$0" "$1"`, host, port)
		if err == nil && !strings.Contains(out, "200 OK") {
			err = fmt.Errorf("no HTTP answer: %q", out)
		}
		return err
	}
	if netA, netB := rt.TeamNetwork(1), rt.TeamNetwork(2); netA == netB {
		t.Fatal("teams share a network")
	}
	if err := reach(a2, a1IP+":8080"); err != nil {
		t.Fatalf("team A's containers cannot reach each other: %v", err)
	}
	targets := map[string]string{
		"team B's container":               b1IP + ":8080",
		"the control plane's mesh address": peer,
		"the worker's own address":         own.Addr().String(),
	}
	for what, addr := range targets {
		if err := reach(a1, addr); err == nil {
			t.Errorf("team A reached %s (%s)", what, addr)
		}
	}
	if err := reach(b1, a1IP+":8080"); err == nil {
		t.Error("team B reached team A's container")
	}
	table := strings.NewReplacer("-", "_").Replace(rt.TeamNetwork(1))
	rules, err := exec.Command("nft", "list", "table", "inet", table).CombinedOutput()
	if err != nil || !strings.Contains(string(rules), "169.254.0.0/16") || !strings.Contains(string(rules), "10.0.0.0/8") {
		t.Fatalf("team A's rules: %v\n%s", err, rules)
	}

	// Without team A's rules every target answers: the block was theirs.
	if err := rt.RemoveEgress(ctx, rt.TeamNetwork(1)); err != nil {
		t.Fatal(err)
	}
	for what, addr := range targets {
		if err := reach(a1, addr); err != nil {
			t.Errorf("without the rules %s (%s) is not reachable either, so the test proves nothing: %v", what, addr, err)
		}
	}

	// Team B's last container goes: its network and its rules go too.
	if err := rt.Remove(ctx, b1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Podman(ctx, "network", "exists", rt.TeamNetwork(2)); err == nil {
		t.Error("team B's network outlived its last container")
	}
	if out, err := exec.Command("nft", "list", "table", "inet", strings.NewReplacer("-", "_").Replace(rt.TeamNetwork(2))).CombinedOutput(); err == nil {
		t.Errorf("team B's rules outlived its network:\n%s", out)
	}
}
