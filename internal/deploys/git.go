package deploys

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wisehosting/wisehosting/internal/errs"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/gitsource"
	"github.com/wisehosting/wisehosting/internal/jobs"
	"github.com/wisehosting/wisehosting/internal/network"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Outcome says what a webhook delivery caused.
type Outcome struct {
	Action       string `json:"action"` // deployed, preview_deployed, preview_closed, duplicate, ignored
	Reason       string `json:"reason,omitempty"`
	AppID        int64  `json:"app_id,omitempty"`
	DeploymentID int64  `json:"deployment_id,omitempty"`
	JobID        int64  `json:"job_id,omitempty"`
}

// PreviewPolicy decides whether an app's team may have preview deployments
// (plans). nil allows them.
type PreviewPolicy func(ctx context.Context, q jobs.Querier, teamID int64) error

// DeployPolicy decides, in the transaction that would enqueue it, whether
// a deploy of app may run (e.g. its limits fit its team's plan).
type DeployPolicy func(ctx context.Context, q jobs.Querier, app App) error

// Policy is what HandleEvent asks before it deploys (nil fields allow).
type Policy struct {
	Previews PreviewPolicy
	Deploy   DeployPolicy
}

// HandleEvent applies a verified webhook event to app. Duplicate deliveries
// (same provider delivery id) and repeated commits are ignored, so a
// provider's retries never deploy twice.
func HandleEvent(ctx context.Context, pool *pgxpool.Pool, app App, ev *gitproviders.Event, pol Policy) (Outcome, error) {
	var out Outcome
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		out = Outcome{}
		if ev.DeliveryID != "" {
			tag, err := tx.Exec(ctx, `INSERT INTO git_deliveries (provider, delivery_id, app_id) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, ev.Provider, ev.DeliveryID, app.ID)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				out = Outcome{Action: "duplicate", Reason: "delivery " + ev.DeliveryID + " was already processed"}
				return nil
			}
		}
		switch ev.Kind {
		case gitproviders.EventPush:
			return handlePush(ctx, tx, app, ev, pol, &out)
		case gitproviders.EventPullRequest:
			return handlePR(ctx, tx, app, ev, pol, &out)
		case gitproviders.EventPing:
			out = Outcome{Action: "ignored", Reason: "ping"}
		default:
			out = Outcome{Action: "ignored", Reason: "event not used"}
		}
		return nil
	})
	return out, err
}

func handlePush(ctx context.Context, tx pgx.Tx, app App, ev *gitproviders.Event, pol Policy, out *Outcome) error {
	switch {
	case app.PreviewOf != 0:
		*out = Outcome{Action: "ignored", Reason: "preview apps follow their pull request"}
		return nil
	case !app.AutoDeploy:
		*out = Outcome{Action: "ignored", Reason: "automatic deploys are off for this app"}
		return nil
	case ev.Branch != app.GitBranch:
		*out = Outcome{Action: "ignored", Reason: fmt.Sprintf("push to %q, app tracks %q", ev.Branch, app.GitBranch)}
		return nil
	case ev.Deleted || ev.Commit == "":
		*out = Outcome{Action: "ignored", Reason: "branch deleted"}
		return nil
	}
	dup, err := commitDeployed(ctx, tx, app.ID, ev.Commit)
	if err != nil || dup {
		*out = Outcome{Action: "duplicate", Reason: "commit " + ev.Commit + " is already deployed or queued"}
		return err
	}
	c, err := Trigger(ctx, tx, app, Spec{Commit: ev.Commit, Message: ev.Message, Trigger: "push", Policy: pol.Deploy})
	if errs.Is(err, errs.Forbidden) {
		*out = Outcome{Action: "refused", AppID: app.ID, Reason: err.Error()}
		return nil
	}
	if err != nil {
		return err
	}
	*out = Outcome{Action: "deployed", AppID: app.ID, DeploymentID: c.DeploymentID, JobID: c.JobID}
	return nil
}

func commitDeployed(ctx context.Context, tx pgx.Tx, appID int64, commit string) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM deployments WHERE app_id = $1 AND commit_sha = $2
		AND status IN ('queued', 'building', 'deploying', 'succeeded')`, appID, commit).Scan(&n)
	return n > 0, err
}

func handlePR(ctx context.Context, tx pgx.Tx, app App, ev *gitproviders.Event, pol Policy, out *Outcome) error {
	pr := ev.PR
	if app.PreviewOf != 0 {
		*out = Outcome{Action: "ignored", Reason: "webhook of a preview app"}
		return nil
	}
	if app.Deleting {
		*out = Outcome{Action: "ignored", Reason: "the app is being deleted"}
		return nil
	}
	if pr.Number <= 0 {
		return errors.New("pull request event without a number")
	}
	preview, err := scanApp(tx.QueryRow(ctx, "SELECT "+appColumns+" FROM apps WHERE preview_of = $1 AND pr_number = $2 FOR UPDATE", app.ID, pr.Number))
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	switch pr.Action {
	case gitproviders.PRClosed:
		if !exists {
			*out = Outcome{Action: "ignored", Reason: "no preview for this pull request"}
			return nil
		}
		if _, err := tx.Exec(ctx, "UPDATE apps SET status = 'stopped', updated_at = now() WHERE id = $1", preview.ID); err != nil {
			return err
		}
		// The preview leaves the routing tables at once (on commit), before
		// its worker removes it.
		if err := network.NotifyChanged(ctx, tx); err != nil {
			return err
		}
		id, err := jobs.Enqueue(ctx, tx, jobs.New{Kind: wsproto.JobDelete, AppID: preview.ID,
			Payload: wsproto.DeployPayload{Slug: preview.Slug}, Priority: 1})
		if err != nil {
			return err
		}
		*out = Outcome{Action: "preview_closed", AppID: preview.ID, JobID: id}
		return nil
	case gitproviders.PROpened, gitproviders.PRUpdated:
	default:
		*out = Outcome{Action: "ignored", Reason: "pull request action not used"}
		return nil
	}
	// The head branch comes from the provider's payload: the same rules as
	// a branch a user types.
	if err := gitsource.CheckBranch(pr.HeadBranch); err != nil {
		*out = Outcome{Action: "ignored", Reason: err.Error()}
		return nil
	}
	switch {
	case !app.Previews:
		*out = Outcome{Action: "ignored", Reason: "previews are off for this app"}
		return nil
	case pr.Fork && !app.ForkPreviews:
		*out = Outcome{Action: "ignored", Reason: "pull requests from forks get no preview unless the app allows them"}
		return nil
	case pr.Fork && pr.HeadRepo == "":
		*out = Outcome{Action: "ignored", Reason: "the fork of this pull request is gone"}
		return nil
	case pr.Fork && gitsource.CheckURL(pr.HeadRepo, false) != nil:
		*out = Outcome{Action: "ignored", Reason: "the fork's clone URL is not an https URL"}
		return nil
	case exists && preview.FromFork != pr.Fork:
		*out = Outcome{Action: "ignored", Reason: "the pull request's head moved between a fork and the repository; close and reopen it"}
		return nil
	}
	if pol.Previews != nil {
		if err := pol.Previews(ctx, tx, app.TeamID); err != nil {
			*out = Outcome{Action: "ignored", Reason: err.Error()}
			return nil
		}
	}
	if !exists {
		slug := PreviewSlug(app.Slug, pr.Number)
		// A fork's preview clones the fork, with no token and no variables
		// of the parent (from_fork); a same-repository preview inherits them.
		preview, err = scanApp(tx.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, git_repo, git_branch, git_provider,
			git_token_enc, framework, port, cpu_millis, memory_mb, disk_mb, bandwidth_kbit, health_path, preview_of, pr_number, from_fork, root_dir, dockerfile,
			build_command, start_command)
			SELECT team_id, $2, name || ' (PR #' || $3::int || ')', CASE WHEN $5 THEN $6 ELSE git_repo END, $4, git_provider,
				CASE WHEN $5 THEN NULL ELSE git_token_enc END, framework, port,
				cpu_millis, memory_mb, disk_mb, bandwidth_kbit, health_path, id, $3, $5, root_dir, dockerfile, build_command, start_command
			FROM apps WHERE id = $1
			RETURNING `+appColumns, app.ID, slug, pr.Number, pr.HeadBranch, pr.Fork, pr.HeadRepo))
		if err != nil {
			return fmt.Errorf("creating preview app %s: %w", slug, err)
		}
	} else if preview.GitBranch != pr.HeadBranch {
		if _, err := tx.Exec(ctx, "UPDATE apps SET git_branch = $2 WHERE id = $1", preview.ID, pr.HeadBranch); err != nil {
			return err
		}
		preview.GitBranch = pr.HeadBranch
	}
	if pr.HeadSHA != "" {
		dup, err := commitDeployed(ctx, tx, preview.ID, pr.HeadSHA)
		if err != nil {
			return err
		}
		if dup {
			*out = Outcome{Action: "duplicate", AppID: preview.ID, Reason: "commit already deployed to the preview"}
			return nil
		}
	}
	c, err := Trigger(ctx, tx, preview, Spec{Commit: pr.HeadSHA, Message: pr.Title, Trigger: "pull_request", Policy: pol.Deploy})
	if errs.Is(err, errs.Forbidden) {
		*out = Outcome{Action: "refused", AppID: preview.ID, Reason: err.Error()}
		return nil
	}
	if err != nil {
		return err
	}
	*out = Outcome{Action: "preview_deployed", AppID: preview.ID, DeploymentID: c.DeploymentID, JobID: c.JobID}
	return nil
}
