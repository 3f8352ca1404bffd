//go:build remote && containers_image_openpgp

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/agent/runtime"
	"github.com/wisehosting/wisehosting/internal/frameworks"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Reconcile makes the containers match the desired state once:
//   - a desired deployment without a container is started from its image;
//   - a desired container that exited is a crash: reported, and restarted
//     unless the app is in a crash loop (then only after a back-off);
//   - containers of deployments nobody wants any more are removed (after
//     the drain delay for ones just replaced by a cut-over).
//
// Apps with a job in flight are left to the job. Until the first desired
// state arrives after a start, nothing is created or removed: the
// containers found are only watched.
func (s *Supervisor) Reconcile(ctx context.Context) error {
	list, err := s.rt.List(ctx)
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	s.mu.Lock()
	have := s.haveDesired
	desired := make(map[unit]wsproto.DesiredApp, len(s.desired))
	for k, v := range s.desired {
		desired[k] = v
	}
	busy := make(map[int64]bool, len(s.busy))
	for k := range s.busy {
		busy[k] = true
	}
	s.mu.Unlock()

	type depSlot struct {
		dep  int64
		slot int
	}
	byDeployment := map[depSlot]runtime.Container{}
	for _, c := range list {
		byDeployment[depSlot{c.DeploymentID, c.Slot}] = c
	}
	if have {
		desired = s.adoptNewer(list, desired, busy)
	}
	// A container gone since the last pass (removed by a job, a retire, or
	// by hand) may have held an image beyond the retention: it goes now.
	seen := make(map[string]int64, len(list))
	for _, c := range list {
		seen[c.ID] = c.AppID
	}
	for id, app := range s.seen {
		if _, ok := seen[id]; !ok {
			s.prune(app)
		}
	}
	s.seen = seen
	now := time.Now()
	// Containers nobody wants.
	for _, c := range list {
		if busy[c.AppID] {
			continue
		}
		if c.Running() {
			// Every running container's output is shipped, also one that
			// is retiring (after a restart, or while the desired state is
			// not known yet): from where it was shipped up to, or with
			// the spool on disk, from its start.
			since := now.Add(-s.cfg.ReconcileInterval * 2)
			if s.logs.durable() {
				since = time.Time{}
			}
			s.follow(c, since)
		}
		if d, ok := desired[containerUnit(c)]; ok && d.DeploymentID == c.DeploymentID {
			continue
		}
		if !have {
			continue
		}
		if _, ok := desired[containerUnit(c)]; !ok && c.Running() && s.results.pendingDeployment(c.AppID, c.DeploymentID) {
			continue // live, and its result is not recorded yet
		}
		s.mu.Lock()
		at, retiring := s.retiring[c.ID]
		if !retiring {
			// Not ours to keep: a deployment that was replaced while the
			// agent was away (or before it restarted: routing may still
			// point here for a moment), or an app that moved or was
			// deleted.
			at = now.Add(s.cfg.DrainDelay)
			s.retiring[c.ID] = at
		}
		// Routing moves to an app's new container only when the control
		// plane records the deploy's result: until then, and for the drain
		// delay after the acknowledgement, the old container keeps serving.
		if acked, ok := s.acked[c.AppID]; ok && at.Before(acked.Add(s.cfg.DrainDelay)) {
			at = acked.Add(s.cfg.DrainDelay)
		}
		s.mu.Unlock()
		if now.Before(at) || s.results.pendingApp(c.AppID) {
			continue
		}
		s.retire(ctx, c)
	}
	if !have {
		return nil
	}
	var errs []error
	probes := map[unit]runtime.Container{}
	for u, d := range desired {
		if c, ok := byDeployment[depSlot{d.DeploymentID, d.Slot}]; ok && !busy[u.app] && c.Running() {
			probes[u] = c
		}
	}
	healthy := s.probeAll(ctx, desired, probes)
	for u, d := range desired {
		if busy[u.app] {
			continue
		}
		c, ok := byDeployment[depSlot{d.DeploymentID, d.Slot}]
		switch {
		case !ok:
			errs = append(errs, s.recreate(ctx, d))
		case c.Running() && !healthy[u]:
			s.report(ctx, d, "unhealthy", c.HostPort, c.Image, "failing its health check")
		case c.Running():
			s.noteLive(d.AppID, d.DeploymentID, c.Image)
			s.report(ctx, d, "running", c.HostPort, c.Image, "")
		default:
			s.crashed(ctx, d, c)
		}
	}
	// Forget redirects that expired.
	s.mu.Lock()
	for p, r := range s.redirects {
		if now.After(r.until) {
			delete(s.redirects, p)
		}
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// unhealthyAfter is how many health probes in a row a running instance
// fails before it is reported unhealthy (one probe per reconcile pass).
const unhealthyAfter = 2

// probeAll probes the running desired containers at once and returns
// which instances count as healthy: the ones that answered, and the ones
// that failed fewer than unhealthyAfter probes in a row.
func (s *Supervisor) probeAll(ctx context.Context, desired map[unit]wsproto.DesiredApp, running map[unit]runtime.Container) map[unit]bool {
	type result struct {
		u  unit
		ok bool
	}
	out := make(chan result, len(running))
	sem := make(chan struct{}, 8)
	for u, c := range running {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out <- result{u, s.probe(ctx, c, desired[u].HealthPath) == nil}
		}()
	}
	healthy := make(map[unit]bool, len(running))
	for range running {
		r := <-out
		s.mu.Lock()
		a := s.app(r.u)
		if r.ok {
			a.failedProbes = 0
		} else {
			a.failedProbes++
		}
		healthy[r.u] = a.failedProbes < unhealthyAfter
		s.mu.Unlock()
	}
	return healthy
}

// probe checks a running container once: HTTP on path (any answer below
// 500), or a TCP connect when path is "".
func (s *Supervisor) probe(ctx context.Context, c runtime.Container, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addr := net.JoinHostPort(s.rt.BindIP(), strconv.Itoa(c.HostPort))
	if path == "" {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%s answered %d", path, resp.StatusCode)
	}
	return nil
}

var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// recreate starts a desired deployment whose container is missing (e.g.
// the host rebooted, or the agent was moved): from its image, on its old
// host port when that is free.
func (s *Supervisor) recreate(ctx context.Context, d wsproto.DesiredApp) error {
	ok, err := s.rt.ImageExists(ctx, d.Image)
	if err != nil {
		return err
	}
	if !ok || d.Image == "" {
		s.report(ctx, d, "stopped", 0, "", "the image of deployment "+fmt.Sprint(d.DeploymentID)+" is not on this worker; redeploy")
		return nil
	}
	spec := runtime.RunSpec{AppID: d.AppID, TeamID: d.TeamID, DeploymentID: d.DeploymentID, Slot: d.Slot, Slug: d.Slug, Image: d.Image, Port: d.Port,
		HostPort: d.HostPort, CPUMillis: d.CPUMillis, MemoryMB: d.MemoryMB, Env: d.Env, Volumes: runtimeVolumes(d.Volumes),
		DiskQuota: s.cfg.DiskQuota.Enforced()}
	if d.StartCommand != "" {
		if err := frameworks.CheckCommand(d.StartCommand); err != nil {
			s.report(ctx, d, "stopped", 0, "", "start command: "+err.Error())
			return err
		}
		spec.Command = frameworks.StartArgv(d.StartCommand)
	}
	c, err := s.rt.Run(ctx, spec)
	if err != nil && d.HostPort != 0 {
		spec.HostPort = 0 // the old port is taken: take another one
		c, err = s.rt.Run(ctx, spec)
	}
	if err != nil {
		s.report(ctx, d, "stopped", 0, "", "cannot start: "+err.Error())
		return err
	}
	s.follow(c, time.Time{})
	s.mu.Lock()
	if cur, ok := s.desired[unitOf(d)]; ok && cur.DeploymentID == d.DeploymentID {
		cur.HostPort = c.HostPort
		s.desired[unitOf(d)] = cur
	}
	s.mu.Unlock()
	s.cfg.Logger.Info("supervisor: started missing container", zap.String("slug", d.Slug), zap.Int64("deployment", d.DeploymentID), zap.Int("host_port", c.HostPort))
	s.report(ctx, d, "running", c.HostPort, c.Image, "container recreated")
	return nil
}

// crashed handles a desired container that is not running.
func (s *Supervisor) crashed(ctx context.Context, d wsproto.DesiredApp, c runtime.Container) {
	now := time.Now()
	s.mu.Lock()
	a := s.app(unitOf(d))
	if a.crashloop && now.Before(a.nextTry) {
		s.mu.Unlock()
		return
	}
	// A crash is counted once per exit (FinishedAt identifies it).
	if len(a.crashes) == 0 || !a.crashes[len(a.crashes)-1].Equal(c.FinishedAt) {
		a.crashes = append(a.crashes, c.FinishedAt)
		a.restarts++
	}
	cut := now.Add(-s.cfg.CrashLoopWindow)
	kept := a.crashes[:0]
	for _, t := range a.crashes {
		if t.After(cut) || t.IsZero() {
			kept = append(kept, t)
		}
	}
	a.crashes = kept
	state := "crashed"
	if len(a.crashes) >= s.cfg.CrashLoopCrashes {
		state = "crashloop"
		// Back-off doubles per crash beyond the threshold, up to the window.
		n := len(a.crashes) - s.cfg.CrashLoopCrashes
		backoff := min(time.Duration(1<<min(n, 10))*10*time.Second, s.cfg.CrashLoopWindow)
		a.crashloop, a.nextTry = true, now.Add(backoff)
	}
	restarts := a.restarts
	s.mu.Unlock()
	msg := fmt.Sprintf("exited with code %d", c.ExitCode)
	s.cfg.Logger.Warn("supervisor: app crashed", zap.String("slug", d.Slug), zap.Int("exit_code", c.ExitCode), zap.String("state", state), zap.Int("restarts", restarts))
	s.sendState(ctx, wsproto.AppState{AppID: d.AppID, Slot: d.Slot, DeploymentID: d.DeploymentID, State: state, HostPort: c.HostPort, Restarts: restarts, Message: msg})
	if state == "crashloop" {
		return // restarted after the back-off, on a later pass
	}
	// Follow from before the start: what the app prints at once must not
	// fall before the start of the log stream.
	started := time.Now()
	if err := s.rt.Start(ctx, c.ID); err != nil {
		s.cfg.Logger.Warn("supervisor: restarting", zap.String("slug", d.Slug), zap.Error(err))
		return
	}
	s.follow(c, started)
}

// report sends an app.state when it differs from the last one sent: in
// its state word, its deployment or its host port (routing follows the
// port).
func (s *Supervisor) report(ctx context.Context, d wsproto.DesiredApp, state string, hostPort int, image, msg string) {
	key := reportKey{state: state, deployment: d.DeploymentID, hostPort: hostPort}
	s.mu.Lock()
	a := s.app(unitOf(d))
	changed := a.reported != key
	if state == "running" && a.crashloop {
		// The loop ends when the app stays up long enough for its crashes
		// to leave the window.
		cut := time.Now().Add(-s.cfg.CrashLoopWindow)
		for len(a.crashes) > 0 && a.crashes[0].Before(cut) {
			a.crashes = a.crashes[1:]
		}
		a.crashloop = len(a.crashes) >= s.cfg.CrashLoopCrashes
	}
	restarts := a.restarts
	s.mu.Unlock()
	if !changed {
		return
	}
	s.sendState(ctx, wsproto.AppState{AppID: d.AppID, Slot: d.Slot, DeploymentID: d.DeploymentID, State: state, HostPort: hostPort, Image: image, Restarts: restarts, Message: msg})
}

// adoptNewer makes a running container of a newer deployment than the
// desired one the desired container of its app: deployment ids only grow,
// so the control plane has just not recorded it yet (its result was lost,
// or this agent restarted before sending it). The agent keeps it and
// reports it; it never goes back to the older deployment. It returns the
// updated copy of the desired state.
func (s *Supervisor) adoptNewer(list []runtime.Container, desired map[unit]wsproto.DesiredApp, busy map[int64]bool) map[unit]wsproto.DesiredApp {
	for _, c := range list {
		u := containerUnit(c)
		d, ok := desired[u]
		if !ok || busy[c.AppID] || !c.Running() || c.DeploymentID <= d.DeploymentID || c.Image == "" {
			continue
		}
		s.cfg.Logger.Info("supervisor: keeping a newer deployment than the desired one", zap.String("slug", d.Slug),
			zap.Int64("running", c.DeploymentID), zap.Int64("desired", d.DeploymentID))
		d.DeploymentID, d.Image, d.HostPort = c.DeploymentID, c.Image, c.HostPort
		if c.Port > 0 {
			d.Port = c.Port
		}
		desired[u] = d
		s.mu.Lock()
		if cur, ok := s.desired[u]; ok && cur.DeploymentID < c.DeploymentID {
			s.desired[u] = d
		}
		// The older containers may still be routed to until the control
		// plane adopts this one: they go after the drain delay.
		for _, o := range list {
			if containerUnit(o) == u && o.ID != c.ID {
				if _, ok := s.retiring[o.ID]; !ok {
					s.retiring[o.ID] = time.Now().Add(s.cfg.DrainDelay)
				}
			}
		}
		s.mu.Unlock()
	}
	return desired
}

func (s *Supervisor) sendState(ctx context.Context, st wsproto.AppState) {
	s.mu.Lock()
	s.app(unit{st.AppID, st.Slot}).reported = reportKey{state: st.State, deployment: st.DeploymentID, hostPort: st.HostPort}
	s.mu.Unlock()
	if err := s.cfg.Send(ctx, wsproto.TypeAppState, st); err != nil {
		// Not delivered: send again on the next pass.
		s.mu.Lock()
		s.app(unit{st.AppID, st.Slot}).reported = reportKey{}
		s.mu.Unlock()
	}
}

// ResendStates makes the next pass report every app's state again (after
// a reconnect the control plane may have missed some).
func (s *Supervisor) ResendStates() {
	s.mu.Lock()
	for _, a := range s.apps {
		a.reported = reportKey{}
	}
	s.mu.Unlock()
	s.wake()
}

// follow ships a running container's output (one reader per container
// at a time: a new one starts only after the last one ended, so lines
// reach the shipper in the order of the container's log).
func (s *Supervisor) follow(c runtime.Container, since time.Time) {
	s.mu.Lock()
	if _, ok := s.following[c.ID]; ok {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.following[c.ID] = cancel
	s.mu.Unlock()
	// Where the lines of this container were shipped up to (also by an
	// earlier agent process): the log is read again from just before
	// that time, and the lines the cursor counts are skipped.
	at, resumed := s.logs.resumeAt(c.ID)
	r := resume{at: at}
	if resumed {
		since = time.Unix(0, at.TS-1)
	}
	go func() {
		err := s.rt.Follow(ctx, c.ID, since, func(stream, line string, at time.Time) {
			if resumed && r.shipped(at.UnixNano()) {
				return
			}
			s.logs.addFrom(c.ID, wsproto.LogLine{AppID: c.AppID, TS: at.UnixNano(), Stream: stream, Line: line})
		})
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Debug("supervisor: log stream ended", zap.String("container", c.Name), zap.Error(err))
		}
		s.mu.Lock()
		delete(s.following, c.ID)
		s.mu.Unlock()
		cancel()
	}()
}

// retire removes a container nobody wants any more, in the background (a
// stop may take the app's whole stop timeout; other containers and the
// rest of the pass do not wait for it). The container is stopped first and
// its log stream read to the end, so the app's last lines are shipped;
// then it is removed and its app's old images are pruned.
func (s *Supervisor) retire(ctx context.Context, c runtime.Container) {
	s.mu.Lock()
	if s.removing[c.ID] {
		s.mu.Unlock()
		return
	}
	s.removing[c.ID] = true
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.removing, c.ID)
			s.mu.Unlock()
		}()
		if err := s.rt.Stop(ctx, c.ID); err == nil {
			s.drainFollow(c.ID, 15*time.Second)
		}
		s.unfollow(c.ID)
		if err := s.rt.Remove(ctx, c.ID); err != nil {
			s.cfg.Logger.Warn("supervisor: removing retired container", zap.String("container", c.Name), zap.Error(err))
			return
		}
		s.mu.Lock()
		delete(s.retiring, c.ID)
		s.mu.Unlock()
		s.logs.forgetCursor(c.ID)
		s.cfg.Logger.Info("supervisor: removed container", zap.String("container", c.Name), zap.Int64("deployment", c.DeploymentID))
		// Its image was kept while it ran; beyond the retention it goes now.
		s.prune(c.AppID)
	}()
}

