package deploys

// The deployment lifecycle, top to bottom. A deployment is a row of
// deployments; the job that performs it is a row of the queue (internal/
// jobs), which knows nothing of deployments: it calls the hooks of Kinds
// in the transactions that move the job, so the deployment, its log, the
// app's row and the events change with the job or not at all.
//
//  1. Trigger (deploys.go) writes a queued deployment and enqueues its
//     job; older deploys still queued or building are superseded
//     (supersede): they end superseded, not failed.
//  2. place: before the job is placed, the limits of the team's plan
//     apply (a plan that is not configured fails the deployment).
//  3. prepare: just before each delivery, the app's variables and tokens
//     join the payload (never stored in the queue).
//  4. progress: the worker's stages make the deployment building, then
//     deploying, and go to its build log; the first emits
//     deployment.started.
//  5. ended: the worker's result makes the deployment succeeded (image,
//     commit, app running on its port), failed (the app stays running if
//     an earlier deployment still serves it) or cancelled; stop and delete
//     jobs stop or remove the app. Routing follows, the events are emitted,
//     the app's other instances follow (Lifecycle.Instances) and its
//     volumes are bound to the worker. When the control plane ends the job
//     (recovery gave up, or the payload could not be prepared) the
//     deployment fails with the reason, or is cancelled.
//  6. requeued: recovery put the job back in the queue (its worker went
//     away); the log says why.
//  7. Cancel (a user), Delete (delete.go) and supersede cancel jobs; a
//     queued deployment ends at once, one on a worker ends with the
//     worker's result. Requeue runs a failed job again (an operator).
//  8. ReportAppState (appstate.go): what the worker reports it runs is the
//     truth about containers; a deployment it runs whose result was lost
//     is adopted.
//  9. Instances beyond the first (internal/replicas, which owns the
//     app_instances table and the roll's order) change the deployment and
//     the app only through this package: an instance that runs makes a
//     crashed or failed app running again (InstanceRunning), an instance
//     that fails stops the roll (FailRoll: the deployment fails and its
//     queued jobs are cancelled), and a stop given up because its worker
//     is gone leaves the app stopped (Stopped).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/events"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/plans"
	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Lifecycle is what the queue's hooks of the app kinds need.
type Lifecycle struct {
	// Keyring decrypts the variables and tokens prepare adds.
	Keyring *secrets.Keyring
	// Plans, when set, gives each deploy and rollback the limits of its
	// team's plan before it is placed.
	Plans *plans.Registry
	// Instances, when set, runs after the result of a job of an app was
	// recorded, in its transaction: internal/replicas records an instance
	// beyond the first, continues or stops the deployment's roll, takes
	// a rolling restart to its next instance and sends the other workers
	// their desired state after a stop or delete (replicas.OnResult).
	Instances func(ctx context.Context, tx pgx.Tx, j jobs.Job, workerID int64, ok bool, errMsg string, hostPort int) error
}

// Kinds returns the hooks of the jobs that change an app: deploy,
// rollback, stop, restart and delete.
func (l Lifecycle) Kinds() jobs.Kinds {
	deploy := jobs.Hooks{Prepare: l.prepare, Progress: progress, Ended: l.ended, Requeued: requeued}
	if l.Plans != nil {
		deploy.Place = l.place
	}
	app := jobs.Hooks{Ended: l.ended, Requeued: requeued}
	return jobs.Kinds{wsproto.JobDeploy: deploy, wsproto.JobRollback: deploy,
		wsproto.JobStop: app, wsproto.JobRestart: app, wsproto.JobDelete: app}
}

