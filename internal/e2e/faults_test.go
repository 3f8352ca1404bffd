// TestFaults runs in make test with the other journeys. Alone:
//
//	go test -tags "$GOTAGS" -run TestFaults -v ./internal/e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
)

// faultApp is the program of every app of the fault test: it serves its
// container's host name and prints a numbered line four times a second
// (and a last one when it is stopped), so the test can tell which
// container answers and count the lines it produced.
const faultApp = `#!/bin/sh
h=$(hostname)
echo "faults $h" > /www/index.html
httpd -p "$PORT" -h /www
i=0
trap 'echo "wh-line $h end $i"; exit 0' TERM INT
while :; do
	i=$((i+1))
	echo "wh-line $h $i"
	sleep 0.25
done
`

const faultContainerfile = `FROM ` + podmantest.BaseImage + `
COPY run.sh /run.sh
COPY --chown=65534:65534 www /www
USER 65534
CMD ["sh", "/run.sh"]
`

// faultSystem is the system under faults and what the test records.
type faultSystem struct {
	t                              *testing.T
	work, cpFile, cpAddr, zoneAddr string
	pxAddr, key, agentTmp, agentWd string
	svc                            *podmantest.Service
	pg                             *postgres
	pool                           *pgxpool.Pool
	cp, agent                      *proc
}

func (f *faultSystem) startCP() {
	f.t.Helper()
	f.cp = startProc(f.t, "cp", f.work, nil, bins.cp, "run", "--config", f.cpFile, "--adapter", "caddyfile")
	waitListen(f.t, f.cp, f.cpAddr)
}

// startAgent starts the agent without waiting for the control plane
// (it may be away).
func (f *faultSystem) startAgent() {
	f.t.Helper()
	f.agent = startProc(f.t, "agent", f.work, []string{"WISEHOSTING_WORKER_KEY=" + f.key, "TMPDIR=" + f.agentTmp}, bins.agent,
		"-cp", "http://"+f.cpAddr, "-mesh-ip", "127.0.0.1", "-zone", "z.test", "-zone-listen", f.zoneAddr,
		"-podman", f.svc.URL, "-allow-local-git", "-work-dir", f.agentWd)
}

