// Package podmantest starts a real Podman API service for tests and
// provides a local base image, so tests need no registry: Debian's static
// busybox imported as docker.io/library/busybox:stable (the base of the
// static-site preset).
package podmantest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BaseImage is the local busybox image.
const BaseImage = "docker.io/library/busybox:stable"

// ContainersConf is the engine configuration these machines need (runc,
// explicit ulimits); it is also what scripts/podman-setup.sh installs.
const ContainersConf = `[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
`

// Service is a running `podman system service`.
type Service struct {
	// URL is the socket address for the bindings (unix://…).
	URL string
	// Env is the environment podman commands of the test should use.
	Env []string
}

var importOnce sync.Mutex

// Start runs a Podman service on a socket in a temporary directory until
// the test ends, and makes sure the base image exists. Podman is part of
// the test environment (scripts/ci-deps.sh installs it): a missing podman
// fails the test. env adds variables to the service's and the test's
// podman commands (e.g. CONTAINERS_REGISTRIES_CONF for a test registry).
//
// Each service has its own image and container storage in that directory,
// so tests running in parallel (go test runs packages at once) never see
// each other's images, build caches or containers: an agent pruning its
// dangling images cannot remove a layer another test's build is using.
func Start(t testing.TB, env ...string) *Service {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is not installed (scripts/ci-deps.sh installs it): %v", err)
	}
	dir, err := os.MkdirTemp("", "wh-podman")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unmountBelow(dir)
		os.RemoveAll(dir)
	})
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte(ContainersConf), 0o644); err != nil {
		t.Fatal(err)
	}
	storage := filepath.Join(dir, "storage.conf")
	storageConf := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "graph"), filepath.Join(dir, "run"))
	if err := os.WriteFile(storage, []byte(storageConf), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "podman.sock")
	env = append(append(os.Environ(), "CONTAINERS_CONF="+conf, "CONTAINERS_STORAGE_CONF="+storage), env...)
	cmd := exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting podman service: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// Containers still running would keep their overlay mounts in dir.
		rm := exec.Command("podman", "rm", "--all", "--force", "--time", "0")
		rm.Env = env
		rm.Run()
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("podman service exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("podman service did not listen within 30s: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := &Service{URL: "unix://" + sock, Env: env}
	s.EnsureBase(t)
	return s
}

// Podman runs a podman command against the same storage.
func (s *Service) Podman(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = s.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// EnsureBase imports the busybox base image when it is missing.
func (s *Service) EnsureBase(t testing.TB) {
	t.Helper()
	importOnce.Lock()
	defer importOnce.Unlock()
	ctx := context.Background()
	if _, err := s.Podman(ctx, "image", "exists", BaseImage); err == nil {
		return
	}
	if err := ImportBusybox(ctx, s.Env); err != nil {
		t.Fatal(err)
	}
}

// ImportBusybox builds a root filesystem around /bin/busybox (Debian's
// busybox-static) and imports it as BaseImage.
func ImportBusybox(ctx context.Context, env []string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox-static is not installed (scripts/ci-deps.sh installs it): %v", err)
	}
	root, err := os.MkdirTemp("", "wh-busybox")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	for _, d := range []string{"bin", "tmp", "srv", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	for _, a := range []string{"sh", "httpd", "ls", "cat", "echo", "sleep", "wget", "ip", "nc", "true", "false", "env", "mkdir", "cp", "rm"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return err
		}
	}
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	tar := exec.CommandContext(ctx, "tar", "-C", root, "-c", ".")
	imp := exec.CommandContext(ctx, "podman", "import", "--change", "CMD=[\"/bin/sh\"]", "-", BaseImage)
	imp.Env = env
	pipe, err := tar.StdoutPipe()
	if err != nil {
		return err
	}
	imp.Stdin = pipe
	var out bytes.Buffer
	imp.Stdout, imp.Stderr = &out, &out
	if err := tar.Start(); err != nil {
		return err
	}
	if err := imp.Run(); err != nil {
		tar.Wait()
		return fmt.Errorf("podman import: %v: %s", err, out.String())
	}
	return tar.Wait()
}

// unmountBelow detaches every mount below dir (the storage driver's own
// mounts), so the directory can be removed.
func unmountBelow(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	// Deepest first.
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}
