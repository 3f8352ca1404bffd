package jobs

import (
	"bytes"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pending is a claimed job waiting for a worker.
type pending struct {
	Job
	appWorker int64
	pinWorker int64 // jobs.pin_worker_id
}

// place runs the Place hooks of the claimed jobs: a refused job fails with
// the hook's reason, a changed reservation or payload is stored. It
// returns the jobs left to place.
func (k Kinds) place(ctx context.Context, tx pgx.Tx, batch []pending) ([]pending, error) {
	out := batch[:0]
	for _, p := range batch {
		hook := k[p.Kind].Place
		if hook == nil {
			out = append(out, p)
			continue
		}
		j, refused, err := hook(ctx, tx, p.Job)
		if err != nil {
			return nil, fmt.Errorf("placing job %d: %w", p.ID, err)
		}
		if refused != "" {
			if _, err := tx.Exec(ctx, `UPDATE jobs SET state = 'failed', error = $2, finished_at = now() WHERE id = $1`,
				p.ID, truncate(refused, 2000)); err != nil {
				return nil, err
			}
			continue
		}
		if j.CPUMillis != p.CPUMillis || j.MemoryMB != p.MemoryMB || !bytes.Equal(j.Payload, p.Payload) {
			if _, err := tx.Exec(ctx, `UPDATE jobs SET cpu_millis = $2, memory_mb = $3, payload = $4 WHERE id = $1`,
				p.ID, j.CPUMillis, j.MemoryMB, []byte(j.Payload)); err != nil {
				return nil, err
			}
			p.CPUMillis, p.MemoryMB, p.Payload = j.CPUMillis, j.MemoryMB, j.Payload
		}
		out = append(out, p)
	}
	return out, nil
}
