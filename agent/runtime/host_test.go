//go:build remote && containers_image_openpgp

package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSS(t *testing.T) {
	out := []byte(`LISTEN 0      4096       127.0.0.1:5432       0.0.0.0:*
LISTEN 0      511          0.0.0.0:8080       0.0.0.0:*
LISTEN 0      128             [::]:22            [::]:*
LISTEN 0      4096  [::ffff:127.0.0.1]:30001       *:*
tcp   LISTEN 0 128 127.0.0.1:31000 0.0.0.0:*
`)
	ports, err := ParseSS(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{5432, 8080, 22, 30001, 31000} {
		if !ports[p] {
			t.Errorf("port %d missing from %v", p, ports)
		}
	}
	if len(ports) != 5 {
		t.Errorf("ports %v", ports)
	}
	if _, err := ParseSS([]byte("LISTEN 0 1 127.0.0.1:notaport 0.0.0.0:*\n")); err == nil {
		t.Error("garbage port accepted")
	}
	if _, err := ParseSS([]byte("LISTEN 0 1 127.0.0.1:70000 0.0.0.0:*\n")); err == nil {
		t.Error("out-of-range port accepted")
	}
}

func FuzzParseSS(f *testing.F) {
	f.Add([]byte("LISTEN 0 4096 127.0.0.1:5432 0.0.0.0:*\n"))
	f.Add([]byte("LISTEN 0 128 [::]:22 [::]:*\n"))
	f.Add([]byte("tcp LISTEN 0 128 *:* x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ports, err := ParseSS(b)
		if err != nil {
			return
		}
		for p := range ports {
			if p <= 0 || p > 65535 {
				t.Fatalf("port %d out of range", p)
			}
		}
	})
}

func TestQuotaMode(t *testing.T) {
	cases := []struct{ driver, out, want string }{
		{"overlay", "xfs    rw,relatime,attr2,inode64,logbufs=8,prjquota\n", QuotaXFS},
		{"overlay", "xfs rw,relatime,pquota", QuotaXFS},
		{"overlay", "xfs rw,relatime,noquota", QuotaNone},
		{"btrfs", "btrfs rw,relatime,space_cache=v2", QuotaBtrfs},
		{"overlay", "btrfs rw", QuotaNone},
		{"overlay", "ext4   rw,relatime,discard", QuotaNone},
		{"overlay", "", QuotaNone},
	}
	for _, c := range cases {
		fs, opts := ParseFindmnt([]byte(c.out))
		mode, reason := QuotaMode(c.driver, fs, opts)
		if mode != c.want {
			t.Errorf("%s %q: %s, want %s", c.driver, c.out, mode, c.want)
		}
		if mode == QuotaNone && reason == "" {
			t.Errorf("%s %q: no reason given for missing quota support", c.driver, c.out)
		}
	}
}

func FuzzParseFindmnt(f *testing.F) {
	f.Add([]byte("xfs rw,prjquota\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, opts := ParseFindmnt(b)
		QuotaMode("overlay", fs, opts)
	})
}

func TestShapeRefusesBadInput(t *testing.T) {
	for _, dev := range []string{"", "-x", "eth0 root", "a/b", "averyveryverylongname"} {
		if err := ShapeNetns(t.Context(), []string{"--net=/nonexistent"}, dev, 100); err == nil {
			t.Errorf("device %q accepted", dev)
		}
	}
	if err := ShapeNetns(t.Context(), []string{"--net=/nonexistent"}, "eth0", -1); err == nil {
		t.Error("negative rate accepted")
	}
	if err := Shape(t.Context(), 0, "eth0", 100); err == nil {
		t.Error("pid 0 accepted")
	}
}

func TestPortRangeOutsideEphemeral(t *testing.T) {
	f := filepath.Join(t.TempDir(), "range")
	os.WriteFile(f, []byte("32768\t60999\n"), 0o644)
	for _, c := range []struct {
		min, max int
		ok       bool
	}{{20000, 29999, true}, {61000, 65000, true}, {30000, 39999, false}, {60999, 61500, false}, {20000, 32768, false}} {
		err := CheckPortRange(c.min, c.max, f)
		if (err == nil) != c.ok {
			t.Errorf("%d-%d: %v", c.min, c.max, err)
		}
		if err != nil && !strings.Contains(err.Error(), "32768-60999") {
			t.Errorf("unclear message: %v", err)
		}
	}
	if err := CheckPortRange(30000, 39999, filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("no file (not Linux): %v", err)
	}
	os.WriteFile(f, []byte("garbage"), 0o644)
	if err := CheckPortRange(20000, 29999, f); err == nil {
		t.Error("unreadable range accepted")
	}
}
