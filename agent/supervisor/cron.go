//go:build remote && containers_image_openpgp

package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/agent/runtime"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// cronTailLines is how many of a run's last output lines go back to the
// control plane.
const cronTailLines = 50

func runtimeVolumes(vs []wsproto.VolumeMount) []runtime.Volume {
	out := make([]runtime.Volume, 0, len(vs))
	for _, v := range vs {
		out = append(out, runtime.Volume{Name: v.Name, Path: v.Path, SizeMB: v.SizeMB})
	}
	return out
}

// cronRun runs a scheduled command in a fresh container of the app's
// image and reports its exit code, duration and last lines. A non-zero
// exit or a timeout fails the job (with the output still reported).
func (s *Supervisor) cronRun(ctx context.Context, j wsproto.JobAssign) (*wsproto.CronOutput, error) {
	var p wsproto.CronPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return nil, fmt.Errorf("decoding the run: %w", err)
	}
	if !slugRe.MatchString(p.Slug) || j.AppID <= 0 || p.RunID <= 0 || p.Image == "" || len(p.Command) == 0 {
		return nil, fmt.Errorf("invalid scheduled run (slug %q, app %d, run %d)", p.Slug, j.AppID, p.RunID)
	}
	if ok, err := s.rt.ImageExists(ctx, p.Image); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("the app's image %s is not on this worker; deploy the app again", p.Image)
	}
	timeout := time.Duration(p.TimeoutS) * time.Second
	res, err := s.rt.RunTask(ctx, runtime.TaskSpec{AppID: j.AppID, TeamID: p.TeamID, RunID: p.RunID, Slug: p.Slug, Image: p.Image,
		Command: p.Command, Env: p.Env, CPUMillis: p.CPUMillis, MemoryMB: p.MemoryMB, Volumes: runtimeVolumes(p.Volumes),
		DiskQuota: s.cfg.DiskQuota.Enforced(), Timeout: timeout, LogLines: cronTailLines})
	out := &wsproto.CronOutput{ExitCode: res.ExitCode, DurationMS: res.Duration.Milliseconds(),
		LogTail: strings.Join(res.Tail, "\n"), TimedOut: res.TimedOut}
	s.cfg.Logger.Info("supervisor: scheduled run ended", zap.String("slug", p.Slug), zap.Int64("run", p.RunID),
		zap.Int("exit_code", res.ExitCode), zap.Duration("duration", res.Duration), zap.Bool("timed_out", res.TimedOut), zap.Error(err))
	switch {
	case err != nil && res.Duration == 0:
		return nil, err
	case err != nil:
		return out, err
	case res.TimedOut:
		return out, fmt.Errorf("timed out after %s", timeout)
	case res.ExitCode != 0:
		return out, fmt.Errorf("exited with code %d", res.ExitCode)
	}
	return out, nil
}

// removeVolumes deletes released volumes whose grace period is over.
func (s *Supervisor) removeVolumes(ctx context.Context, j wsproto.JobAssign) error {
	var p wsproto.VolumeRemovePayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return fmt.Errorf("decoding the volumes: %w", err)
	}
	var errs []error
	for _, name := range p.Names {
		if err := s.rt.RemoveVolume(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
