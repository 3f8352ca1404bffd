//go:build remote && containers_image_openpgp

// Package supervisor is the worker agent's brain: it runs the jobs the
// control plane assigns (clone, build, start, health check, cut-over),
// keeps the containers that run equal to the control plane's desired
// state, detects crashes and crash loops, and ships stats and logs.
//
// Reconciliation is level-triggered: after every (re)connect the control
// plane sends the full desired state, and a loop compares it with the
// containers Podman reports, whatever happened in between. Containers
// belong to Podman and survive an agent restart; a restarted agent adopts
// them and changes nothing until it has the desired state.
package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/agent/build"
	"github.com/wisehosting/wisehosting/agent/runtime"
	"github.com/wisehosting/wisehosting/internal/frameworks"
	"github.com/wisehosting/wisehosting/internal/gitsource"
	"github.com/wisehosting/wisehosting/internal/imageref"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// SendFunc sends one message to the control plane.
type SendFunc func(ctx context.Context, msgType string, payload any) error

// Config configures a Supervisor.
type Config struct {
	Runtime *runtime.Runtime
	Send    SendFunc
	// WorkDir is the default parent of CloneDir and StateDir. Default:
	// os.TempDir().
	WorkDir string
	// CloneDir holds the temporary checkouts; it belongs to this agent
	// alone and what a crash left in it is removed at start. Default:
	// WorkDir/wisehosting-clones.
	CloneDir string
	// AllowLocalGit accepts file:// and local repository paths (tests and
	// single-host installs).
	AllowLocalGit bool
	// GitCAFile: CAs git trusts besides the system ones.
	GitCAFile string
	// HealthTimeout bounds the wait for a new container to answer.
	// Default: 60s.
	HealthTimeout time.Duration
	// DrainDelay keeps the previous container running after the switch
	// so that proxies polling the routing table move over first. Default:
	// 15s (the proxy polls every 5s).
	DrainDelay time.Duration
	// ReconcileInterval is the period of the reconcile loop. Default: 2s.
	ReconcileInterval time.Duration
	// StatsInterval is the period of stats reports. Default: 15s.
	StatsInterval time.Duration
	// CrashLoop: Crashes crashes within Window make a crash loop; the app
	// is then restarted only after a back-off. Defaults: 5 in 5 minutes.
	CrashLoopCrashes int
	CrashLoopWindow  time.Duration
	// LogSpoolDir holds log batches the control plane has not confirmed
	// beyond LogMemoryLines, and all of them when the agent stops; they
	// are sent again after a restart. "" keeps them in memory only.
	LogSpoolDir string
	// LogMemoryLines bounds unconfirmed log lines in memory. Default
	// 10 000.
	LogMemoryLines int
	// LogSpoolBytes bounds LogSpoolDir; past it the oldest batches are
	// dropped. Default 256 MiB.
	LogSpoolBytes int64
	// LogAckTimeout is how long a log batch waits for the control plane's
	// ack before it is sent again. Default 20s.
	LogAckTimeout time.Duration
	// DiskQuota is the probed quota support (containers get DiskMB only
	// when enforced).
	DiskQuota runtime.DiskQuota
	// StateDir holds what must survive an agent crash: job results until
	// the control plane acknowledges them. Default: WorkDir/wisehosting-state.
	StateDir string
	// ResultResend is how often unacknowledged results are sent again
	// while connected. Default: 5s.
	ResultResend time.Duration
	// ResultRetryMin and ResultRetryMax bound the pause before results
	// are sent again when the control plane could not record them (its
	// database failed): the pause starts at the minimum, doubles with
	// every further refusal up to the maximum, is jittered, and starts
	// over after an acknowledgement or a reconnect. Defaults: 100ms, 5s.
	ResultRetryMin, ResultRetryMax time.Duration
	// ImageRetention is how many of an app's last successful deployments
	// keep their images (rollback targets); the app's other images are
	// removed after each of its jobs, at start and when one of its
	// containers goes (see retention.go). Default: 3.
	ImageRetention int
	// BuildCacheMB bounds the build cache (untagged layers); beyond it
	// the cache is pruned after a build. Default: 2048.
	BuildCacheMB int
	Logger       *zap.Logger
}

