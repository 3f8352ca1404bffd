package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/agent/runtime"
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
	desired := make(map[int64]wsproto.DesiredApp, len(s.desired))
	for k, v := range s.desired {
		desired[k] = v
	}
	busy := make(map[int64]bool, len(s.busy))
	for k := range s.busy {
		busy[k] = true
	}
	s.mu.Unlock()

	byDeployment := map[int64]runtime.Container{}
	for _, c := range list {
		byDeployment[c.DeploymentID] = c
	}
	now := time.Now()
	// Containers nobody wants.
	for _, c := range list {
		if busy[c.AppID] {
			continue
		}
		if d, ok := desired[c.AppID]; ok && d.DeploymentID == c.DeploymentID {
			if c.Running() {
				s.follow(c, now.Add(-s.cfg.ReconcileInterval*2))
			}
			continue
		}
		if !have {
			continue
		}
		s.mu.Lock()
		at, retiring := s.retiring[c.ID]
		if !retiring {
			// Not ours to keep: a deployment that was replaced while the
			// agent was away, or an app that moved or was deleted.
			at = now
			s.retiring[c.ID] = at
		}
		s.mu.Unlock()
		if now.Before(at) {
			continue
		}
		s.unfollow(c.ID)
		if err := s.rt.Remove(ctx, c.ID); err != nil {
			s.cfg.Logger.Warn("supervisor: removing retired container", zap.String("container", c.Name), zap.Error(err))
			continue
		}
		s.mu.Lock()
		delete(s.retiring, c.ID)
		s.mu.Unlock()
		s.cfg.Logger.Info("supervisor: removed container", zap.String("container", c.Name), zap.Int64("deployment", c.DeploymentID))
	}
	if !have {
		return nil
	}
	var errs []error
	for appID, d := range desired {
		if busy[appID] {
			continue
		}
		c, ok := byDeployment[d.DeploymentID]
		switch {
		case !ok:
			errs = append(errs, s.recreate(ctx, d))
		case c.Running():
			s.report(ctx, d, "running", c.HostPort, "")
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

// recreate starts a desired deployment whose container is missing (e.g.
// the host rebooted, or the agent was moved): from its image, on its old
// host port when that is free.
func (s *Supervisor) recreate(ctx context.Context, d wsproto.DesiredApp) error {
	ok, err := s.rt.ImageExists(ctx, d.Image)
	if err != nil {
		return err
	}
	if !ok || d.Image == "" {
		s.report(ctx, d, "stopped", 0, "the image of deployment "+fmt.Sprint(d.DeploymentID)+" is not on this worker; redeploy")
		return nil
	}
	spec := runtime.RunSpec{AppID: d.AppID, DeploymentID: d.DeploymentID, Slug: d.Slug, Image: d.Image, Port: d.Port,
		HostPort: d.HostPort, CPUMillis: d.CPUMillis, MemoryMB: d.MemoryMB, Env: d.Env}
	c, err := s.rt.Run(ctx, spec)
	if err != nil && d.HostPort != 0 {
		spec.HostPort = 0 // the old port is taken: take another one
		c, err = s.rt.Run(ctx, spec)
	}
	if err != nil {
		s.report(ctx, d, "stopped", 0, "cannot start: "+err.Error())
		return err
	}
	s.follow(c, time.Time{})
	s.mu.Lock()
	if cur, ok := s.desired[d.AppID]; ok && cur.DeploymentID == d.DeploymentID {
		cur.HostPort = c.HostPort
		s.desired[d.AppID] = cur
	}
	s.mu.Unlock()
	s.cfg.Logger.Info("supervisor: started missing container", zap.String("slug", d.Slug), zap.Int64("deployment", d.DeploymentID), zap.Int("host_port", c.HostPort))
	s.report(ctx, d, "running", c.HostPort, "container recreated")
	return nil
}

// crashed handles a desired container that is not running.
func (s *Supervisor) crashed(ctx context.Context, d wsproto.DesiredApp, c runtime.Container) {
	now := time.Now()
	s.mu.Lock()
	a := s.app(d.AppID)
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
	s.sendState(ctx, wsproto.AppState{AppID: d.AppID, DeploymentID: d.DeploymentID, State: state, HostPort: c.HostPort, Restarts: restarts, Message: msg})
	if state == "crashloop" {
		return // restarted after the back-off, on a later pass
	}
	if err := s.rt.Start(ctx, c.ID); err != nil {
		s.cfg.Logger.Warn("supervisor: restarting", zap.String("slug", d.Slug), zap.Error(err))
		return
	}
	s.follow(c, time.Now())
}

// report sends an app.state when it differs from the last one sent.
func (s *Supervisor) report(ctx context.Context, d wsproto.DesiredApp, state string, hostPort int, msg string) {
	s.mu.Lock()
	a := s.app(d.AppID)
	changed := a.reported != state
	if state == "running" && a.crashloop {
		// The loop ends when the app stays up long enough for its crashes
		// to leave the window.
		cut := time.Now().Add(-s.cfg.CrashLoopWindow)
		for len(a.crashes) > 0 && a.crashes[0].Before(cut) {
			a.crashes = a.crashes[1:]
		}
		a.crashloop = len(a.crashes) >= s.cfg.CrashLoopCrashes
	}
	a.reported = state
	restarts := a.restarts
	s.mu.Unlock()
	if !changed {
		return
	}
	s.sendState(ctx, wsproto.AppState{AppID: d.AppID, DeploymentID: d.DeploymentID, State: state, HostPort: hostPort, Restarts: restarts, Message: msg})
}

func (s *Supervisor) sendState(ctx context.Context, st wsproto.AppState) {
	s.mu.Lock()
	s.app(st.AppID).reported = st.State
	s.mu.Unlock()
	if err := s.cfg.Send(ctx, wsproto.TypeAppState, st); err != nil {
		// Not delivered: send again on the next pass.
		s.mu.Lock()
		s.app(st.AppID).reported = ""
		s.mu.Unlock()
	}
}

// ResendStates makes the next pass report every app's state again (after
// a reconnect the control plane may have missed some).
func (s *Supervisor) ResendStates() {
	s.mu.Lock()
	for _, a := range s.apps {
		a.reported = ""
	}
	s.mu.Unlock()
	s.wake()
}

// follow ships a running container's output (once per container).
func (s *Supervisor) follow(c runtime.Container, since time.Time) {
	s.mu.Lock()
	if _, ok := s.following[c.ID]; ok {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.following[c.ID] = cancel
	s.mu.Unlock()
	go func() {
		err := s.rt.Follow(ctx, c.ID, since, func(stream, line string) {
			s.logs.add(wsproto.LogLine{AppID: c.AppID, TS: time.Now().UnixNano(), Stream: stream, Line: line})
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

func (s *Supervisor) unfollow(id string) {
	s.mu.Lock()
	cancel := s.following[id]
	delete(s.following, id)
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
	desired := s.Desired()
	byID := map[string]runtime.Container{}
	var ids []string
	for _, c := range list {
		if d, ok := desired[c.AppID]; ok && d.DeploymentID == c.DeploymentID && c.Running() {
			byID[c.ID] = c
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	stats, err := s.rt.Stats(ctx, ids)
	if err != nil {
		return err
	}
	var disk map[string]int64
	if withDisk {
		disk, _ = s.rt.DiskUsage(ctx)
	}
	msg := wsproto.Stats{TS: time.Now().Unix()}
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
