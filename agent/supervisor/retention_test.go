//go:build remote && containers_image_openpgp

package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/agent/runtime"
	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// An app's images on a worker are exactly those of its last 3 successful
// deployments (rollback targets, a rollback counting as the deployment of
// the older image) plus the ones containers still use, within seconds of
// every deploy and container removal: across quick deploys whose old
// containers overlap, agent restarts (a kill loses nothing: the record is
// on disk), and the leftover of a deploy a crash interrupted (removed at
// the agent's start).
func TestImagesRetainedAcrossDeploysAndRestarts(t *testing.T) {
	svc := podmantest.Start(t)
	ctx := context.Background()
	inst := fmt.Sprintf("k%d", time.Now().UnixNano()%1e9)
	rt, err := runtime.New(ctx, runtime.Config{Socket: svc.URL, Instance: inst, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const app = 5
	slug := "keep-" + inst
	tag := func(dep int64) string { return fmt.Sprintf("localhost/wisehosting/%s:d%d", slug, dep) }

	repo := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.email=t@t.test", "-c", "user.name=t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte("FROM "+podmantest.BaseImage+
		"\nCOPY version.txt /www/index.html\nCMD [\"sh\", \"-c\", \"exec httpd -f -p $PORT -h /www\"]\n"), 0o644)

	// The control plane: it acknowledges every result at once, and
	// after an agent restart sends the app's desired state (its newest
	// successful deployment).
	var cur atomic.Pointer[Supervisor]
	results := make(chan wsproto.JobResult, 64)
	send := func(_ context.Context, typ string, p any) error {
		if typ != wsproto.TypeJobResult {
			return nil
		}
		res := p.(wsproto.JobResult)
		go func() {
			if s := cur.Load(); s != nil {
				ack, _ := json.Marshal(wsproto.JobResultAck{JobID: res.JobID})
				s.HandleResultAck(context.Background(), ack)
			}
		}()
		select {
		case results <- res:
		default:
		}
		return nil
	}
	work := t.TempDir()
	var live wsproto.DesiredApp
	var stop func()
	start := func() {
		s, err := New(Config{Runtime: rt, Send: send, WorkDir: work, AllowLocalGit: true, ImageRetention: 3,
			DrainDelay: 3 * time.Second, ReconcileInterval: 200 * time.Millisecond, ResultResend: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		cur.Store(s)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { s.Run(rctx); close(done) }()
		if live.DeploymentID != 0 {
			s.SetDesired(wsproto.DesiredState{Apps: []wsproto.DesiredApp{live}})
		}
		// A kill: the loops stop, nothing is written on the way out.
		stop = func() { cancel(); <-done }
	}
	t.Cleanup(func() { stop() })

	job := int64(100)
	deploy := func(dep int64, rollbackTo int64) {
		t.Helper()
		p := wsproto.DeployPayload{Slug: slug, Port: 8080}
		if rollbackTo != 0 {
			p.Image = tag(rollbackTo)
		} else {
			os.WriteFile(filepath.Join(repo, "version.txt"), []byte(fmt.Sprintf("v%d\n", dep)), 0o644)
			run("add", "-A")
			run("commit", "-q", "-m", fmt.Sprint(dep))
			p.GitURL, p.Branch = repo, "main"
		}
		job++
		payload, _ := json.Marshal(p)
		j, _ := json.Marshal(wsproto.JobAssign{JobID: job, Kind: wsproto.JobDeploy, AppID: app, DeploymentID: dep, TimeoutS: 300, Payload: payload})
		if err := cur.Load().HandleJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(3 * time.Minute)
		for {
			select {
			case res := <-results:
				if res.JobID != job {
					continue
				}
				if !res.OK {
					t.Fatalf("deployment %d: %s", dep, res.Error)
				}
				var out wsproto.DeployOutput
				json.Unmarshal(res.Output, &out)
				live = wsproto.DesiredApp{AppID: app, Slug: slug, DeploymentID: dep, Image: out.Image, Port: out.Port, HostPort: out.HostPort}
				return
			case <-deadline:
				t.Fatalf("deployment %d: no result", dep)
			}
		}
	}
	// state lists the app's images and the ones its containers use.
	state := func() (imgs, used []string, containers int) {
		list, err := rt.Images(ctx)
		if err != nil {
			return nil, nil, -1
		}
		for _, im := range list {
			if im.AppID == app {
				imgs = append(imgs, im.Names...)
			}
		}
		cs, err := rt.List(ctx)
		if err != nil {
			return nil, nil, -1
		}
		for _, c := range cs {
			if c.AppID == app {
				used = append(used, c.Image)
				containers++
			}
		}
		slices.Sort(imgs)
		return imgs, used, containers
	}
	// expect waits (a few seconds at most) until the app's images are the
	// retained ones and the ones its containers use, nothing more; with
	// alone, until its last container is the only one.
	expect := func(what string, alone bool, retained ...int64) {
		t.Helper()
		var imgs, used []string
		var n int
		began := time.Now()
		for deadline := began.Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			imgs, used, n = state()
			want := slices.Clone(used)
			for _, d := range retained {
				want = append(want, tag(d))
			}
			slices.Sort(want)
			want = slices.Compact(want)
			if slices.Equal(imgs, want) && (!alone || n == 1) {
				t.Logf("%s: images %v after %s", what, shortTags(imgs), time.Since(began).Round(10*time.Millisecond))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: images %v, containers use %v (%d containers); want the images of deployments %v and the used ones",
					what, shortTags(imgs), shortTags(used), n, retained)
			}
		}
	}

	start()
	deploy(1, 0)
	expect("after deployment 1", false, 1)
	deploy(2, 0)
	expect("after deployment 2", false, 2, 1)
	// Killed while deployment 1's container is still draining.
	stop()
	start()
	deploy(3, 0)
	deploy(4, 0) // at once: 2 and 3 drain together
	expect("after deployment 4", false, 4, 3, 2)
	expect("once 2 and 3 are stopped", true, 4, 3, 2)

	// Killed again; meanwhile the deploy of deployment 5 was cut short
	// after its build (the control plane then fails it): its image is a
	// leftover, no rollback target.
	stop()
	if _, err := rt.Build(ctx, runtime.BuildSpec{Dir: repo, Containerfile: "Dockerfile", OwnFile: true, Tag: tag(5),
		Labels: map[string]string{runtime.LabelApp: fmt.Sprint(app), runtime.LabelDeployment: "5"}}, nil); err != nil {
		t.Fatal(err)
	}
	start()
	expect("at the agent's start", true, 4, 3, 2)

	deploy(6, 0)
	expect("after deployment 6", false, 6, 4, 3)
	// A rollback to deployment 3: its image is the newest rollback target.
	deploy(7, 3)
	expect("after the rollback to 3", false, 3, 6, 4)
	stop()
	start()
	deploy(8, 0)
	// The last three: 8, 7 (the image of 3) and 6; 4's image goes.
	expect("after deployment 8", true, 8, 3, 6)
}

func shortTags(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n[strings.LastIndex(n, ":")+1:]
	}
	return out
}
