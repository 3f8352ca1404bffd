package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `wisehosting infra ssh` replaces itself with the system ssh, given the
// host's address, user, port and key from infra.yaml (a stand-in ssh on
// PATH prints what it was run with).
func TestInfraSSHExecsSSH(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "ssh"), []byte("#!/bin/sh\necho \"pid $$\"\nfor a in \"$@\"; do echo \"arg $a\"; done\n"), 0o755)
	cfg := filepath.Join(dir, "infra.yaml")
	os.WriteFile(cfg, []byte("hosts:\n  - {name: w1, role: worker, public_ip: 203.0.113.11, ssh_user: ops, ssh_key: ~/keys/w1}\n"), 0o600)
	cmd := exec.Command(binPath, "infra", "ssh", "--infra", cfg, "w1", "--", "journalctl", "-u", "wisehosting-agent")
	cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin", "HOME=/home/ops")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var args []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if a, ok := strings.CutPrefix(l, "arg "); ok {
			args = append(args, a)
		}
	}
	want := "-p 22 -i /home/ops/keys/w1 ops@203.0.113.11 -- journalctl -u wisehosting-agent"
	if got := strings.Join(args, " "); got != want {
		t.Fatalf("ssh ran with %q, want %q\n%s", got, want, out)
	}
	// The same process: exec, not a child.
	if !strings.Contains(string(out), "pid ") || strings.Count(string(out), "pid ") != 1 {
		t.Fatalf("output %s", out)
	}
	if out, err := exec.Command(binPath, "infra", "ssh", "--infra", cfg, "w9").CombinedOutput(); err == nil || !strings.Contains(string(out), "no host") || !strings.Contains(string(out), "w9") {
		t.Fatalf("unknown host: %v %s", err, out)
	}
}
