package scripts_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// netns is a network namespace of the test's own.
type netns string

func newNetns(t *testing.T) netns {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	ns := netns("whwg" + hex.EncodeToString(b))
	if out, err := exec.Command("ip", "netns", "add", string(ns)).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add (needs root and iproute2): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", string(ns)).Run() })
	ns.run(t, "ip", "link", "set", "lo", "up")
	return ns
}

func (ns netns) cmd(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", string(ns)}, args...)...)
}

func (ns netns) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ns.cmd(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func pubkey(t *testing.T) string {
	priv, err := exec.Command("wg", "genkey").Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("wg", "pubkey")
	cmd.Stdin = strings.NewReader(string(priv))
	pub, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(pub))
}

// The mesh script against a running WireGuard interface (userspace
// wireguard-go) and an nftables firewall, both in a namespace of the test:
// the documented port, the firewall opened once, and a peer added with
// wg syncconf while the interface stays up.
func TestWireguardSetupLive(t *testing.T) {
	ns := newNetns(t)
	iface := "wgt" + string(ns)[4:10]
	ctx, cancel := context.WithCancel(context.Background())
	wgGo := exec.CommandContext(ctx, "ip", "netns", "exec", string(ns), "wireguard-go", "-f", iface)
	wgGo.Env = append(os.Environ(), "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1")
	if err := wgGo.Start(); err != nil {
		t.Fatalf("wireguard-go (apt-get install wireguard-go): %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- wgGo.Wait() }()
	t.Cleanup(func() { cancel(); <-exited })
	deadline := time.Now().Add(10 * time.Second)
	for ns.cmd("wg", "show", iface).Run() != nil {
		select {
		case err := <-exited:
			t.Fatalf("wireguard-go exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the interface never came up")
		}
	}
	ifindex := func() string { return strings.SplitN(ns.run(t, "ip", "-o", "link", "show", iface), ":", 2)[0] }
	index := ifindex()

	// A firewall that drops what it does not allow.
	ns.run(t, "nft", "add", "table", "inet", "filter")
	ns.run(t, "nft", "add", "chain", "inet", "filter", "input", "{ type filter hook input priority 0; policy drop; }")
	ns.run(t, "nft", "add", "rule", "inet", "filter", "input", "iif", "lo", "accept")

	root := t.TempDir()
	peers := filepath.Join(root, "peers")
	cp, w2 := pubkey(t), pubkey(t)
	os.WriteFile(peers, []byte(fmt.Sprintf("cp1 %s 127.0.0.1:51821 10.50.0.1\n", cp)), 0o600)
	setup := func(extra ...string) string {
		args := append([]string{"bash", "./wireguard-setup.sh", "worker", "--mesh-ip", "10.50.0.11", "--peers", peers,
			"--root", root, "--apply", "--interface", iface}, extra...)
		return ns.run(t, args...)
	}
	out := setup()
	if got := ns.run(t, "wg", "show", iface, "listen-port"); got != "51821" {
		t.Fatalf("listen port %s\n%s", got, out)
	}
	key, _ := os.ReadFile(filepath.Join(root, "etc/wireguard", iface+".key"))
	if got := ns.run(t, "wg", "show", iface, "private-key"); got != strings.TrimSpace(string(key)) {
		t.Fatal("the interface does not have the host's key")
	}
	if got := ns.run(t, "wg", "show", iface, "peers"); got != cp {
		t.Fatalf("peers %q", got)
	}
	countRule := func(port string) int {
		return strings.Count(ns.run(t, "nft", "list", "ruleset"), "udp dport "+port+" accept")
	}
	if n := countRule("51821"); n != 1 {
		t.Fatalf("%d rules open 51821:\n%s", n, ns.run(t, "nft", "list", "ruleset"))
	}
	conf, _ := os.ReadFile(filepath.Join(root, "etc/wireguard", iface+".conf"))
	if !strings.Contains(string(conf), "PostUp = nft list chain inet filter input") {
		t.Fatalf("the port is not reopened when the interface starts:\n%s", conf)
	}
	unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/wisehosting-agent.service"))
	if !strings.Contains(string(unit), "wg-quick@"+iface+".service") {
		t.Fatalf("the unit does not wait for %s:\n%s", iface, unit)
	}

	// A new peer: applied in place, the interface never went down.
	os.WriteFile(peers, []byte(fmt.Sprintf("cp1 %s 127.0.0.1:51821 10.50.0.1\nw2 %s 127.0.0.1:51822 10.50.0.12\n", cp, w2)), 0o600)
	setup()
	if got := strings.Fields(ns.run(t, "wg", "show", iface, "peers")); len(got) != 2 {
		t.Fatalf("peers after the change %v", got)
	}
	if got := ns.run(t, "wg", "show", iface, "allowed-ips"); !strings.Contains(got, w2+"\t10.50.0.12/32") {
		t.Fatalf("allowed ips %q", got)
	}
	if ifindex() != index {
		t.Fatal("the interface was recreated")
	}
	select {
	case err := <-exited:
		t.Fatalf("the tunnel process stopped: %v", err)
	default:
	}
	if n := countRule("51821"); n != 1 {
		t.Fatalf("a second run left %d rules", n)
	}
	// The flag still sets another port.
	setup("--port", "51999")
	if got := ns.run(t, "wg", "show", iface, "listen-port"); got != "51999" || countRule("51999") != 1 {
		t.Fatalf("--port 51999: listen port %s", got)
	}
}