func (c *Config) defaults() {
	if c.WorkDir == "" {
		c.WorkDir = os.TempDir()
	}
	if c.HealthTimeout == 0 {
		c.HealthTimeout = 60 * time.Second
	}
	if c.DrainDelay == 0 {
		c.DrainDelay = 15 * time.Second
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = 2 * time.Second
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = 15 * time.Second
	}
	if c.CrashLoopCrashes == 0 {
		c.CrashLoopCrashes = 5
	}
	if c.CrashLoopWindow == 0 {
		c.CrashLoopWindow = 5 * time.Minute
	}
	if c.CloneDir == "" {
		c.CloneDir = filepath.Join(c.WorkDir, "wisehosting-clones")
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join(c.WorkDir, "wisehosting-state")
	}
	if c.ResultResend == 0 {
		c.ResultResend = 5 * time.Second
	}
	if c.ResultRetryMin == 0 {
		c.ResultRetryMin = 100 * time.Millisecond
	}
	if c.ResultRetryMax == 0 {
		c.ResultRetryMax = 5 * time.Second
	}
	if c.ResultRetryMax < c.ResultRetryMin {
		c.ResultRetryMax = c.ResultRetryMin
	}
	if c.ImageRetention == 0 {
		c.ImageRetention = 3
	}
	if c.BuildCacheMB == 0 {
		c.BuildCacheMB = 2048
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// unit is one instance of an app: the app and its slot. A worker may run
// several instances of one app, each its own container.
type unit struct {
	app  int64
	slot int
}

func unitOf(d wsproto.DesiredApp) unit { return unit{d.AppID, d.Slot} }

func containerUnit(c runtime.Container) unit { return unit{c.AppID, c.Slot} }

// appRun is what the supervisor knows about one app instance.
type appRun struct {
	crashes   []time.Time
	crashloop bool
	nextTry   time.Time
	reported  reportKey // last state sent
	restarts  int
	// failedProbes counts the health probes failed in a row while the
	// container runs.
	failedProbes int
}

// reportKey is what an app.state says: any change of it is reported, a
// new container or port as much as a new state word.
type reportKey struct {
	state      string
	deployment int64
	hostPort   int
}

// Supervisor runs jobs and reconciles containers.
type Supervisor struct {
	cfg     Config
	rt      *runtime.Runtime
	logs    *shipper
	results *resultStore

	mu          sync.Mutex
	desired     map[unit]wsproto.DesiredApp
	haveDesired bool
	busy        map[int64]int64 // app → newest job in flight
	appSlots    map[int64]chan struct{}
	jobs        map[int64]*jobRun
	apps        map[unit]*appRun
	retiring    map[string]time.Time // container → removal time
	acked       map[int64]time.Time  // app → when its last deploy result was acknowledged
	redirects   map[int]redirect     // old host port → new (local zone routing)
	following   map[string]context.CancelFunc
	removing    map[string]bool // containers being retired
	live        *liveRecord
	pruneApps   map[int64]bool // apps whose images wait for pruning
	pruneEvery  bool           // every app's images wait for pruning
	pruneKick   chan struct{}
	seen        map[string]int64 // containers (→ app) of the last reconcile pass
	kick        chan struct{}
	resend      chan struct{}
	retryDelay  time.Duration // next pause before results go again after a refusal
	retryTimer  *time.Timer   // a resend after a refusal is scheduled
	building    atomic.Int32  // builds in progress
}

type jobRun struct {
	cancel context.CancelFunc
	done   bool
	at     time.Time
}

type redirect struct {
	to    int
	until time.Time
}

// New makes a Supervisor; Run starts its loops.
func New(cfg Config) (*Supervisor, error) {
	cfg.defaults()
	if cfg.Runtime == nil || cfg.Send == nil {
		return nil, errors.New("supervisor needs a runtime and a send function")
	}
	s := &Supervisor{cfg: cfg, rt: cfg.Runtime,
		desired: map[unit]wsproto.DesiredApp{}, busy: map[int64]int64{}, jobs: map[int64]*jobRun{},
		apps: map[unit]*appRun{}, retiring: map[string]time.Time{}, redirects: map[int]redirect{},
		following: map[string]context.CancelFunc{}, kick: make(chan struct{}, 1),
		removing: map[string]bool{}, pruneApps: map[int64]bool{}, pruneKick: make(chan struct{}, 1),
		appSlots: map[int64]chan struct{}{}, resend: make(chan struct{}, 1), acked: map[int64]time.Time{}}
	s.logs = newShipper(cfg.Send, spoolConfig{Dir: cfg.LogSpoolDir, MemoryLines: cfg.LogMemoryLines,
		DiskBytes: cfg.LogSpoolBytes, AckTimeout: cfg.LogAckTimeout}, cfg.Logger)
	// Checkouts a crash left behind: no job runs yet.
	if err := os.RemoveAll(cfg.CloneDir); err != nil {
		return nil, fmt.Errorf("cleaning the clone directory: %w", err)
	}
	if err := os.MkdirAll(cfg.CloneDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the clone directory: %w", err)
	}
	res, err := openResults(filepath.Join(cfg.StateDir, "results"))
	if err != nil {
		return nil, err
	}
	s.results = res
	if s.live, err = openLiveRecord(filepath.Join(cfg.StateDir, "live.json"), cfg.ImageRetention); err != nil {
		return nil, err
	}
	// Jobs whose results wait for an acknowledgement ran: a redelivery of
	// one is acknowledged, not run again.
	for _, id := range res.ids() {
		s.jobs[id] = &jobRun{cancel: func() {}, done: true, at: time.Now()}
	}
	return s, nil
}

// Run runs the reconcile, stats and log loops until ctx ends. Containers
// keep running when it returns.
func (s *Supervisor) Run(ctx context.Context) error {
	// Scheduled runs left by an earlier agent process have lost their
	// results with it (the control plane fails them at their deadline).
	if err := s.rt.RemoveTasks(ctx); err != nil {
		s.cfg.Logger.Warn("supervisor: removing containers of interrupted scheduled runs", zap.Error(err))
	}
	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); s.logs.run(ctx) }()
	go func() { defer wg.Done(); s.pruneLoop(ctx) }()
	go func() { defer wg.Done(); s.resultLoop(ctx) }()
	go func() { defer wg.Done(); s.statsLoop(ctx) }()
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.ReconcileInterval)
		defer t.Stop()
		for {
			if err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("supervisor: reconcile", zap.Error(err))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-s.kick:
			}
		}
	}()
	<-ctx.Done()
	s.mu.Lock()
	for _, j := range s.jobs {
		if !j.done {
			j.cancel()
		}
	}
	for _, cancel := range s.following {
		cancel()
	}
	s.mu.Unlock()
	wg.Wait()
	return ctx.Err()
}

