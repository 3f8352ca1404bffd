package cron

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Kinds returns the queue's hooks of scheduled runs (kind cron): the app's
// variables join the payload just before delivery, and a run's end is
// recorded on its run (exit code, duration, log tail), with cron.failed
// when it failed, whether the worker reported it or the control plane
// gave the job up (recovery, a payload that could not be prepared).
func Kinds(kr *secrets.Keyring) jobs.Kinds {
	return jobs.Kinds{wsproto.JobCron: jobs.Hooks{
		Prepare: func(ctx context.Context, pool *pgxpool.Pool, j jobs.Job) (json.RawMessage, error) {
			if j.AppID == 0 {
				return j.Payload, nil
			}
			var p wsproto.CronPayload
			if err := json.Unmarshal(j.Payload, &p); err != nil {
				return nil, fmt.Errorf("decoding payload: %w", err)
			}
			env, err := deploys.LoadEnv(ctx, pool, kr, j.AppID)
			if err != nil {
				return nil, err
			}
			p.Env = env
			return json.Marshal(p)
		},
		Ended: ended,
	}}
}

// ended records a run's end.
func ended(ctx context.Context, tx pgx.Tx, e jobs.End) error {
	r := e.Result
	if r == nil {
		if e.Job.State != "failed" {
			return nil // cancelled: the run shows its job's reason
		}
		r = &wsproto.JobResult{JobID: e.Job.ID, Error: e.Reason}
	}
	f, ok, err := Finish(ctx, tx, e.Job, *r)
	if err != nil || !ok || f.OK {
		return err
	}
	return events.Emit(ctx, tx, events.Event{Kind: events.CronFailed, AppID: f.AppID, Data: map[string]any{
		"cron_job_id": f.CronJobID, "name": f.Name, "run_id": f.RunID, "exit_code": f.ExitCode, "error": f.Error}})
}
