package deploys

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wisehosting/wisehosting/internal/secrets"
	"github.com/wisehosting/wisehosting/internal/volumes"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// Pool is what Desired and ApplyAppState need of a pool or transaction.
type Pool interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Desired is the full set of apps a worker should run: every app placed on
// it that is not stopped, at its newest successful deployment that has an
// image. Env holds the decrypted variables (sent only over the worker's
// authenticated channel).
func Desired(ctx context.Context, q Pool, kr *secrets.Keyring, workerID int64) (wsproto.DesiredState, error) {
	// The app's first instance is its row; the others are app_instances
	// rows (internal/replicas).
	rows, err := q.Query(ctx, `SELECT a.id, 0, a.slug, a.team_id, d.id, d.image, a.port, a.host_port, a.cpu_millis, a.memory_mb, a.start_command, a.health_path
		FROM apps a
		JOIN LATERAL (SELECT id, image FROM deployments
			WHERE app_id = a.id AND status = 'succeeded' AND image <> '' AND worker_id = a.worker_id
			ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1) d ON true
		WHERE a.worker_id = $1 AND a.status IN ('running', 'crashed', 'building', 'deploying', 'failed')
		UNION ALL
		SELECT a.id, i.slot, a.slug, a.team_id, d.id, d.image, a.port, i.host_port, a.cpu_millis, a.memory_mb, a.start_command, a.health_path
		FROM app_instances i JOIN apps a ON a.id = i.app_id JOIN deployments d ON d.id = i.deployment_id AND d.image <> ''
		WHERE i.worker_id = $1 AND i.slot < a.replicas AND a.status IN ('running', 'crashed', 'building', 'deploying', 'failed')
		ORDER BY 1, 2`, workerID)
	if err != nil {
		return wsproto.DesiredState{}, fmt.Errorf("loading desired state: %w", err)
	}
	ds := wsproto.DesiredState{Apps: []wsproto.DesiredApp{}}
	for rows.Next() {
		var a wsproto.DesiredApp
		if err := rows.Scan(&a.AppID, &a.Slot, &a.Slug, &a.TeamID, &a.DeploymentID, &a.Image, &a.Port, &a.HostPort, &a.CPUMillis, &a.MemoryMB, &a.StartCommand, &a.HealthPath); err != nil {
			rows.Close()
			return ds, err
		}
		ds.Apps = append(ds.Apps, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ds, err
	}
	envs := map[int64]map[string]string{}
	for i := range ds.Apps {
		env, ok := envs[ds.Apps[i].AppID]
		if !ok {
			var err error
			if env, err = LoadEnv(ctx, q, kr, ds.Apps[i].AppID); err != nil {
				return ds, err
			}
			envs[ds.Apps[i].AppID] = env
		}
		ds.Apps[i].Env = env
		if ds.Apps[i].Volumes, err = volumes.Mounts(ctx, q, ds.Apps[i].AppID, ds.Apps[i].Slot); err != nil {
			return ds, err
		}
	}
	return ds, nil
}