func kill9(p *proc) {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// connects returns the times the agent's log says it connected to the
// control plane.
func (f *faultSystem) connects() []time.Time {
	b, _ := os.ReadFile(filepath.Join(f.work, "agent.log"))
	var out []time.Time
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "transport: connected to control plane") {
			continue
		}
		var e struct {
			TS float64 `json:"ts"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.TS > 0 {
			out = append(out, time.Unix(0, int64(e.TS*1e9)))
		}
	}
	return out
}

// reconnectAfter waits for the agent's first connection after t0.
func (f *faultSystem) reconnectAfter(t0 time.Time) time.Time {
	f.t.Helper()
	var at time.Time
	waitFor(f.t, "the agent to reconnect", 3*time.Minute, func() bool {
		for _, c := range f.connects() {
			if c.After(t0) {
				at = c
				return true
			}
		}
		return false
	})
	return at
}

// logEntry is a line of a process's JSON log: its time, message, and the
// fields the fault test reads.
type logEntry struct {
	At      time.Time
	Msg     string
	Job     int64
	Results []int64
}

// readLog reads a JSON log, skipping lines that are not JSON.
func readLog(path string) []logEntry {
	b, _ := os.ReadFile(path)
	var out []logEntry
	for _, l := range strings.Split(string(b), "\n") {
		var e struct {
			TS      float64 `json:"ts"`
			Msg     string  `json:"msg"`
			Job     int64   `json:"job"`
			Results []int64 `json:"results"`
		}
		if json.Unmarshal([]byte(l), &e) != nil || e.TS == 0 {
			continue
		}
		out = append(out, logEntry{At: time.Unix(0, int64(e.TS*1e9)), Msg: e.Msg, Job: e.Job, Results: e.Results})
	}
	return out
}

// openJobs lists the jobs assigned to or running on the worker.
func (f *faultSystem) openJobs() []int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := f.pool.Query(ctx, "SELECT id FROM jobs WHERE state IN ('assigned', 'running')")
	if err != nil {
		f.t.Fatalf("listing open jobs: %v", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}

// podmanJSON runs a podman command with --format json and decodes it.
func (f *faultSystem) podmanJSON(out any, args ...string) {
	f.t.Helper()
	s, err := f.svc.Podman(context.Background(), append(args, "--format", "json")...)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		f.t.Fatalf("podman %v: %v: %s", args, err, s)
	}
}

type psEntry struct {
	ID     string            `json:"Id"`
	State  string            `json:"State"`
	Labels map[string]string `json:"Labels"`
	Ports  []struct {
		HostPort int `json:"host_port"`
	} `json:"Ports"`
}

// faultWindow is one fault: when it started, when it ended, and the jobs
// the worker held when it started.
type faultWindow struct {
	name       string
	start, end time.Time
	jobs       []int64
	reconnect  time.Time
}

// TestFaults deploys 100 times over 10 apps while the agent is killed
// (kill -9) twice, the control plane is killed twice, Postgres stops for
// 20 s and the control plane is held away (stopped, its connections
// hanging) for 90 s, with requests to every app through the proxy the
// whole time. Afterwards every job is terminal and was resolved within
// 30 s of its worker's reconnect, every app serves its newest successful
// deployment and the routing table matches the containers, no request
// failed, every log line the apps printed is stored, and no image or
// checkout is left beyond the retention rule.
func TestFaults(t *testing.T) {
	began := time.Now()
	ctx := context.Background()
	f := &faultSystem{t: t, work: t.TempDir()}
	f.agentTmp, f.agentWd = filepath.Join(f.work, "agent-tmp"), filepath.Join(f.work, "agent")
	os.MkdirAll(f.agentTmp, 0o700)
	os.MkdirAll(f.agentWd, 0o700)
	regAddr := startRegistry(t, f.work, "ci-bot", "registry-pass-1")
	regConf := filepath.Join(f.work, "registries.conf")
	os.WriteFile(regConf, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", regAddr)), 0o644)
	f.svc = podmantest.Start(t, "CONTAINERS_REGISTRIES_CONF="+regConf)
	if keep := os.Getenv("WH_TEST_KEEP_LOGS"); keep != "" {
		// The processes' logs of a failed run, kept for reading.
		defer func() {
			if t.Failed() {
				os.MkdirAll(keep, 0o755)
				exec.Command("sh", "-c", "cp "+f.work+"/*.log "+keep).Run()
			}
		}()
	}
	var dbURL string
	f.pg, dbURL = startPostgres(t)

	// The image of nine apps, pushed by the team's CI; the tenth app is
	// built from a git repository with the same program.
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "run.sh"), []byte(faultApp), 0o755)
	os.WriteFile(filepath.Join(src, "Containerfile"), []byte(faultContainerfile), 0o644)
	os.MkdirAll(filepath.Join(src, "www"), 0o755)
	os.WriteFile(filepath.Join(src, "www", "index.html"), []byte("starting\n"), 0o644)
	ref := regAddr + "/acme/faults:prod"
	if out, err := f.svc.Podman(ctx, "build", "-q", "-t", ref, src); err != nil {
		t.Fatalf("build: %v %s", err, out)
	}
	if out, err := f.svc.Podman(ctx, "push", "--creds", "ci-bot:registry-pass-1", ref); err != nil {
		t.Fatalf("push: %v %s", err, out)
	}
	f.svc.Podman(ctx, "rmi", ref)
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "run.sh"), []byte(faultApp), 0o755)
	os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte(faultContainerfile), 0o644)
	os.MkdirAll(filepath.Join(repo, "www"), 0o755)
	os.WriteFile(filepath.Join(repo, "www", "index.html"), []byte("starting\n"), 0o644)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "app")

	f.cpAddr, f.zoneAddr, f.pxAddr = freeAddr(t), freeAddr(t), freeAddr(t)
	f.cpFile = filepath.Join(f.work, "cp.Caddyfile")
	os.WriteFile(f.cpFile, []byte(fmt.Sprintf(`{
	admin off
	wisehosting_scheduler {
		poll_interval 200ms
	}
	wisehosting_logs
	wisehosting {
		database_url %s
		secret %s
		proxy_token %s
		subdomain_base apps.test
		admin_email owner@acme.test
		allow_local_git on
		public_url http://%s
	}
}
http://%s {
	route {
		wisehosting_hub
		wisehosting_api
		wisehosting_dashboard {
			insecure_cookie
		}
	}
}
`, dbURL, secret, proxyToken, f.cpAddr, f.cpAddr)), 0o600)
	f.startCP()
	var err error
	if f.pool, err = pgxpool.New(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	defer f.pool.Close()
	f.key = addWorker(t, f.cpFile, "w1", "z.test", "127.0.0.1")
	f.startAgent()
	waitListen(t, f.agent, f.zoneAddr)

	// The proxy mode, on plain HTTP: what users reach the apps through.
	startPlainProxy(t, f.work, f.cpAddr, f.pxAddr)

	// The owner signs in and creates the ten apps through the API.
	api, team := signInOwner(t, f.cp.log, f.cpAddr)
	const nApps = 10
	type app struct {
		id   int64
		slug string
	}
	apps := make([]app, nApps)
	t.Cleanup(func() { f.svc.Podman(context.Background(), "rm", "-af", "-t", "0") })
	for i := range apps {
		body := map[string]any{"name": fmt.Sprintf("Fault %d", i+1), "slug": fmt.Sprintf("fault%d", i+1), "cpu_millis": 100, "memory_mb": 32}
		if i == nApps-1 {
			body["git_repo"], body["git_branch"] = repo, "main"
		} else {
			body["image"], body["registry_username"], body["registry_password"] = ref, "ci-bot", "registry-pass-1"
		}
		a := api.call("POST", fmt.Sprintf("/api/teams/%d/apps", team), body, 201)
		apps[i] = app{int64(a["id"].(float64)), body["slug"].(string)}
	}

	// Sessions outside the test goroutine: no t.Fatal there.
	hc := &http.Client{Timeout: 5 * time.Second}
	apiDo := func(method, path string) (int, map[string]any, error) {
		req, _ := http.NewRequest(method, api.base+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", api.csrf)
		req.AddCookie(api.cookie)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, nil
	}
	deploy := func(a app) (int64, error) {
		code, out, err := apiDo("POST", fmt.Sprintf("/api/apps/%d/deployments", a.id))
		if err != nil {
			return 0, err
		}
		if code != 202 {
			return 0, fmt.Errorf("%d %v", code, out)
		}
		return int64(out["deployment_id"].(float64)), nil
	}
	get := func(a app) (int, string, error) { return getHost(hc, "http://"+f.pxAddr, a.slug+".apps.test", "/") }

	// Every app's first deployment.
	for _, a := range apps {
		if _, err := deploy(a); err != nil {
			t.Fatalf("deploying %s: %v", a.slug, err)
		}
	}
	for _, a := range apps {
		waitFor(t, a.slug+" to serve through the proxy", 4*time.Minute, func() bool {
			c, b, err := get(a)
			return err == nil && c == 200 && strings.HasPrefix(b, "faults ")
		})
	}
	setup := time.Since(began)
	t.Logf("setup: %s", setup.Round(time.Second))

	// Every container the test sees, by host name (the first 12
	// characters of its id), to count the lines each one printed.
	var seenMu sync.Mutex
	seen := map[string]bool{}
	watch := func() {
		s, err := f.svc.Podman(context.Background(), "ps", "-a", "--format", "{{.ID}}")
		if err != nil {
			return
		}
		seenMu.Lock()
		for _, id := range strings.Fields(s) {
			seen[id[:12]] = true
		}
		seenMu.Unlock()
	}
	stopAll := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			watch()
			select {
			case <-stopAll:
				return
			case <-time.After(time.Second):
			}
		}
	}()

	// Requests to every app through the proxy, the whole time.
	var reqOK, reqFailed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	for _, a := range apps {
		bg.Add(1)
		go func() {
			defer bg.Done()
			for {
				select {
				case <-stopAll:
					return
				case <-time.After(200 * time.Millisecond):
				}
				c, b, err := get(a)
				if err == nil && c == 200 && strings.HasPrefix(b, "faults ") {
					reqOK.Add(1)
					continue
				}
				reqFailed.Add(1)
				failMu.Lock()
				failures = append(failures, fmt.Sprintf("%s %s: %d %q %v", time.Now().Format("15:04:05.000"), a.slug, c, b, err))
				failMu.Unlock()
			}
		}()
	}

	// The deploy stream: 100 deploys round the apps, one started every
	// 0.8 s (the request's own time included), each retried until the
	// control plane accepts it.
	const nDeploys = 100
	var streamMu sync.Mutex
	var accepted []int64
	var refusals int
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		for i := 0; i < nDeploys; i++ {
			a := apps[i%nApps]
			next := time.Now().Add(800 * time.Millisecond)
			for {
				id, err := deploy(a)
				if err == nil {
					streamMu.Lock()
					accepted = append(accepted, id)
					streamMu.Unlock()
					break
				}
				streamMu.Lock()
				refusals++
				streamMu.Unlock()
				time.Sleep(time.Second)
			}
			time.Sleep(time.Until(next))
		}
	}()

	// The faults, while the stream runs: each one as soon as the stream
	// has reached its share of the deploys (so the faults spread over the
	// whole stream and the last one comes near its end) and the worker
	// holds a job to lose.
	var faults []*faultWindow
	begin := func(name string) *faultWindow {
		w := &faultWindow{name: name, start: time.Now(), jobs: f.openJobs()}
		faults = append(faults, w)
		return w
	}
	streamAt := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d deploys to be accepted", n), 4*time.Minute, func() bool {
			streamMu.Lock()
			defer streamMu.Unlock()
			return len(accepted) >= n
		})
		for deadline := time.Now().Add(15 * time.Second); len(f.openJobs()) == 0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
	}
	faultsBegan := time.Now()
	streamAt(10)

	w := begin("agent kill -9 (1)")
	kill9(f.agent)
	f.startAgent()
	w.end = time.Now()

	f.reconnectAfter(w.end)
	streamAt(22)
	w = begin("control plane kill -9 (1)")
	kill9(f.cp)
	f.startCP()
	w.end = time.Now()

	f.reconnectAfter(w.end)
	streamAt(34)
	pgStart := time.Now()
	f.pg.stop(t)
	time.Sleep(20 * time.Second)
	f.pg.start(t)
	pgDown := time.Since(pgStart)

	streamAt(46)
	w = begin("control plane away 90 s")
	syscall.Kill(f.cp.cmd.Process.Pid, syscall.SIGSTOP)
	cpPid := f.cp.cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(cpPid, syscall.SIGCONT) })
	time.Sleep(40 * time.Second)
	// The agent dies while the control plane is away, too.
	w2 := &faultWindow{name: "agent kill -9 (2), control plane away", start: time.Now()}
	kill9(f.agent)
	f.startAgent()
	time.Sleep(50 * time.Second)
	syscall.Kill(f.cp.cmd.Process.Pid, syscall.SIGCONT)
	w.end, w2.end = time.Now(), time.Now()
	w2.jobs = w.jobs
	faults = append(faults, w2)

	f.reconnectAfter(w.end)
	streamAt(nDeploys - 15)
	w = begin("control plane kill -9 (2)")
	kill9(f.cp)
	f.startCP()
	w.end = time.Now()

	faultTime := time.Since(faultsBegan)
	select {
	case <-streamDone:
	case <-time.After(4 * time.Minute):
		t.Fatalf("the deploy stream did not finish: %d accepted", len(accepted))
	}
	streamEnded := time.Now()

	// Every deployment ends.
	terminal := "('succeeded', 'failed', 'cancelled', 'superseded')"
	waitFor(t, "every deployment to end", 4*time.Minute, func() bool {
		var n int
		f.pool.QueryRow(ctx, "SELECT count(*) FROM deployments WHERE status NOT IN "+terminal).Scan(&n)
		return n == 0
	})
	var openJobs int
	f.pool.QueryRow(ctx, "SELECT count(*) FROM jobs WHERE state NOT IN ('succeeded', 'failed', 'cancelled')").Scan(&openJobs)
	if openJobs != 0 {
		t.Errorf("%d jobs are not terminal", openJobs)
	}
	settled := time.Now()

	// Jobs the worker held when a fault began were resolved within 30 s
	// of the reconnect that could resolve them. Resolved: terminal, or
	// requeued or given up by the control plane (the issue's "re-queued,
	// or failed with the reason"; a requeued job's second run is a new
	// run, not a wait). The clock starts at the agent's connection whose
	// hello carried the job's result, or, for a job the agent ended after
	// its reconnect (it was still running, or took it then), when the agent
	// ended it; otherwise (the job was lost with the agent) at the first
	// connection after the fault, whose hello must resolve it.
	cpLog, agentLog := readLog(f.cp.log), readLog(filepath.Join(f.work, "agent.log"))
	var hellos []logEntry
	recovered, ended := map[int64][]time.Time{}, map[int64][]time.Time{}
	for _, e := range cpLog {
		switch e.Msg {
		case "scheduler: worker hello":
			hellos = append(hellos, e)
		case "scheduler: recovered job":
			recovered[e.Job] = append(recovered[e.Job], e.At)
		}
	}
	for _, e := range agentLog {
		if e.Msg == "supervisor: job ended" {
			ended[e.Job] = append(ended[e.Job], e.At)
		}
	}
	connects := f.connects()
	// The agent logs its connection just after writing the hello, so
	// the control plane may log the hello first.
	connectedBefore := func(at time.Time) time.Time {
		var last time.Time
		for _, c := range connects {
			if !c.After(at.Add(time.Second)) {
				last = c
			}
		}
		return last
	}
	firstAfter := func(ts []time.Time, t0 time.Time) (time.Time, bool) {
		for _, t := range ts {
			if !t.Before(t0) {
				return t, true
			}
		}
		return time.Time{}, false
	}
	var maxWait, maxEndToEnd time.Duration
	var slowest string
	for _, w := range faults {
		w.reconnect = f.reconnectAfter(w.end.Add(-2 * time.Second))
		from := w.end.Add(-2 * time.Second)
		var firstHello *logEntry
		for i := range hellos {
			if !hellos[i].At.Before(from) {
				firstHello = &hellos[i]
				break
			}
		}
		if firstHello == nil {
			t.Errorf("%s: the control plane logged no hello of the worker after the fault", w.name)
			continue
		}
		for _, id := range w.jobs {
			var fin time.Time
			var state string
			var attempt int
			f.pool.QueryRow(ctx, "SELECT state, coalesce(finished_at, now()), attempt FROM jobs WHERE id = $1", id).Scan(&state, &fin, &attempt)
			maxEndToEnd = max(maxEndToEnd, fin.Sub(w.reconnect))
			resolved, how := fin, state
			if r, ok := firstAfter(recovered[id], w.start); ok && r.Before(resolved) {
				resolved, how = r, "requeued or given up by the control plane"
			}
			start, why := connectedBefore(firstHello.At), "the first reconnect after the fault"
			carried := false
			for _, h := range hellos {
				if !h.At.Before(from) && slices.Contains(h.Results, id) {
					start, why, carried = connectedBefore(h.At), "the reconnect whose hello carried its result", true
					break
				}
			}
			if e, ok := firstAfter(ended[id], from); ok && !carried && e.After(start) && e.Before(resolved) {
				start, why = e, "the agent ended it after its reconnect"
			}
			wait := resolved.Sub(start)
			desc := fmt.Sprintf("%s: job %d (%s, attempt %d) %s %s after %s (%s); finished %s after the fault's first reconnect",
				w.name, id, state, attempt, how, wait.Round(time.Millisecond), why, start.Format("15:04:05.000"), fin.Sub(w.reconnect).Round(time.Millisecond))
			if wait > maxWait || slowest == "" {
				maxWait, slowest = max(wait, maxWait), desc
			}
			if wait > 30*time.Second {
				t.Errorf("%s", desc)
			}
		}
		t.Logf("%s: %d jobs held, reconnect %s after the fault ended", w.name, len(w.jobs), w.reconnect.Sub(w.end).Round(time.Millisecond))
	}

	// Every app serves its newest successful deployment, through the
	// proxy, from the one container the routing table points at.
	var table struct {
		Hosts map[string]struct {
			Paths []struct {
				Upstreams []struct {
					Dial string `json:"dial"`
				} `json:"upstreams"`
			} `json:"paths"`
		} `json:"hosts"`
	}
	newest := map[int64]int64{}
	for _, a := range apps {
		var d int64
		f.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM deployments WHERE app_id = $1 AND status = 'succeeded'", a.id).Scan(&d)
		newest[a.id] = d
	}
	var ps []psEntry
	var why []string
	served := func() bool {
		why = why[:0]
		req, _ := http.NewRequest("GET", "http://"+f.cpAddr+"/v1/proxy/routes", nil)
		req.Header.Set("Authorization", "Bearer "+proxyToken)
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		json.NewDecoder(resp.Body).Decode(&table)
		resp.Body.Close()
		ps = nil
		f.podmanJSON(&ps, "ps", "-a")
		for _, a := range apps {
			var mine []psEntry
			for _, c := range ps {
				if c.Labels["io.wisehosting.app"] == strconv.FormatInt(a.id, 10) {
					mine = append(mine, c)
				}
			}
			var desc []string
			for _, c := range mine {
				desc = append(desc, fmt.Sprintf("%s deployment %s %s ports %v", c.ID[:12], c.Labels["io.wisehosting.deployment"], c.State, c.Ports))
			}
			if len(mine) != 1 || mine[0].State != "running" || mine[0].Labels["io.wisehosting.deployment"] != strconv.FormatInt(newest[a.id], 10) || len(mine[0].Ports) == 0 {
				why = append(why, fmt.Sprintf("%s: newest successful deployment %d, containers %v", a.slug, newest[a.id], desc))
				continue
			}
			h := table.Hosts[a.slug+".apps.test"]
			if len(h.Paths) != 1 || len(h.Paths[0].Upstreams) != 1 || h.Paths[0].Upstreams[0].Dial != fmt.Sprintf("127.0.0.1:%d", mine[0].Ports[0].HostPort) {
				why = append(why, fmt.Sprintf("%s: routing %+v, containers %v", a.slug, h, desc))
				continue
			}
			c, b, err := get(a)
			if err != nil || c != 200 || b != "faults "+mine[0].ID[:12]+"\n" {
				why = append(why, fmt.Sprintf("%s: serves %d %q %v, containers %v", a.slug, c, b, err, desc))
			}
		}
		return len(why) == 0
	}
	for deadline := time.Now().Add(90 * time.Second); !served(); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("after 90 s, apps do not serve their newest successful deployment from the container the routing table names:\n%s", strings.Join(why, "\n"))
			break
		}
	}
	servedAt := time.Now()
	if len(ps) != nApps {
		t.Errorf("%d containers, want one per app", len(ps))
	}
	close(stopAll)
	bg.Wait()
	watch()

	// Every line the apps printed is stored: each container's numbered
	// lines without a gap, up to its last (a stopped container's "end"
	// line; a running one's last line in podman's log).
	live := map[string]int{}
	for _, c := range ps {
		h := c.ID[:12]
		s, _ := f.svc.Podman(ctx, "logs", c.ID)
		for _, l := range strings.Split(s, "\n") {
			var n int
			if _, err := fmt.Sscanf(l, "wh-line "+h+" %d", &n); err == nil {
				live[h] = max(live[h], n)
			}
		}
	}
	type logs struct {
		nums     map[int]int
		end      int
		produced int
	}
	var stored map[string]*logs
	var lines, dups, missing int
	var problems []string
	lineRE := regexp.MustCompile(`^wh-line ([0-9a-f]{12}) (end )?(\d+)$`)
	check := func() bool {
		stored = map[string]*logs{}
		lines, dups, missing = 0, 0, 0
		problems = problems[:0]
		rows, err := f.pool.Query(ctx, "SELECT line FROM runtime_logs")
		if err != nil {
			return false
		}
		var other []string
		for rows.Next() {
			var l string
			rows.Scan(&l)
			m := lineRE.FindStringSubmatch(l)
			if m == nil {
				// The apps print nothing else: a piece of a line.
				other = append(other, l)
				continue
			}
			lg := stored[m[1]]
			if lg == nil {
				lg = &logs{nums: map[int]int{}, end: -1}
				stored[m[1]] = lg
			}
			n, _ := strconv.Atoi(m[3])
			if m[2] != "" {
				lg.end = n
				continue
			}
			lines++
			lg.nums[n]++
			if lg.nums[n] > 1 {
				dups++
			}
		}
		rows.Close()
		if len(other) > 0 {
			problems = append(problems, fmt.Sprintf("%d stored lines are not lines the apps printed, e.g. %q", len(other), other[:min(len(other), 5)]))
		}
		seenMu.Lock()
		defer seenMu.Unlock()
		for h := range seen {
			lg := stored[h]
			if lg == nil {
				lg = &logs{nums: map[int]int{}, end: -1}
			}
			last, ok := live[h]
			if !ok {
				last = lg.end
			}
			if last < 0 {
				// Removed without its last line stored: at least
				// what is stored must have no gap.
				for n := range lg.nums {
					last = max(last, n)
				}
				problems = append(problems, fmt.Sprintf("container %s: no end line stored", h))
			}
			lg.produced = last
			var gaps []string
			for n := 1; n <= last; n++ {
				if lg.nums[n] != 0 {
					continue
				}
				missing++
				if len(gaps) > 0 && strings.HasSuffix(gaps[len(gaps)-1], fmt.Sprintf("-%d", n-1)) {
					gaps[len(gaps)-1] = gaps[len(gaps)-1][:strings.LastIndex(gaps[len(gaps)-1], "-")] + fmt.Sprintf("-%d", n)
				} else {
					gaps = append(gaps, fmt.Sprintf("%d-%d", n, n))
				}
			}
			if len(gaps) > 0 {
				problems = append(problems, fmt.Sprintf("container %s (last line %d): lines %s missing", h, last, strings.Join(gaps, ",")))
			}
		}
		return missing == 0 && len(problems) == 0
	}
	deadline := time.Now().Add(60 * time.Second)
	for !check() && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	produced := 0
	for h := range seen {
		if lg := stored[h]; lg != nil {
			produced += max(lg.produced, 0)
		}
	}
	if missing > 0 || len(problems) > 0 {
		sort.Strings(problems)
		t.Errorf("runtime logs: %d of %d lines missing; %v", missing, produced, problems)
	}

	// Images: exactly those of each app's last 3 successful deployments
	// (its rollback targets), nothing more, within seconds: the agent
	// prunes as soon as a container goes, and the last ones went before
	// the routing check passed.
	wantImages := map[string][]string{}
	for _, a := range apps {
		rows, err := f.pool.Query(ctx, `SELECT DISTINCT image FROM (SELECT image FROM deployments
			WHERE app_id = $1 AND status = 'succeeded' AND image <> '' ORDER BY id DESC LIMIT 3) d`, a.id)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for rows.Next() {
			var im string
			rows.Scan(&im)
			want = append(want, im)
		}
		rows.Close()
		sort.Strings(want)
		wantImages[strconv.FormatInt(a.id, 10)] = want
	}
	perApp := map[string][]string{}
	maxImages := 0
	pruneBegan := time.Now()
	exact := func() bool {
		var imgs []struct {
			Names  []string          `json:"Names"`
			Labels map[string]string `json:"Labels"`
		}
		s, err := f.svc.Podman(ctx, "images", "--filter", "label=io.wisehosting.app", "--format", "json")
		if err != nil || json.Unmarshal([]byte(s), &imgs) != nil {
			return false
		}
		clear(perApp)
		for _, im := range imgs {
			a := im.Labels["io.wisehosting.app"]
			perApp[a] = append(perApp[a], im.Names...)
		}
		ok := true
		for a, want := range wantImages {
			sort.Strings(perApp[a])
			ok = ok && slices.Equal(perApp[a], want)
		}
		return ok && len(perApp) <= len(wantImages)
	}
	polls := 1
	for deadline := time.Now().Add(30 * time.Second); !exact() && time.Now().Before(deadline); polls++ {
		time.Sleep(250 * time.Millisecond)
	}
	imagesAt := time.Now()
	for a, have := range perApp {
		maxImages = max(maxImages, len(have))
		if want := wantImages[a]; !slices.Equal(have, want) {
			t.Errorf("app %s keeps the images %v, want those of its last 3 successful deployments %v", a, have, want)
		}
	}
	var left []string
	for _, dir := range []string{f.agentTmp, filepath.Join(f.agentWd, "wisehosting-tmp"), filepath.Join(f.agentWd, "wisehosting-clones")} {
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			left = append(left, filepath.Join(dir, e.Name()))
		}
	}
	if len(left) > 0 {
		t.Errorf("left on the worker: %v", left)
	}

	// The figures.
	byStatus := map[string]int{}
	rows, _ := f.pool.Query(ctx, "SELECT status, count(*) FROM deployments GROUP BY status")
	for rows.Next() {
		var s string
		var n int
		rows.Scan(&s, &n)
		byStatus[s] = n
	}
	rows.Close()
	var failedMsgs []string
	rows, _ = f.pool.Query(ctx, "SELECT id, error FROM deployments WHERE status = 'failed' ORDER BY id")
	for rows.Next() {
		var id int64
		var e string
		rows.Scan(&id, &e)
		failedMsgs = append(failedMsgs, fmt.Sprintf("%d: %s", id, e))
	}
	rows.Close()
	t.Logf("deploys: %d accepted (%d refusals while the control plane or database was away), deployments %v", len(accepted), refusals, byStatus)
	if len(failedMsgs) > 0 {
		t.Logf("failed deployments: %v", failedMsgs)
	}
	t.Logf("faults: %s from the first to the last; Postgres down %s; the stream ended %s after the last fault; every deployment ended %s later, apps served their newest %s after that",
		faultTime.Round(time.Second), pgDown.Round(time.Second), streamEnded.Sub(faults[len(faults)-1].end).Round(time.Second),
		settled.Sub(streamEnded).Round(time.Second), servedAt.Sub(settled).Round(time.Second))
	t.Logf("jobs: slowest resolution %s after the reconnect that could resolve it (%s); slowest finish %s after a fault's first reconnect, requeued runs included",
		maxWait.Round(time.Millisecond), slowest, maxEndToEnd.Round(time.Millisecond))
	t.Logf("requests: %d ok, %d failed", reqOK.Load(), reqFailed.Load())
	t.Logf("runtime logs: %d containers, %d lines produced, %d stored (%d duplicates), %d missing", len(seen), produced, lines, dups, missing)
	t.Logf("runtime-log check took %s; images: at most %d per app, checked in %s (%d listings); wall time %s (setup %s)",
		pruneBegan.Sub(servedAt).Round(time.Second), maxImages, imagesAt.Sub(pruneBegan).Round(100*time.Millisecond), polls,
		time.Since(began).Round(time.Second), setup.Round(time.Second))
	if n := reqFailed.Load(); n > 0 {
		failMu.Lock()
		if len(failures) > 20 {
			failures = append(failures[:10], failures[len(failures)-10:]...)
		}
		t.Errorf("%d requests failed: %s", n, strings.Join(failures, "\n"))
		failMu.Unlock()
	}
}