func (s *Supervisor) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// RunningJobs lists the jobs in flight (reported in the hello).
func (s *Supervisor) RunningJobs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []int64
	for id, j := range s.jobs {
		if !j.done {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Accounted returns the jobs in flight and then the jobs whose results are
// not acknowledged, for the hello. A job ending meanwhile is in at least
// one list: its result is stored before it stops counting as running.
func (s *Supervisor) Accounted() (running, results []int64) {
	running = s.RunningJobs()
	return running, s.results.ids()
}

// Redirect maps a host port that was just retired by a cut-over to the
// port of its successor, so local zone routing switches at once, before
// the routing table polled from the control plane shows the new port.
func (s *Supervisor) Redirect(port int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < 8; i++ { // follow a chain of quick redeploys
		r, ok := s.redirects[port]
		if !ok || time.Now().After(r.until) {
			return port
		}
		port = r.to
	}
	return port
}

// HandleDesired replaces the desired state (level-triggered).
func (s *Supervisor) HandleDesired(ctx context.Context, p json.RawMessage) error {
	var ds wsproto.DesiredState
	if err := json.Unmarshal(p, &ds); err != nil {
		return fmt.Errorf("decoding desired state: %w", err)
	}
	s.SetDesired(ds)
	return nil
}

// SetDesired installs a desired state and wakes the reconciler. An app
// with a job in flight keeps the supervisor's view (the job's result
// decides it), and so does an app whose newer deployment this agent put
// live and the control plane has not recorded yet: a desired state naming
// an older deployment (or none) never replaces a newer running one. The
// agent reports what it runs and the control plane adopts it.
func (s *Supervisor) SetDesired(ds wsproto.DesiredState) {
	m := make(map[unit]wsproto.DesiredApp, len(ds.Apps))
	for _, a := range ds.Apps {
		m[unitOf(a)] = a
	}
	s.mu.Lock()
	for u, cur := range s.desired {
		if _, busy := s.busy[u.app]; busy {
			m[u] = cur
		}
	}
	for u, cur := range s.desired {
		want, ok := m[u]
		switch {
		case ok && want.DeploymentID < cur.DeploymentID:
			if want.Env != nil {
				cur.Env = want.Env
			}
			m[u] = cur
		case !ok && s.results.pendingDeployment(u.app, cur.DeploymentID):
			m[u] = cur
		}
	}
	s.desired, s.haveDesired = m, true
	s.mu.Unlock()
	s.wake()
}

// Desired returns a copy of the desired state of each app's first
// instance, by app.
func (s *Supervisor) Desired() map[int64]wsproto.DesiredApp {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]wsproto.DesiredApp{}
	for u, d := range s.desired {
		if u.slot == 0 {
			out[u.app] = d
		}
	}
	return out
}

// Instances returns a copy of the desired state: every app instance.
func (s *Supervisor) Instances() []wsproto.DesiredApp {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.desired))
	slices.SortFunc(out, func(a, b wsproto.DesiredApp) int {
		if a.AppID != b.AppID {
			return int(a.AppID - b.AppID)
		}
		return a.Slot - b.Slot
	})
	return out
}

// HandleJob takes a job.assign. A job id seen before is acknowledged again
// and not run twice. Jobs of one app run one at a time, in the order they
// arrive: the app is marked busy here, before the job's goroutine starts,
// and the goroutine waits for the app's slot.
func (s *Supervisor) HandleJob(ctx context.Context, p json.RawMessage) error {
	var j wsproto.JobAssign
	if err := json.Unmarshal(p, &j); err != nil {
		return fmt.Errorf("decoding job: %w", err)
	}
	s.mu.Lock()
	_, seen := s.jobs[j.JobID]
	var jctx context.Context
	var cancel context.CancelFunc
	var slot chan struct{}
	if !seen {
		timeout := time.Duration(j.TimeoutS) * time.Second
		if timeout <= 0 {
			timeout = 30 * time.Minute
		}
		jctx, cancel = context.WithTimeout(context.Background(), timeout)
		s.jobs[j.JobID] = &jobRun{cancel: cancel, at: time.Now()}
		// Scheduled runs and volume removals run beside the app's jobs:
		// they neither hold the app's slot nor wait for it.
		if j.AppID != 0 && j.Kind != wsproto.JobCron && j.Kind != wsproto.JobVolumeRemove {
			s.busy[j.AppID] = j.JobID
			if slot = s.appSlots[j.AppID]; slot == nil {
				slot = make(chan struct{}, 1)
				s.appSlots[j.AppID] = slot
			}
		}
		// Forget old job ids (a redelivery comes within minutes).
		for id, jr := range s.jobs {
			if jr.done && time.Since(jr.at) > time.Hour && !s.results.has(id) {
				delete(s.jobs, id)
			}
		}
	}
	s.mu.Unlock()
	if err := s.cfg.Send(ctx, wsproto.TypeJobAck, wsproto.JobAck{JobID: j.JobID}); err != nil {
		s.cfg.Logger.Warn("supervisor: ack", zap.Int64("job", j.JobID), zap.Error(err))
	}
	if seen {
		return nil
	}
	go s.runJob(jctx, cancel, slot, j)
	return nil
}

