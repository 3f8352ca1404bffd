package pgtest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Cluster is a private PostgreSQL server of one test (initdb + pg_ctl on
// an ephemeral loopback port), for tests that stop the database: the
// machine's shared server is never stopped.
type Cluster struct {
	dir, bin, port string
	asPG           []string
	stopped        bool
}

// StartCluster starts a cluster with an empty database "wisehosting" and
// returns it with that database, stopped when the test ends. Its Pool
// is left nil (the code under test opens its own).
func StartCluster(t testing.TB) (*Cluster, *DB) {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		t.Fatal("PostgreSQL server binaries not found under /usr/lib/postgresql")
	}
	dir, err := os.MkdirTemp("", "wh-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &Cluster{dir: dir, bin: filepath.Dir(matches[len(matches)-1])}
	if os.Geteuid() == 0 { // initdb refuses root
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		os.Chown(dir, uid, -1)
		os.Chmod(dir, 0o700)
		c.asPG = []string{"runuser", "-u", "postgres", "--"}
	}
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	c.port = strconv.Itoa(l)
	c.run(t, "initdb", "-D", dir+"/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
	c.run(t, "pg_ctl", "-D", dir+"/data", "-l", dir+"/log", "-w", "-o",
		"-p "+c.port+" -k "+dir+" -c listen_addresses=127.0.0.1 -c fsync=off", "start")
	t.Cleanup(c.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:"+c.port+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE DATABASE wisehosting"); err != nil {
		t.Fatal(err)
	}
	return c, &DB{Name: "wisehosting", URL: "postgres://postgres@127.0.0.1:" + c.port + "/wisehosting?sslmode=disable"}
}

func (c *Cluster) run(t testing.TB, tool string, args ...string) {
	t.Helper()
	argv := append(append([]string{}, c.asPG...), append([]string{filepath.Join(c.bin, tool)}, args...)...)
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
}

// Stop stops the server (fast shutdown: sessions are cut).
func (c *Cluster) Stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	argv := append(append([]string{}, c.asPG...), filepath.Join(c.bin, "pg_ctl"), "-D", c.dir+"/data", "-m", "fast", "-w", "stop")
	exec.Command(argv[0], argv[1:]...).Run()
}

// Start starts the server again after Stop.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	c.run(t, "pg_ctl", "-D", c.dir+"/data", "-l", c.dir+"/log", "-w", "-o",
		"-p "+c.port+" -k "+c.dir+" -c listen_addresses=127.0.0.1 -c fsync=off", "start")
	c.stopped = false
}

// netListen returns a free loopback port.
func netListen() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
