//go:build remote && containers_image_openpgp

package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime"
	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// A job's result survives an agent restart and a control plane that is
// away: it stays on disk, counts in the hello, is sent again after every
// reconnect and goes only when the control plane acknowledges it. A
// redelivery of the job is acknowledged, not run again.
func TestResultsKeptUntilAcknowledged(t *testing.T) {
	svc := podmantest.Start(t)
	rt, err := runtime.New(context.Background(), runtime.Config{Socket: svc.URL, Instance: fmt.Sprintf("r%d", time.Now().UnixNano()%1e9)})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var connected atomic.Bool
	rec := &recorder{}
	send := func(ctx context.Context, typ string, p any) error {
		if !connected.Load() {
			return errors.New("not connected")
		}
		return rec.send(ctx, typ, p)
	}
	open := func() *Supervisor {
		s, err := New(Config{Runtime: rt, Send: send, WorkDir: work, ResultResend: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	job, _ := json.Marshal(wsproto.JobAssign{JobID: 12, Kind: "nonsense", AppID: 3})
	s.HandleJob(context.Background(), job)
	deadline := time.Now().Add(10 * time.Second)
	for _, res := s.Accounted(); !slices.Equal(res, []int64{12}); _, res = s.Accounted() {
		if time.Now().After(deadline) {
			t.Fatal("the result was not kept")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The agent restarts while the control plane is away.
	s = open()
	if running, res := s.Accounted(); len(running) != 0 || !slices.Equal(res, []int64{12}) {
		t.Fatalf("after a restart: running %v, results %v", running, res)
	}
	connected.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	s.HandleJob(ctx, job) // redelivered: acknowledged only
	s.ResendResults()
	rs := waitResults(t, rec, 2, 5*time.Second) // sent again until acknowledged
	if rs[0].JobID != 12 || rs[0].OK {
		t.Fatalf("result %+v", rs[0])
	}
	ack, _ := json.Marshal(wsproto.JobResultAck{JobID: 12})
	s.HandleResultAck(ctx, ack)
	if _, res := s.Accounted(); len(res) != 0 {
		t.Fatalf("acknowledged result kept: %v", res)
	}
	n := len(rec.results())
	time.Sleep(400 * time.Millisecond)
	if len(rec.results()) != n {
		t.Fatal("an acknowledged result was sent again")
	}
	if rec.count(wsproto.TypeJobProgress) != 0 {
		t.Fatal("the redelivered job ran again")
	}
	if s2 := open(); len(s2.results.ids()) != 0 {
		t.Fatal("an acknowledged result is still on disk")
	}
}

// A desired state naming an older deployment never replaces the newer one
// this agent runs; a newer desired deployment replaces it.
func TestDesiredNeverGoesBack(t *testing.T) {
	s, _ := newSupervisor(t)
	s.SetDesired(wsproto.DesiredState{Apps: []wsproto.DesiredApp{{AppID: 1, DeploymentID: 5, Image: "a:5"}}})
	s.mu.Lock()
	s.desired[unit{1, 0}] = wsproto.DesiredApp{AppID: 1, DeploymentID: 7, Image: "a:7", HostPort: 21007} // a deploy switched
	s.mu.Unlock()
	s.SetDesired(wsproto.DesiredState{Apps: []wsproto.DesiredApp{{AppID: 1, DeploymentID: 5, Image: "a:5", Env: map[string]string{"K": "v"}}}})
	if d := s.Desired()[1]; d.DeploymentID != 7 || d.Env["K"] != "v" {
		t.Fatalf("went back to %+v", d)
	}
	s.SetDesired(wsproto.DesiredState{Apps: []wsproto.DesiredApp{{AppID: 1, DeploymentID: 9, Image: "a:9"}}})
	if d := s.Desired()[1]; d.DeploymentID != 9 {
		t.Fatalf("newer desired state not taken: %+v", d)
	}
}

// An agent that finds no record of live deployments (a new state
// directory, or an agent from before the record) keeps each app's newest
// ImageRetention images by deployment and the ones containers use;
// checkouts a crash left behind go at start.
func TestImageRetentionAndCleanCheckouts(t *testing.T) {
	svc := podmantest.Start(t)
	inst := fmt.Sprintf("i%d", time.Now().UnixNano()%1e9)
	rt, err := runtime.New(context.Background(), runtime.Config{Socket: svc.URL, Instance: inst})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	leftover := filepath.Join(work, "clones", "wh-src-123", "src")
	os.MkdirAll(leftover, 0o700)
	rec := &recorder{}
	s, err := New(Config{Runtime: rt, Send: rec.send, WorkDir: work, CloneDir: filepath.Join(work, "clones"), ImageRetention: 2})
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(work, "clones")); len(ents) != 0 {
		t.Fatalf("checkouts left at start: %v", ents)
	}
	ctx := context.Background()
	dir := t.TempDir()
	var tags []string
	for dep := 1; dep <= 5; dep++ {
		tag := fmt.Sprintf("localhost/wisehosting/ret-%s:d%d", inst, dep)
		_, err := rt.Build(ctx, runtime.BuildSpec{Dir: dir, Containerfile: fmt.Sprintf("FROM %s\nLABEL step=%d\n", podmantest.BaseImage, dep), Tag: tag,
			Labels: map[string]string{runtime.LabelApp: "77", runtime.LabelDeployment: fmt.Sprint(dep)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, tag)
		t.Cleanup(func() { rt.RemoveImage(context.Background(), tag) })
	}
	// Deployment 1 still runs (say, the app was rolled back to it).
	c, err := rt.Run(ctx, runtime.RunSpec{AppID: 77, DeploymentID: 1, Slug: "ret-" + inst, Image: tags[0], Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Remove(context.Background(), c.ID) })
	s.pruneImages(ctx, []int64{77}, false)
	for i, tag := range tags {
		ok, _ := rt.ImageExists(ctx, tag)
		if want := i == 0 || i >= 3; ok != want {
			t.Errorf("image of deployment %d kept: %v, want %v", i+1, ok, want)
		}
	}
	if n, err := rt.ImagesBytes(ctx); err != nil || n <= 0 {
		t.Fatalf("image disk use %d %v", n, err)
	}
}

// While the control plane answers every result with a retry (its database
// is down), the results are sent again at a bounded, slowing rate, not as
// fast as the answers come; once it records them again they are delivered
// within about ResultRetryMax.
func TestResultRetryBacksOff(t *testing.T) {
	svc := podmantest.Start(t)
	rt, err := runtime.New(context.Background(), runtime.Config{Socket: svc.URL, Instance: fmt.Sprintf("b%d", time.Now().UnixNano()%1e9)})
	if err != nil {
		t.Fatal(err)
	}
	const results = 10
	const retryMax = 400 * time.Millisecond
	var down atomic.Bool
	down.Store(true)
	var sends, delivered atomic.Int64
	var s *Supervisor
	recovered := make(chan time.Time, 1)
	// The control plane: a refused result is answered with a retry, a
	// recorded one with an ack, each from its own goroutine as the
	// connection's read loop would.
	send := func(ctx context.Context, typ string, p any) error {
		if typ != wsproto.TypeJobResult {
			return nil
		}
		sends.Add(1)
		res := p.(wsproto.JobResult)
		if down.Load() {
			go s.RetryResults()
			return nil
		}
		ack, _ := json.Marshal(wsproto.JobResultAck{JobID: res.JobID})
		go func() {
			s.HandleResultAck(context.Background(), ack)
			if delivered.Add(1) == results {
				recovered <- time.Now()
			}
		}()
		return nil
	}
	s, err = New(Config{Runtime: rt, Send: send, WorkDir: t.TempDir(), ResultResend: time.Hour,
		ResultRetryMin: 10 * time.Millisecond, ResultRetryMax: retryMax})
	if err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= results; id++ {
		if err := s.results.put(storedResult{Result: wsproto.JobResult{JobID: id, OK: true}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.resultLoop(ctx)
	start := time.Now()
	s.ResendResults() // the reconnect
	const outage = 3 * time.Second
	time.Sleep(outage)
	elapsed := time.Since(start)
	n := sends.Load()
	// Pauses of at least half of 10, 20, 40, 80, 160, 320ms, then of at
	// least half of 400ms: at most 1 + 6 + elapsed/200ms rounds.
	maxRounds := 1 + 6 + int64(elapsed/(retryMax/2))
	t.Logf("%d result sends in %s while refused (%.1f/s), bound %d", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), maxRounds*results)
	if n > maxRounds*results {
		t.Fatalf("%d result sends in %s while the control plane refused them, want at most %d", n, elapsed, maxRounds*results)
	}
	if n < 2*results {
		t.Fatalf("%d result sends in %s: refused results were not sent again", n, elapsed)
	}
	down.Store(false)
	back := time.Now()
	select {
	case at := <-recovered:
		t.Logf("all results recorded %s after the control plane recovered", at.Sub(back).Round(time.Millisecond))
	case <-time.After(retryMax + 10*time.Second):
		t.Fatalf("%d of %d results recorded %s after the control plane recovered", delivered.Load(), results, time.Since(back))
	}
	if _, res := s.Accounted(); len(res) != 0 {
		t.Fatalf("acknowledged results kept: %v", res)
	}
}