// HandleCancel stops a running job; its result reports the failure.
func (s *Supervisor) HandleCancel(ctx context.Context, p json.RawMessage) error {
	var c wsproto.JobCancel
	if err := json.Unmarshal(p, &c); err != nil {
		return fmt.Errorf("decoding cancel: %w", err)
	}
	s.mu.Lock()
	jr := s.jobs[c.JobID]
	if jr == nil {
		// Cancelled before its assignment arrived (or after a restart of
		// this agent): remember the id so a late job.assign is only
		// acknowledged, and end the job.
		s.jobs[c.JobID] = &jobRun{cancel: func() {}, done: true, at: time.Now()}
	}
	s.mu.Unlock()
	if jr == nil {
		s.finish(storedResult{Result: wsproto.JobResult{JobID: c.JobID, Error: "cancelled before it started"}})
		return nil
	}
	if !jr.done {
		jr.cancel()
	}
	return nil
}

// HandleResultAck forgets a result the control plane committed.
func (s *Supervisor) HandleResultAck(ctx context.Context, p json.RawMessage) error {
	var a wsproto.JobResultAck
	if err := json.Unmarshal(p, &a); err != nil {
		return fmt.Errorf("decoding result ack: %w", err)
	}
	if sr, ok := s.results.get(a.JobID); ok && sr.AppID != 0 && sr.DeploymentID != 0 && sr.Result.OK {
		s.mu.Lock()
		s.acked[sr.AppID] = time.Now()
		s.mu.Unlock()
	}
	s.results.ack(a.JobID)
	s.resetRetry()
	return nil
}

// ResendResults sends every unacknowledged result now (after a
// reconnect); the pause after a refusal starts over.
func (s *Supervisor) ResendResults() {
	s.resetRetry()
	s.kickResend()
}

// RetryResults sends the unacknowledged results again after a pause: the
// control plane could not record one (its database failed). Refusals that
// arrive while a resend is scheduled join it; each resend after a refusal
// doubles the pause, up to ResultRetryMax, so a control plane that keeps
// refusing gets a bounded rate of resends, and one that recovers gets the
// results within ResultRetryMax (an acknowledgement starts over).
func (s *Supervisor) RetryResults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retryTimer != nil {
		return
	}
	d := s.retryDelay
	if d < s.cfg.ResultRetryMin {
		d = s.cfg.ResultRetryMin
	}
	s.retryDelay = min(2*d, s.cfg.ResultRetryMax)
	// Equal jitter: between half the pause and the whole of it, so agents
	// refused together do not come back together.
	d = d/2 + rand.N(d/2+1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		if s.retryTimer == t {
			s.retryTimer = nil
		}
		s.mu.Unlock()
		s.kickResend()
	})
	s.retryTimer = t
}

// resetRetry makes the next refusal pause for ResultRetryMin again.
func (s *Supervisor) resetRetry() {
	s.mu.Lock()
	s.retryDelay = 0
	s.mu.Unlock()
}

func (s *Supervisor) kickResend() {
	select {
	case s.resend <- struct{}{}:
	default:
	}
}

// finish stores a result durably and sends it; it is sent again until the
// control plane acknowledges it, however long that takes.
func (s *Supervisor) finish(sr storedResult) {
	if err := s.results.put(sr); err != nil {
		s.cfg.Logger.Error("supervisor: storing a job result; sending it without a copy on disk", zap.Int64("job", sr.Result.JobID), zap.Error(err))
	}
	s.cfg.Logger.Info("supervisor: job ended", zap.Int64("job", sr.Result.JobID), zap.Bool("ok", sr.Result.OK))
	sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
	defer c()
	if err := s.cfg.Send(sctx, wsproto.TypeJobResult, sr.Result); err != nil {
		s.cfg.Logger.Debug("supervisor: result not sent now; sent again after the reconnect", zap.Int64("job", sr.Result.JobID), zap.Error(err))
	}
}

// resultLoop sends the unacknowledged results again: after every
// reconnect (ResendResults) and every ResultResend while some wait.
func (s *Supervisor) resultLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ResultResend)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.resend:
		}
		for _, sr := range s.results.list() {
			sctx, c := context.WithTimeout(ctx, 10*time.Second)
			err := s.cfg.Send(sctx, wsproto.TypeJobResult, sr.Result)
			c()
			if err != nil {
				break // not connected: the reconnect sends them
			}
		}
	}
}

