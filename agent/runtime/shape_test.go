//go:build remote && containers_image_openpgp

package runtime

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs fn on an OS thread that entered the named network
// namespace; sockets fn creates stay in that namespace. The thread is
// discarded afterwards.
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f, err := os.Open("/run/netns/" + name)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// throughput sends n bytes from a to b and returns bytes per second.
func throughput(t *testing.T, a, b net.Conn, n int) float64 {
	t.Helper()
	got := make(chan int64, 1)
	go func() {
		m, _ := io.CopyN(io.Discard, b, int64(n))
		got <- m
	}()
	buf := make([]byte, 32<<10)
	start := time.Now()
	for sent := 0; sent < n; sent += len(buf) {
		if _, err := a.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if m := <-got; m != int64(n) {
		t.Fatalf("received %d of %d bytes", m, n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// Two network namespaces made by the test, joined by a veth pair; the
// token bucket applied with ShapeNetns (nsenter + tc, as for containers)
// must bring the sender's throughput down to the configured rate.
func TestShapeLimitsThroughputInANetworkNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("network namespaces need root (the test machines and CI run as root)")
	}
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1e6)
	nsA, nsB := "wh-shape-a"+suffix, "wh-shape-b"+suffix
	ipCmd(t, "netns", "add", nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsA).Run() })
	ipCmd(t, "netns", "add", nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsB).Run() })
	ipCmd(t, "-n", nsA, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", nsB)
	ipCmd(t, "-n", nsA, "addr", "add", "10.213.0.1/30", "dev", "veth0")
	ipCmd(t, "-n", nsB, "addr", "add", "10.213.0.2/30", "dev", "veth1")
	ipCmd(t, "-n", nsA, "link", "set", "veth0", "up")
	ipCmd(t, "-n", nsB, "link", "set", "veth1", "up")

	var ln net.Listener
	inNetns(t, nsB, func() {
		var err error
		if ln, err = net.Listen("tcp", "10.213.0.2:0"); err != nil {
			t.Error(err)
		}
	})
	if ln == nil {
		t.FailNow()
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	var a net.Conn
	inNetns(t, nsA, func() {
		var err error
		if a, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second); err != nil {
			t.Error(err)
		}
	})
	if a == nil {
		t.FailNow()
	}
	defer a.Close()
	b := <-accepted
	defer b.Close()

	const kbit = 8000 // 1 MB/s
	free := throughput(t, a, b, 4<<20)
	ns := []string{"--net=/run/netns/" + nsA}
	if err := ShapeNetns(context.Background(), ns, "veth0", kbit); err != nil {
		t.Fatal(err)
	}
	shaped := throughput(t, a, b, 1<<20)
	limit := float64(kbit) * 1000 / 8
	t.Logf("unshaped %.1f MB/s, shaped %.2f MB/s, limit %.2f MB/s", free/1e6, shaped/1e6, limit/1e6)
	if shaped > limit*1.3 || shaped < limit*0.5 {
		t.Fatalf("shaped throughput %.0f B/s, limit %.0f B/s", shaped, limit)
	}
	if free < shaped*4 {
		t.Fatalf("unshaped throughput %.0f B/s is not clearly above the shaped %.0f B/s", free, shaped)
	}
	// Removing the limit restores the throughput.
	if err := ShapeNetns(context.Background(), ns, "veth0", 0); err != nil {
		t.Fatal(err)
	}
	if again := throughput(t, a, b, 4<<20); again < shaped*4 {
		t.Fatalf("after removing the limit: %.0f B/s", again)
	}
}
