package deploys

import (
	"context"
	"fmt"
	"time"
)

// LastDeploy is an app's newest deployment, as the apps overview shows it.
type LastDeploy struct {
	ID      int64     `json:"id"`
	Status  string    `json:"status"`
	Commit  string    `json:"commit"`
	Message string    `json:"message"`
	Trigger string    `json:"trigger"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
}

// Overview is what the dashboard shows of an app beyond its settings:
// where it runs, which deployment serves it and the newest deployment.
type Overview struct {
	Worker string `json:"worker"`
	Zone   string `json:"zone"`
	// LiveDeploymentID is the deployment whose container serves the app
	// (the one Desired sends to its worker); 0 when none does.
	LiveDeploymentID int64       `json:"live_deployment_id"`
	LastDeploy       *LastDeploy `json:"last_deploy"`
}

// AppOverview reads an app's overview. The live deployment follows the
// rule of Desired: the newest succeeded deployment with an image on the
// app's worker, for an app that is not stopped.
func AppOverview(ctx context.Context, q Pool, appID int64) (Overview, error) {
	var o Overview
	var last LastDeploy
	var lastID *int64
	var at *time.Time
	var status, commit, msg, trigger, by *string
	err := q.QueryRow(ctx, `SELECT COALESCE(w.name, ''), COALESCE(w.zone, ''), COALESCE(live.id, 0),
			l.id, l.status, l.commit_sha, l.commit_message, l.trigger, COALESCE(NULLIF(u.name, ''), u.email, ''), l.created_at
		FROM apps a
		LEFT JOIN workers w ON w.id = a.worker_id
		LEFT JOIN LATERAL (SELECT id FROM deployments
			WHERE app_id = a.id AND status = 'succeeded' AND image <> '' AND worker_id = a.worker_id
			ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1) live ON a.status IN ('running', 'crashed', 'building', 'deploying', 'failed')
		LEFT JOIN LATERAL (SELECT id, status, commit_sha, commit_message, trigger, created_by, created_at FROM deployments
			WHERE app_id = a.id ORDER BY id DESC LIMIT 1) l ON true
		LEFT JOIN users u ON u.id = l.created_by
		WHERE a.id = $1`, appID).Scan(&o.Worker, &o.Zone, &o.LiveDeploymentID, &lastID, &status, &commit, &msg, &trigger, &by, &at)
	if err != nil {
		return o, fmt.Errorf("reading the app's overview: %w", err)
	}
	if lastID != nil {
		last = LastDeploy{ID: *lastID, Status: *status, Commit: *commit, Message: *msg, Trigger: *trigger, By: *by, At: *at}
		o.LastDeploy = &last
	}
	return o, nil
}