func (s *Supervisor) progress(ctx context.Context, j wsproto.JobAssign, stage, msg string, pct int) {
	if err := s.cfg.Send(ctx, wsproto.TypeJobProgress, wsproto.JobProgress{JobID: j.JobID, Stage: stage, Message: msg, Percent: pct}); err != nil {
		s.cfg.Logger.Debug("supervisor: progress not sent", zap.Error(err))
	}
}

func (s *Supervisor) runJob(ctx context.Context, cancel context.CancelFunc, slot chan struct{}, j wsproto.JobAssign) {
	defer cancel()
	var out any
	var cronOut *wsproto.CronOutput // a run's outcome, sent even when it failed
	var err error
	if slot != nil {
		select {
		case slot <- struct{}{}:
			defer func() {
				<-slot
				// Whatever the job did (a deploy's new image, a failed
				// one's leftovers, a removed container), the app's images
				// are pruned now that it no longer holds the app.
				s.prune(j.AppID)
			}()
		case <-ctx.Done():
			err = fmt.Errorf("waiting for the app's previous job: %w", ctx.Err())
		}
	}
	if err == nil {
		switch j.Kind {
		case wsproto.JobDeploy, wsproto.JobRollback:
			out, err = s.deploy(ctx, j)
		case wsproto.JobStop:
			err = s.stopApp(ctx, j.AppID, false)
		case wsproto.JobDelete:
			err = s.stopApp(ctx, j.AppID, true)
		case wsproto.JobRestart:
			err = s.restartApp(ctx, j)
		case wsproto.JobCron:
			var co *wsproto.CronOutput
			co, err = s.cronRun(ctx, j)
			if co != nil {
				cronOut = co
			}
		case wsproto.JobVolumeRemove:
			err = s.removeVolumes(ctx, j)
		default:
			err = fmt.Errorf("unknown job kind %q", j.Kind)
		}
	}
	res := wsproto.JobResult{JobID: j.JobID, OK: err == nil}
	if err != nil {
		res.Error = err.Error()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.Error = "timed out: " + res.Error
		}
	} else if out != nil {
		res.Output, _ = json.Marshal(out)
	}
	if cronOut != nil {
		res.Output, _ = json.Marshal(cronOut)
	}
	s.logs.flush(context.Background())
	s.finish(storedResult{Result: res, AppID: j.AppID, DeploymentID: j.DeploymentID})
	s.mu.Lock()
	if s.busy[j.AppID] == j.JobID {
		delete(s.busy, j.AppID)
	}
	if jr := s.jobs[j.JobID]; jr != nil {
		jr.done, jr.at = true, time.Now()
	}
	s.mu.Unlock()
	s.wake()
}

var slugRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (s *Supervisor) deploy(ctx context.Context, j wsproto.JobAssign) (_ *wsproto.DeployOutput, err error) {
	var builtImg string
	defer func() {
		if err != nil && builtImg != "" { // an image of a failed deployment is no rollback target
			s.rt.RemoveImage(context.Background(), builtImg)
		}
	}()
	var p wsproto.DeployPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return nil, fmt.Errorf("decoding deploy payload: %w", err)
	}
	if !slugRe.MatchString(p.Slug) || j.AppID <= 0 || j.DeploymentID <= 0 {
		return nil, fmt.Errorf("invalid deploy job (slug %q, app %d, deployment %d)", p.Slug, j.AppID, j.DeploymentID)
	}
	// The deployment already runs here (this job ran before and its result
	// was lost with the agent): it is checked, not built and started again.
	if p.Slot < 0 {
		return nil, fmt.Errorf("invalid instance slot %d", p.Slot)
	}
	u := unit{j.AppID, p.Slot}
	if c, ok := s.runningDeployment(ctx, u, j.DeploymentID); ok {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.waitHealthy(hctx, c, p.HealthPath)
		cancel()
		if err == nil {
			s.progress(ctx, j, "health", fmt.Sprintf("deployment %d already runs on port %d", j.DeploymentID, c.HostPort), 75)
			return s.switchTo(ctx, j, p, c, c.Image, c.Port, ""), nil
		}
	}
	img, port, commit := p.Image, p.Port, p.Commit
	if img != "" {
		ok, err := s.rt.ImageExists(ctx, img)
		if err != nil {
			return nil, err
		}
		if !ok {
			if p.GitURL == "" && p.Pull == "" {
				return nil, fmt.Errorf("image %s is no longer on this worker; redeploy from source", img)
			}
			img = ""
		} else {
			s.progress(ctx, j, "build", "reusing image "+img+" (no rebuild)", 40)
		}
	}
	if img == "" && p.Pull != "" {
		pulled, err := s.pull(ctx, j, p)
		if err != nil {
			return nil, err
		}
		img, builtImg = pulled, pulled
	}
	if img == "" {
		built, detected, c, err := s.build(ctx, j, p)
		if err != nil {
			return nil, err
		}
		img, commit, builtImg = built, c, built
		if port == 0 {
			port = detected
		}
	}
	if port == 0 {
		port = 8080
	}
	if p.StopFirst {
		// The roll may take this instance down before its successor is
		// up: the control plane took it out of routing; the proxies poll,
		// so it stops after a third of the drain delay.
		s.progress(ctx, j, "start", "stopping the instance's old container first", 55)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.cfg.DrainDelay / 3):
		}
		if err := s.stopUnit(ctx, u); err != nil {
			return nil, err
		}
	}
	spec := runtime.RunSpec{AppID: j.AppID, TeamID: p.TeamID, DeploymentID: j.DeploymentID, Slot: p.Slot, Slug: p.Slug, Image: img, Port: port,
		CPUMillis: p.CPUMillis, MemoryMB: p.MemoryMB, DiskMB: p.DiskMB, Env: p.Env, DiskQuota: s.cfg.DiskQuota.Enforced(),
		Volumes: runtimeVolumes(p.Volumes)}
	msg := "starting container"
	if p.StartCommand != "" {
		if err := frameworks.CheckCommand(p.StartCommand); err != nil {
			return nil, fmt.Errorf("start command: %w", err)
		}
		spec.Command = frameworks.StartArgv(p.StartCommand)
		msg = "starting container with the start command /bin/sh -c " + strconv.Quote(p.StartCommand)
	}
	s.progress(ctx, j, "start", msg, 60)
	c, err := s.rt.Run(ctx, spec)
	if err != nil {
		return nil, err
	}
	if p.BandwidthKbit > 0 {
		if err := s.rt.ShapeContainer(ctx, c.ID, p.BandwidthKbit); err != nil {
			s.rt.Remove(context.Background(), c.ID)
			return nil, fmt.Errorf("applying the bandwidth limit: %w", err)
		}
	}
	s.follow(c, time.Time{})
	s.progress(ctx, j, "health", fmt.Sprintf("waiting for the app on port %d", port), 75)
	if err := s.waitHealthy(ctx, c, p.HealthPath); err != nil {
		s.unfollow(c.ID)
		s.lastOutput(j, c.ID)
		s.rt.Remove(context.Background(), c.ID)
		s.mu.Lock()
		_, hadPrev := s.desired[u]
		s.mu.Unlock()
		if hadPrev {
			return nil, fmt.Errorf("health check failed, the previous deployment keeps running: %w", err)
		}
		return nil, fmt.Errorf("health check failed: %w", err)
	}
	return s.switchTo(ctx, j, p, c, img, port, commit), nil
}