// drainFollow waits up to d for the log stream of a stopped container to
// reach its end.
func (s *Supervisor) drainFollow(id string, d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s.mu.Lock()
		_, ok := s.following[id]
		s.mu.Unlock()
		if !ok {
			return
		}
	}
}

// unfollow stops reading a container's output.
func (s *Supervisor) unfollow(id string) {
	s.mu.Lock()
	cancel := s.following[id] // its reader removes it when it has ended
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// statsLoop reports every running app's resource use.
func (s *Supervisor) statsLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.StatsInterval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.SendStats(ctx, i%4 == 0); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Debug("supervisor: stats", zap.Error(err))
		}
	}
}

// SendStats samples the desired, running containers and sends one stats
// message; withDisk adds the size of their writable layers (slower).
func (s *Supervisor) SendStats(ctx context.Context, withDisk bool) error {
	list, err := s.rt.List(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	desired := maps.Clone(s.desired)
	s.mu.Unlock()
	byID := map[string]runtime.Container{}
	var ids []string
	for _, c := range list {
		if d, ok := desired[containerUnit(c)]; ok && d.DeploymentID == c.DeploymentID && c.Running() {
			byID[c.ID] = c
			ids = append(ids, c.ID)
		}
	}
	msg := wsproto.Stats{TS: time.Now().Unix()}
	if withDisk {
		if n, err := s.rt.ImagesBytes(ctx); err == nil {
			msg.ImagesBytes, msg.DiskMeasured = n, true
		}
		if used, err := s.rt.VolumeUsage(ctx); err == nil {
			for name, n := range used {
				msg.Volumes = append(msg.Volumes, wsproto.VolumeUsage{Name: name, Bytes: n})
			}
		}
	}
	if len(ids) == 0 {
		if !msg.DiskMeasured && len(msg.Volumes) == 0 {
			return nil
		}
		return s.cfg.Send(ctx, wsproto.TypeStats, msg)
	}
	stats, err := s.rt.Stats(ctx, ids)
	if err != nil {
		return err
	}
	var disk map[string]int64
	if withDisk {
		disk, _ = s.rt.DiskUsage(ctx)
	}
	for _, st := range stats {
		c, ok := byID[st.ContainerID]
		if !ok {
			continue
		}
		msg.Apps = append(msg.Apps, wsproto.AppStats{AppID: c.AppID, CPUPercent: st.CPUPercent, MemBytes: st.MemBytes, MemLimit: st.MemLimit,
			NetRxBytes: st.NetRx, NetTxBytes: st.NetTx, DiskBytes: disk[c.ID]})
	}
	return s.cfg.Send(ctx, wsproto.TypeStats, msg)
}
