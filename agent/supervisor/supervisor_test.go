//go:build remote && containers_image_openpgp

package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime"
	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/internal/logline"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// recorder collects what the supervisor sends.
type recorder struct {
	mu   sync.Mutex
	msgs []struct {
		t string
		p json.RawMessage
	}
}

func (r *recorder) send(_ context.Context, t string, p any) error {
	b, _ := json.Marshal(p)
	r.mu.Lock()
	r.msgs = append(r.msgs, struct {
		t string
		p json.RawMessage
	}{t, b})
	r.mu.Unlock()
	return nil
}

func (r *recorder) results() []wsproto.JobResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []wsproto.JobResult
	for _, m := range r.msgs {
		if m.t == wsproto.TypeJobResult {
			var res wsproto.JobResult
			json.Unmarshal(m.p, &res)
			out = append(out, res)
		}
	}
	return out
}

func (r *recorder) count(t string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m.t == t {
			n++
		}
	}
	return n
}

func newSupervisor(t *testing.T) (*Supervisor, *recorder) {
	t.Helper()
	svc := podmantest.Start(t)
	rt, err := runtime.New(context.Background(), runtime.Config{Socket: svc.URL, Instance: fmt.Sprintf("s%d", time.Now().UnixNano()%1e9), StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s, err := New(Config{Runtime: rt, Send: rec.send, AllowLocalGit: true, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func waitResults(t *testing.T, rec *recorder, n int, d time.Duration) []wsproto.JobResult {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if rs := rec.results(); len(rs) >= n {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d results after %s, want %d", len(rec.results()), d, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A redelivered job id is acknowledged again but runs once.
func TestJobRunsOnceAcrossRedeliveries(t *testing.T) {
	s, rec := newSupervisor(t)
	job, _ := json.Marshal(wsproto.JobAssign{JobID: 41, Kind: wsproto.JobDeploy, AppID: 1, DeploymentID: 2,
		Payload: json.RawMessage(`{"slug":"Bad Slug"}`)})
	for i := 0; i < 3; i++ {
		if err := s.HandleJob(context.Background(), job); err != nil {
			t.Fatal(err)
		}
	}
	rs := waitResults(t, rec, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if rs = rec.results(); len(rs) != 1 || rs[0].OK || !strings.Contains(rs[0].Error, "invalid deploy job") {
		t.Fatalf("results %+v", rs)
	}
	if n := rec.count(wsproto.TypeJobAck); n != 3 {
		t.Fatalf("%d acks, want 3", n)
	}
}

// job.cancel stops a build in progress; the job fails as cancelled.
func TestCancelStopsABuild(t *testing.T) {
	s, rec := newSupervisor(t)
	repo := t.TempDir()
	for _, args := range [][]string{{"init", "-q", "-b", "main"}} {
		exec.Command("git", append([]string{"-C", repo}, args...)...).Run()
	}
	os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte("FROM "+podmantest.BaseImage+"\nRUN sleep 60\n"), 0o644)
	cmd := exec.Command("git", "-C", repo, "-c", "user.email=t@t.test", "-c", "user.name=t", "commit", "-q", "-m", "x", "--allow-empty")
	exec.Command("git", "-C", repo, "add", "-A").Run()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	payload, _ := json.Marshal(wsproto.DeployPayload{Slug: "slow", GitURL: repo, Branch: "main", Port: 8080})
	job, _ := json.Marshal(wsproto.JobAssign{JobID: 7, Kind: wsproto.JobDeploy, AppID: 3, DeploymentID: 4, TimeoutS: 300, Payload: payload})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	if err := s.HandleJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	// Wait for the build stage, then cancel.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(fmt.Sprint(s.RunningJobs()), "7") || rec.count(wsproto.TypeJobProgress) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("build did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	c, _ := json.Marshal(wsproto.JobCancel{JobID: 7})
	s.HandleCancel(ctx, c)
	rs := waitResults(t, rec, 1, 20*time.Second)
	if rs[0].OK || !strings.Contains(rs[0].Error, "cancel") {
		t.Fatalf("result %+v", rs[0])
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	if len(s.RunningJobs()) != 0 {
		t.Fatalf("still running: %v", s.RunningJobs())
	}
}

// A cancel that arrives before its job (or after an agent restart) ends
// the job at once; the late job.assign is acknowledged, not run.
func TestCancelBeforeTheJobArrives(t *testing.T) {
	s, rec := newSupervisor(t)
	c, _ := json.Marshal(wsproto.JobCancel{JobID: 9})
	if err := s.HandleCancel(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	rs := waitResults(t, rec, 1, 5*time.Second)
	if rs[0].JobID != 9 || rs[0].OK || !strings.Contains(rs[0].Error, "cancelled") {
		t.Fatalf("result %+v", rs[0])
	}
	payload, _ := json.Marshal(wsproto.DeployPayload{Slug: "late", GitURL: t.TempDir(), Branch: "main"})
	job, _ := json.Marshal(wsproto.JobAssign{JobID: 9, Kind: wsproto.JobDeploy, AppID: 5, DeploymentID: 6, Payload: payload})
	if err := s.HandleJob(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n, p := len(rec.results()), rec.count(wsproto.TypeJobProgress); n != 1 || p != 0 {
		t.Fatalf("the late job ran: %d results, %d progress messages", n, p)
	}
	if rec.count(wsproto.TypeJobAck) != 1 || len(s.RunningJobs()) != 0 {
		t.Fatalf("acks %d, running %v", rec.count(wsproto.TypeJobAck), s.RunningJobs())
	}
}

func TestLineWriterSplitsAndBoundsLines(t *testing.T) {
	rec := &recorder{}
	sh := newShipper(rec.send, spoolConfig{}, nil)
	w := sh.writer(1, 2, "build")
	w.Write([]byte("STEP 1/2: FROM x\nSTEP 2/2: RU"))
	w.Write([]byte("N true\r\n\n" + strings.Repeat("é", logline.MaxBytes) + "\nlast"))
	w.Close()
	sh.mu.Lock()
	lines := append([]wsproto.LogLine(nil), sh.open...)
	sh.mu.Unlock()
	if len(lines) != 4 || lines[0].Line != "STEP 1/2: FROM x" || lines[1].Line != "STEP 2/2: RUN true" || lines[3].Line != "last" {
		t.Fatalf("lines %+v", lines)
	}
	if l := lines[2].Line; len(l) > logline.MaxBytes || !strings.HasSuffix(l, " …") || !strings.HasPrefix(l, "é") {
		t.Fatalf("long line not cut cleanly: %d bytes", len(l))
	}
	for _, l := range lines {
		if l.AppID != 1 || l.DeploymentID != 2 || l.Stream != "build" {
			t.Fatalf("line %+v", l)
		}
	}
}