// switchTo makes a healthy container of a deploy job the app's: it becomes
// desired, local routing moves at once, the control plane moves the
// proxies when it records the result, and the app's other containers go
// after the drain delay.
func (s *Supervisor) switchTo(ctx context.Context, j wsproto.JobAssign, p wsproto.DeployPayload, c runtime.Container, img string, port int, commit string) *wsproto.DeployOutput {
	s.progress(ctx, j, "switch", "switching traffic", 90)
	u := unit{j.AppID, p.Slot}
	s.mu.Lock()
	prev, hadPrev := s.desired[u]
	s.desired[u] = wsproto.DesiredApp{AppID: j.AppID, Slot: p.Slot, Slug: p.Slug, TeamID: p.TeamID, DeploymentID: j.DeploymentID, Image: img, Port: port,
		HostPort: c.HostPort, CPUMillis: p.CPUMillis, MemoryMB: p.MemoryMB, Env: p.Env, StartCommand: p.StartCommand,
		HealthPath: p.HealthPath, Volumes: p.Volumes}
	now := time.Now()
	if hadPrev && prev.HostPort != 0 && prev.HostPort != c.HostPort {
		s.redirects[prev.HostPort] = redirect{to: c.HostPort, until: now.Add(10 * time.Minute)}
	}
	ar := s.app(u)
	ar.crashes, ar.crashloop, ar.restarts = nil, false, 0
	ar.reported = reportKey{state: "running", deployment: j.DeploymentID, hostPort: c.HostPort}
	s.mu.Unlock()
	// On disk before the result: a rollback target from now on.
	s.noteLive(j.AppID, j.DeploymentID, img)
	if list, err := s.rt.List(ctx); err == nil {
		s.mu.Lock()
		for _, o := range list {
			if containerUnit(o) == u && o.ID != c.ID {
				if o.HostPort != 0 && o.HostPort != c.HostPort {
					s.redirects[o.HostPort] = redirect{to: c.HostPort, until: now.Add(10 * time.Minute)}
				}
				if _, ok := s.retiring[o.ID]; !ok {
					s.retiring[o.ID] = now.Add(s.cfg.DrainDelay)
				}
			}
		}
		s.mu.Unlock()
	}
	s.progress(ctx, j, "done", fmt.Sprintf("running on port %d", c.HostPort), 100)
	return &wsproto.DeployOutput{Image: img, HostPort: c.HostPort, Port: port, Commit: commit}
}

// runningDeployment finds the running container of a deployment on an
// instance.
func (s *Supervisor) runningDeployment(ctx context.Context, u unit, deploymentID int64) (runtime.Container, bool) {
	list, err := s.rt.List(ctx)
	if err != nil {
		return runtime.Container{}, false
	}
	for _, c := range list {
		if containerUnit(c) == u && c.DeploymentID == deploymentID && c.Running() && c.Image != "" && c.Port > 0 {
			return c, true
		}
	}
	return runtime.Container{}, false
}