// place gives a deploy or rollback the limits its app's team's plan
// allows, before it is placed: a limit above the plan's, or not set where
// the plan has one, becomes the plan's (plans.Effective) in the job's
// reservation, in the payload the worker enforces and in the app's row
// (which the desired state sent to a reconnecting worker and the
// reservation of running apps read), with a line in the deployment's log.
// The edges already refuse limits above the plan; this covers what
// changed since the job was enqueued (a downgrade, a requeued job) and
// limits left unset. A job of a team whose plan is not configured fails,
// with its deployment.
func (l Lifecycle) place(ctx context.Context, tx pgx.Tx, j jobs.Job) (jobs.Job, string, error) {
	if j.AppID == 0 {
		return j, "", nil
	}
	var planName string
	var app plans.Limits
	err := tx.QueryRow(ctx, `SELECT COALESCE(t.plan, ''), a.cpu_millis, a.memory_mb, a.disk_mb, a.bandwidth_kbit
		FROM apps a LEFT JOIN teams t ON t.id = a.team_id WHERE a.id = $1`, j.AppID).Scan(&planName, &app.CPUMillis, &app.MemoryMB, &app.DiskMB, &app.BandwidthKbit)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return j, "", err
	}
	plan, ok := l.Plans.Get(planName)
	if !ok {
		msg := fmt.Sprintf("the team is on plan %q, which is not configured (plans: %s)", planName, strings.Join(l.Plans.Names(), ", "))
		if j.DeploymentID != 0 {
			if err := failDeployment(ctx, tx, j.DeploymentID, j.AppID, msg); err != nil {
				return j, "", err
			}
		}
		return j, msg, nil
	}
	var pl map[string]json.RawMessage
	if err := json.Unmarshal(j.Payload, &pl); err != nil {
		return j, "", fmt.Errorf("decoding payload: %w", err)
	}
	var asked wsproto.DeployPayload
	json.Unmarshal(j.Payload, &asked)
	eff, lowered := plan.Effective(plans.Limits{CPUMillis: asked.CPUMillis, MemoryMB: asked.MemoryMB, DiskMB: asked.DiskMB, BandwidthKbit: asked.BandwidthKbit})
	if len(lowered) > 0 {
		for k, v := range map[string]int{"cpu_millis": eff.CPUMillis, "memory_mb": eff.MemoryMB, "disk_mb": eff.DiskMB, "bandwidth_kbit": eff.BandwidthKbit} {
			pl[k] = json.RawMessage(fmt.Sprint(v))
		}
		payload, err := json.Marshal(pl)
		if err != nil {
			return j, "", err
		}
		j.Payload, j.CPUMillis, j.MemoryMB = payload, eff.CPUMillis, eff.MemoryMB
		if err := AppendLog(ctx, tx, j.DeploymentID, StreamSystem,
			fmt.Sprintf("limits set to what plan %q allows: %s", planName, strings.Join(lowered, ", "))); err != nil {
			return j, "", err
		}
	}
	// The app's row, which may differ from the payload (scaled since the
	// job was enqueued), gets the same treatment.
	if a, lowered := plan.Effective(app); len(lowered) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE apps SET cpu_millis = $2, memory_mb = $3, disk_mb = $4, bandwidth_kbit = $5, updated_at = now()
			WHERE id = $1`, j.AppID, a.CPUMillis, a.MemoryMB, a.DiskMB, a.BandwidthKbit); err != nil {
			return j, "", err
		}
	}
	return j, "", nil
}

// prepare adds what the jobs table never stores (variables, the git
// token, the registry login) to a deploy or rollback payload just before
// it is sent over the worker's authenticated channel.
func (l Lifecycle) prepare(ctx context.Context, pool *pgxpool.Pool, j jobs.Job) (json.RawMessage, error) {
	if j.AppID == 0 {
		return j.Payload, nil
	}
	var p wsproto.DeployPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return nil, fmt.Errorf("decoding payload: %w", err)
	}
	env, err := LoadEnv(ctx, pool, l.Keyring, j.AppID)
	if err != nil {
		return nil, err
	}
	p.Env = env
	if p.Pull != "" {
		if p.RegistryUser, p.RegistryPassword, err = RegistryCredentials(ctx, pool, l.Keyring, j.AppID); err != nil {
			return nil, err
		}
	} else if p.GitURL != "" {
		// Also with an image: a worker that lacks it (another instance's
		// worker) builds the same commit.
		if p.GitUser, p.GitToken, err = GitCredentials(ctx, pool, l.Keyring, j.AppID); err != nil {
			return nil, err
		}
	}
	return json.Marshal(p)
}

// progress records a stage the worker reached: the deployment is building
// (clone, build) or deploying, its log gets the line, and its first
// progress emits deployment.started.
func progress(ctx context.Context, tx pgx.Tx, j jobs.Job, p wsproto.JobProgress) error {
	if j.DeploymentID == 0 {
		return nil
	}
	status := "deploying"
	if p.Stage == "clone" || p.Stage == "build" {
		status = "building"
	}
	// prev reads the deployment as it was before this statement's update.
	var first bool
	if err := tx.QueryRow(ctx, `WITH prev AS (SELECT started_at IS NULL AS first FROM deployments WHERE id = $1),
			d AS (UPDATE deployments SET status = $3, started_at = COALESCE(started_at, now()), worker_id = $2
				WHERE id = $1 AND status IN ('queued', 'building', 'deploying') RETURNING id)
		SELECT EXISTS (SELECT 1 FROM d) AND COALESCE((SELECT first FROM prev), false)`,
		j.DeploymentID, j.WorkerID, status).Scan(&first); err != nil {
		return err
	}
	if err := AppendLog(ctx, tx, j.DeploymentID, StreamBuild, truncate("["+p.Stage+"] "+p.Message, 8000)); err != nil {
		return err
	}
	if !first {
		return nil
	}
	return events.Emit(ctx, tx, events.Event{Kind: events.DeploymentStarted, AppID: j.AppID,
		Data: map[string]any{"deployment_id": j.DeploymentID, "stage": p.Stage, "message": p.Message}})
}

// requeued notes in the deployment's log why its job went back to the
// queue.
func requeued(ctx context.Context, tx pgx.Tx, j jobs.Job, reason string) error {
	return AppendLog(ctx, tx, j.DeploymentID, StreamSystem, reason)
}

// ended records how a job of an app ended.
func (l Lifecycle) ended(ctx context.Context, tx pgx.Tx, e jobs.End) error {
	j := e.Job
	if e.Result == nil {
		// The control plane ended the job: recovery gave up on it or
		// cancelled it, its payload could not be prepared, or no worker
		// runs the app it stops or deletes.
		switch j.State {
		case "succeeded":
			if j.Kind == wsproto.JobDelete {
				return RemoveDeleted(ctx, tx, j.AppID)
			}
			return nil
		case "cancelled":
			return endCancelled(ctx, tx, j.DeploymentID, e.Reason)
		}
		if j.DeploymentID == 0 {
			// A restart, stop or delete given up is no deployment's
			// failure.
			return events.Emit(ctx, tx, events.Event{Kind: events.AppStatusChanged, AppID: j.AppID})
		}
		if err := failDeployment(ctx, tx, j.DeploymentID, j.AppID, e.Reason); err != nil {
			return err
		}
		return events.Emit(ctx, tx, events.Event{Kind: events.DeploymentFailed, AppID: j.AppID,
			Data: map[string]any{"job_id": j.ID, "deployment_id": j.DeploymentID, "error": e.Reason}})
	}
	r := *e.Result
	var out wsproto.DeployOutput
	if len(r.Output) > 0 {
		json.Unmarshal(r.Output, &out)
	}
	if err := applyResult(ctx, tx, j, e.WorkerID, r.OK, r.Error, out); err != nil {
		return err
	}
	if err := emitResult(ctx, tx, j, r); err != nil {
		return err
	}
	if l.Instances != nil {
		if err := l.Instances(ctx, tx, j, e.WorkerID, r.OK, r.Error, out.HostPort); err != nil {
			return err
		}
	}
	if r.OK && j.AppID != 0 && (j.Kind == wsproto.JobDeploy || j.Kind == wsproto.JobRollback) {
		// The app's volumes (the instance's copies of per-instance ones)
		// live where it now runs.
		return volumes.Bind(ctx, tx, j.AppID, jobs.PayloadSlot(j.Payload), e.WorkerID)
	}
	return nil
}

// applyResult makes the deployment and the app follow a worker's result.
func applyResult(ctx context.Context, tx pgx.Tx, j jobs.Job, workerID int64, ok bool, errMsg string, out wsproto.DeployOutput) error {
	if ok && j.Kind != wsproto.JobRestart {
		// Routing follows the result on every replica (a new host port, a
		// stopped or deleted app).
		if err := network.NotifyChanged(ctx, tx); err != nil {
			return err
		}
	}
	if (j.Kind == wsproto.JobDeploy || j.Kind == wsproto.JobRollback) && jobs.PayloadSlot(j.Payload) > 0 && j.State != "cancelled" {
		// Instances beyond the first are recorded by Instances; the app's
		// row and the deployment follow its first instance.
		return nil
	}
	if !ok {
		if j.State == "cancelled" {
			return endCancelled(ctx, tx, j.DeploymentID, "stopped on the worker")
		}
		if j.DeploymentID == 0 {
			return nil
		}
		return failDeployment(ctx, tx, j.DeploymentID, j.AppID, errMsg)
	}
	switch j.Kind {
	case wsproto.JobDeploy, wsproto.JobRollback:
		if j.DeploymentID != 0 {
			if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'succeeded', finished_at = now(), worker_id = $2,
				image = CASE WHEN $3 = '' THEN image ELSE $3 END,
				commit_sha = CASE WHEN commit_sha = '' AND $4 ~ '^[0-9a-f]{7,64}$' THEN $4 ELSE commit_sha END
				WHERE id = $1`, j.DeploymentID, workerID, out.Image, out.Commit); err != nil {
				return err
			}
			if err := AppendLog(ctx, tx, j.DeploymentID, StreamSystem, "deployment succeeded"); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE apps SET status = 'running', worker_id = $2,
			host_port = CASE WHEN $3 > 0 THEN $3 ELSE host_port END,
			port = CASE WHEN port = 0 AND $4 > 0 AND $4 <= 65535 THEN $4 ELSE port END, updated_at = now() WHERE id = $1`,
			j.AppID, workerID, out.HostPort, out.Port)
		return err
	case wsproto.JobStop:
		return Stopped(ctx, tx, j.AppID)
	case wsproto.JobDelete:
		return RemoveDeleted(ctx, tx, j.AppID)
	}
	return nil
}

// emitResult records the events of a job's result in the transaction that
// applies it.
func emitResult(ctx context.Context, tx pgx.Tx, j jobs.Job, r wsproto.JobResult) error {
	var evs []events.Event
	switch {
	case r.OK:
		if j.DeploymentID != 0 {
			evs = append(evs, events.Event{Kind: events.DeploymentFinished, AppID: j.AppID,
				Data: map[string]any{"deployment_id": j.DeploymentID, "job_id": j.ID}})
		}
		evs = append(evs, events.Event{Kind: events.AppStatusChanged, AppID: j.AppID})
	case j.State == "cancelled" || j.DeploymentID == 0:
		// A restart, stop or delete that failed is no deployment's failure.
		evs = append(evs, events.Event{Kind: events.AppStatusChanged, AppID: j.AppID})
	default:
		evs = append(evs, events.Event{Kind: events.DeploymentFailed, AppID: j.AppID,
			Data: map[string]any{"deployment_id": j.DeploymentID, "job_id": j.ID, "error": r.Error}})
	}
	for _, e := range evs {
		if err := events.Emit(ctx, tx, e); err != nil {
			return err
		}
	}
	return nil
}

// failDeployment marks a deployment failed. The app is marked failed only
// if no earlier deployment still serves it.
func failDeployment(ctx context.Context, tx pgx.Tx, deploymentID, appID int64, reason string) error {
	if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'failed', error = $2, finished_at = now()
		WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled', 'superseded')`, deploymentID, truncate(reason, 2000)); err != nil {
		return err
	}
	if err := AppendLog(ctx, tx, deploymentID, StreamSystem, "deployment failed: "+reason); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE apps SET status = CASE WHEN status = 'running' THEN 'running' ELSE 'failed' END, updated_at = now()
		WHERE id = $1`, appID)
	return err
}

// endCancelled marks a deployment cancelled (if it has not ended), or
// superseded when a newer deployment of its app replaced its job
// (supersede). The app's status is left alone: whatever served it before
// still does.
func endCancelled(ctx context.Context, tx pgx.Tx, deploymentID int64, reason string) error {
	if deploymentID == 0 {
		return nil
	}
	var status string
	err := tx.QueryRow(ctx, `UPDATE deployments d SET error = $2, finished_at = now(),
			status = CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE deployment_id = d.id AND superseded_by IS NOT NULL)
				THEN 'superseded' ELSE 'cancelled' END
		WHERE id = $1 AND status IN ('queued', 'building', 'deploying') RETURNING status`, deploymentID, truncate(reason, 2000)).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	line := "deployment cancelled: " + reason
	if status == "superseded" {
		line = "deployment " + reason
	}
	return AppendLog(ctx, tx, deploymentID, StreamSystem, line)
}

// Cancel cancels a deployment's job in progress (a user's request): a
// queued deployment ends cancelled at once (Cancelled.Ended); one a worker
// builds or starts is stopped there and ends when the worker reports. A
// deployment with nothing in progress is jobs.ErrNoActiveJob; one whose
// job just ended, jobs.ErrNotCancellable.
func Cancel(ctx context.Context, tx pgx.Tx, deploymentID int64, reason string) (jobs.Cancelled, error) {
	id, err := jobs.ActiveJobOf(ctx, tx, deploymentID)
	if err != nil {
		return jobs.Cancelled{}, err
	}
	return cancelJob(ctx, tx, id, reason)
}

// cancelJob cancels a job of an app (jobs.Cancel) and records it in its
// deployment.
func cancelJob(ctx context.Context, tx pgx.Tx, jobID int64, reason string) (jobs.Cancelled, error) {
	c, err := jobs.Cancel(ctx, tx, jobID, reason)
	if err != nil {
		return c, err
	}
	return c, cancelled(ctx, tx, c, reason)
}

// cancelled records a cancelled job in its deployment.
func cancelled(ctx context.Context, tx pgx.Tx, c jobs.Cancelled, reason string) error {
	if c.Ended {
		return endCancelled(ctx, tx, c.Job.DeploymentID, reason)
	}
	return AppendLog(ctx, tx, c.Job.DeploymentID, StreamSystem, "cancel requested: "+reason)
}

// supersede ends the older deploys of an app that a new deployment
// (byDeployment, whose job is byJob) makes pointless, in tx: queued deploy
// jobs end at once and a deploy still cloning or building on a worker is
// asked to stop. Their deployments end 'superseded' (not failed: no
// failure event). A deploy already starting its container finishes (the
// new one follows it: one job per app at a time). Callers hold the app's
// row lock, so concurrent triggers of one app supersede one another in
// order. It returns the superseded jobs.
func supersede(ctx context.Context, tx pgx.Tx, appID, byDeployment, byJob int64) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT j.id FROM jobs j LEFT JOIN deployments d ON d.id = j.deployment_id
		WHERE j.app_id = $1 AND j.kind = $3 AND j.id < $2 AND j.superseded_by IS NULL
			AND (j.state = 'pending' OR (j.state IN ('assigned', 'running') AND d.status IN ('queued', 'building')))
		ORDER BY j.id FOR UPDATE OF j`, appID, byJob, wsproto.JobDeploy)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	reason := fmt.Sprintf("superseded by deployment %d", byDeployment)
	list, err := jobs.Supersede(ctx, tx, ids, byDeployment, reason)
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if err := cancelled(ctx, tx, c, reason); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// Requeue enqueues a failed or cancelled job again (jobs.Requeue, an
// operator's request); a deployment's job takes its deployment back to
// queued. It returns the new job's id.
func Requeue(ctx context.Context, tx pgx.Tx, jobID int64) (int64, error) {
	old, id, err := jobs.Requeue(ctx, tx, jobID)
	if err != nil || old.DeploymentID == 0 {
		return id, err
	}
	if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'queued', error = '', finished_at = NULL WHERE id = $1`, old.DeploymentID); err != nil {
		return 0, err
	}
	return id, AppendLog(ctx, tx, old.DeploymentID, StreamSystem, fmt.Sprintf("enqueued again by an operator (job %d → %d)", jobID, id))
}

// Stopped records that an app is stopped: its stop job succeeded, or was
// given up because the worker that ran the app is gone (replicas.Forget:
// what ran there is forgotten).
func Stopped(ctx context.Context, tx pgx.Tx, appID int64) error {
	_, err := tx.Exec(ctx, "UPDATE apps SET status = 'stopped', updated_at = now() WHERE id = $1", appID)
	return err
}

// InstanceRunning records that an instance of the app beyond the first
// runs (replicas.OnResult): an app that was crashed, failed or in the
// middle of a deployment is running; a stopped one stays stopped.
func InstanceRunning(ctx context.Context, tx pgx.Tx, appID int64) error {
	_, err := tx.Exec(ctx, `UPDATE apps SET status = 'running', updated_at = now() WHERE id = $1 AND status IN ('crashed', 'failed', 'building', 'deploying')`, appID)
	return err
}

// FailRoll stops the roll of deployment dep across the app's instances
// because one of them failed (replicas.OnResult): the deployment fails
// with reason, its log says the roll stops, and its slot jobs still queued
// are cancelled (jobs.CancelQueued). The app's status is left alone (its
// first instance runs dep), and so are the events: the failed job's
// result already emitted deployment.failed. The caller puts the slots dep
// reached back on the previous deployment.
func FailRoll(ctx context.Context, tx pgx.Tx, dep int64, reason string) error {
	if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'failed', error = $2, finished_at = now() WHERE id = $1`, dep, reason); err != nil {
		return err
	}
	if err := AppendLog(ctx, tx, dep, StreamSystem, "deployment failed, the roll stops: "+reason); err != nil {
		return err
	}
	_, err := jobs.CancelQueued(ctx, tx, dep, "the roll stopped")
	return err
}