// build clones the source, picks the recipe and builds the image; output
// lines go to the deployment's live log.
func (s *Supervisor) build(ctx context.Context, j wsproto.JobAssign, p wsproto.DeployPayload) (img string, port int, commit string, err error) {
	s.progress(ctx, j, "clone", "cloning "+p.GitURL+" ("+p.Branch+")", 5)
	tmp, err := os.MkdirTemp(s.cfg.CloneDir, "wh-src-")
	if err != nil {
		return "", 0, "", err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "src")
	commit, err = build.Clone(ctx, build.Source{URL: p.GitURL, Branch: p.Branch, Commit: p.Commit, Token: p.GitToken, User: p.GitUser}, dir,
		build.Options{AllowLocal: s.cfg.AllowLocalGit, CAFile: s.cfg.GitCAFile})
	if err != nil {
		return "", 0, "", err
	}
	root, err := buildRoot(dir, p.RootDir)
	if err != nil {
		return "", 0, "", err
	}
	var plan *frameworks.Plan
	if p.Dockerfile != "" {
		if err := gitsource.CheckPath(p.Dockerfile); err != nil {
			return "", 0, "", err
		}
		plan = &frameworks.Plan{Framework: frameworks.Dockerfile, Containerfile: p.Dockerfile, OwnFile: true, Port: 8080}
	} else if plan, err = frameworks.Detect(root, p.Framework); err != nil {
		return "", 0, "", err
	}
	if err := plan.SetBuildCommand(p.BuildCommand); err != nil {
		return "", 0, "", err
	}
	dir = root
	s.progress(ctx, j, "build", fmt.Sprintf("building %s (%s)", shortSHA(commit), plan.Framework), 20)
	w := s.logs.writer(j.AppID, j.DeploymentID, "build")
	img = fmt.Sprintf("localhost/wisehosting/%s:d%d", p.Slug, j.DeploymentID)
	spec := runtime.BuildSpec{Dir: dir, Containerfile: plan.Containerfile, OwnFile: plan.OwnFile, Tag: img,
		Labels: map[string]string{runtime.LabelApp: strconv.FormatInt(j.AppID, 10), runtime.LabelDeployment: strconv.FormatInt(j.DeploymentID, 10)}}
	s.building.Add(1)
	_, err = s.rt.Build(ctx, spec, w)
	if err != nil && ctx.Err() == nil && strings.Contains(err.Error(), "not known") {
		// A cached layer vanished under the build (removed by something
		// else on the host): once more, without that cache entry.
		fmt.Fprintf(w, "a cached layer disappeared during the build (%v); building again\n", err)
		_, err = s.rt.Build(ctx, spec, w)
	}
	s.building.Add(-1)
	w.Close()
	if err != nil {
		return "", 0, "", err
	}
	return img, plan.Port, commit, nil
}

// pull fetches the prebuilt image of an image-sourced app with its
// registry login and names it like a built image of the deployment.
func (s *Supervisor) pull(ctx context.Context, j wsproto.JobAssign, p wsproto.DeployPayload) (string, error) {
	if err := imageref.Check(p.Pull); err != nil {
		return "", err
	}
	s.progress(ctx, j, "pull", "pulling "+p.Pull, 10)
	w := s.logs.writer(j.AppID, j.DeploymentID, "build")
	defer w.Close()
	img := fmt.Sprintf("localhost/wisehosting/%s:d%d", p.Slug, j.DeploymentID)
	id, err := s.rt.Pull(ctx, runtime.PullSpec{Ref: p.Pull, User: p.RegistryUser, Password: p.RegistryPassword, Tag: img,
		Labels: map[string]string{runtime.LabelApp: strconv.FormatInt(j.AppID, 10), runtime.LabelDeployment: strconv.FormatInt(j.DeploymentID, 10)}}, w)
	if err != nil {
		fmt.Fprintln(w, err.Error())
		return "", err
	}
	s.progress(ctx, j, "build", fmt.Sprintf("pulled %s (image %s)", p.Pull, shortSHA(id)), 40)
	return img, nil
}

// buildRoot is the checkout's sub-directory rel (validated, and still
// inside the checkout once symbolic links are resolved).
func buildRoot(dir, rel string) (string, error) {
	if rel == "" {
		return dir, nil
	}
	if err := gitsource.CheckPath(rel); err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dir, rel))
	if err != nil {
		return "", fmt.Errorf("the root directory %q is not in the repository", rel)
	}
	top, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() || (real != top && !strings.HasPrefix(real, top+string(filepath.Separator))) {
		return "", fmt.Errorf("the root directory %q is not a directory of the repository", rel)
	}
	return real, nil
}

func shortSHA(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// tailLines is how much of a failed container's output its deployment
// log shows.
const tailLines = 50

// lastOutput copies the last lines a failed new container wrote into its
// deployment's log: why it did not answer is usually there.
func (s *Supervisor) lastOutput(j wsproto.JobAssign, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lines, err := s.rt.Tail(ctx, id, tailLines)
	w := s.logs.writer(j.AppID, j.DeploymentID, "build")
	switch {
	case err != nil:
		fmt.Fprintf(w, "[health] the container's output could not be read: %v\n", err)
	case len(lines) == 0:
		fmt.Fprintln(w, "[health] the container wrote nothing")
	default:
		fmt.Fprintf(w, "[health] the container's last %d lines of output:\n", len(lines))
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
	w.Close()
}

// waitHealthy polls the new container: HTTP when a health path is set
// (any answer below 500 counts), a TCP connect otherwise. A container that
// exits fails at once.
func (s *Supervisor) waitHealthy(ctx context.Context, c runtime.Container, path string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
	defer cancel()
	addr := net.JoinHostPort(s.rt.BindIP(), strconv.Itoa(c.HostPort))
	client := &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var last error
	for i := 0; ; i++ {
		if path != "" {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode < 500 {
					return nil
				}
				err = fmt.Errorf("%s answered %d", path, resp.StatusCode)
			}
			last = err
		} else {
			conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
			if err == nil {
				conn.Close()
				return nil
			}
			last = err
		}
		if i%5 == 4 {
			if st, err := s.rt.Inspect(ctx, c.ID); err == nil && !st.Running() {
				return fmt.Errorf("the container exited (code %d) before answering", st.ExitCode)
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("no healthy answer within %s: %v", s.cfg.HealthTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Supervisor) app(u unit) *appRun {
	a := s.apps[u]
	if a == nil {
		a = &appRun{}
		s.apps[u] = a
	}
	return a
}

// stopUnit removes an instance's containers (a roll that may take it
// down before its successor starts).
func (s *Supervisor) stopUnit(ctx context.Context, u unit) error {
	list, err := s.rt.List(ctx)
	if err != nil {
		return err
	}
	for _, c := range list {
		if containerUnit(c) != u {
			continue
		}
		s.unfollow(c.ID)
		if err := s.rt.Remove(ctx, c.ID); err != nil {
			return err
		}
	}
	return nil
}

func (s *Supervisor) stopApp(ctx context.Context, appID int64, removeImages bool) error {
	s.mu.Lock()
	for u := range s.desired {
		if u.app == appID {
			delete(s.desired, u)
		}
	}
	for u := range s.apps {
		if u.app == appID {
			delete(s.apps, u)
		}
	}
	s.mu.Unlock()
	list, err := s.rt.List(ctx)
	if err != nil {
		return err
	}
	for _, c := range list {
		if c.AppID != appID {
			continue
		}
		s.unfollow(c.ID)
		if err := s.rt.Remove(ctx, c.ID); err != nil {
			return err
		}
	}
	if !removeImages {
		return nil
	}
	// A deleted app has no rollback targets: all its images go.
	if err := s.live.forget(appID); err != nil {
		return fmt.Errorf("forgetting the app's deployments: %w", err)
	}
	imgs, err := s.rt.Images(ctx)
	if err != nil {
		return err
	}
	for _, im := range imgs {
		if im.AppID == appID {
			if err := s.rt.RemoveImageID(ctx, im.ID); err != nil {
				s.cfg.Logger.Warn("supervisor: removing an image of a deleted app", zap.Strings("image", im.Names), zap.Error(err))
			}
		}
	}
	return nil
}

// restartApp restarts every instance of the app on this worker, or the
// one the payload names; that one is then waited for until it answers its
// health check again.
func (s *Supervisor) restartApp(ctx context.Context, j wsproto.JobAssign) error {
	var p wsproto.RestartPayload
	if len(j.Payload) > 0 {
		if err := json.Unmarshal(j.Payload, &p); err != nil {
			return fmt.Errorf("decoding restart payload: %w", err)
		}
	}
	appID := j.AppID
	s.mu.Lock()
	var mine []wsproto.DesiredApp
	for u, d := range s.desired {
		if u.app == appID && (p.Slot == nil || u.slot == *p.Slot) {
			mine = append(mine, d)
		}
	}
	s.mu.Unlock()
	if len(mine) == 0 {
		if p.Slot != nil {
			return fmt.Errorf("instance %d of the app does not run on this worker", *p.Slot+1)
		}
		return errors.New("the app does not run on this worker")
	}
	if p.Drain {
		// The control plane took the instance out of routing; the proxies
		// poll, so it stops after a third of the drain delay.
		s.progress(ctx, j, "restart", "the instance left routing; stopping it shortly", 10)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.cfg.DrainDelay / 3):
		}
	}
	list, err := s.rt.List(ctx)
	if err != nil {
		return err
	}
	for _, d := range mine {
		found := false
		for _, c := range list {
			if containerUnit(c) == unitOf(d) && c.DeploymentID == d.DeploymentID {
				if err := s.rt.Stop(ctx, c.ID); err != nil {
					return err
				}
				s.mu.Lock()
				a := s.app(unitOf(d))
				a.crashes, a.crashloop = nil, false
				s.mu.Unlock()
				if err := s.rt.Start(ctx, c.ID); err != nil {
					return err
				}
				if p.Slot != nil {
					if err := s.waitHealthy(ctx, c, d.HealthPath); err != nil {
						return fmt.Errorf("after the restart: %w", err)
					}
				}
				found = true
				break
			}
		}
		if !found {
			return errors.New("the app's container is missing; it will be recreated")
		}
	}
	return nil
}
