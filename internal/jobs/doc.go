// Package jobs is the control plane's durable job queue in Postgres and the
// scheduler that claims, places, delivers, acknowledges, retries and
// recovers its jobs. It owns the jobs table and the workers' health (online,
// offline); all the SQL of the queue lives here. It does not know what a
// job means: each kind registers Hooks (Config.Kinds), which the queue
// calls in the transaction that moves the job, in the shape of River's
// JobCompleteTx. internal/deploys owns the deployment lifecycle (deploy,
// rollback, stop, restart and delete jobs), internal/cron scheduled runs,
// and internal/replicas joins in through deploys' Lifecycle.Instances.
//
// # Queue
//
// Producers (the dashboard API, git webhooks, rollbacks) call Enqueue in the
// same transaction as the state change that causes the job, so a job exists
// if and only if its cause was committed. Enqueue also sends NOTIFY on
// NotifyChannel, delivered at commit, which wakes the placement loop of every
// replica; a poll (Config.PollInterval) covers a lost LISTEN connection.
//
// # Lifecycle
//
//	pending → assigned → running → succeeded | failed | cancelled
//
// AssignBatch claims pending jobs with SELECT … FOR UPDATE SKIP LOCKED on
// the partial index jobs_pending_idx (priority DESC, id WHERE state =
// 'pending'), so concurrent replicas never claim the same row and never wait
// on each other's claims. In the same transaction it locks the online
// workers' rows (FOR UPDATE, in id order) and reads their reservations, so
// two replicas never place against the same stale view of capacity. Each job
// goes to the online worker with room (max_jobs, reserved CPU and memory)
// that runs the fewest instances of the job's app, then whose zone runs the
// fewest (anti-affinity, see internal/replicas), then whose utilisation,
// max(cpu used/capacity, memory used/capacity), is lowest; ties go to the
// worker with fewer active jobs, then the lower id. A job whose app
// instance (the payload's slot) already runs on a worker with room stays
// there. Running instances reserve their app's CPU and memory. Assigning
// increments attempt and sets deadline_at to now + the ack timeout.
//
// # Delivery across replicas
//
// A worker holds one WebSocket to exactly one replica, and the replica that
// assigned a job is often not that one. Assignment therefore happens only in
// the database: the assigning transaction sends NOTIFY on AssignChannel with
// the worker id as payload. Every replica listens; the one whose hub holds
// that worker's connection (workerbus.Bus.Connected) runs its delivery step,
// which takes the worker's assigned, unacknowledged jobs (Undelivered, on
// jobs_undelivered_idx) and sends them as job.assign. The same step runs
// when a worker connects to the replica and on a timer, so jobs assigned
// while a worker was between connections, or whose message was lost, are
// sent again after Config.Resend.
//
// Delivery is at least once. The job id is the idempotency key: an agent
// must acknowledge a job id it has already taken without running it again,
// and the control plane accepts an ack or a result only from the worker the
// job is assigned to and only while the job is active (Ack, Finish), so late
// or foreign replies change nothing.
//
// The ack moves the job to running with deadline_at = now + timeout_s.
// Progress goes to the kind's Progress hook; the result sets the job's
// final state and runs the kind's Ended hook (for a deploy: the deployment,
// the app's row, the events), in one transaction. A failed job is failed
// at once: the control plane never retries a job the worker ran and
// reported failed.
//
// # Hooks
//
// Per kind (Hooks): Place, in the placement transaction, may change a
// job's reservation or refuse it; Prepare adds secrets to the payload just
// before each delivery; Progress records a worker's progress; Ended runs
// when the job ends, by its worker's result (End.Result) or by the control
// plane (recovery giving up or cancelling, a failed Prepare: End.Reason);
// Requeued runs when recovery puts it back to pending. A hook's error rolls
// the job's move back (a result is then not acknowledged and the worker
// sends it again). Callers that cancel (Cancel, Supersede) or requeue
// (Requeue) a job do so in their own transaction and record what it means
// themselves (internal/deploys).
//
// # Recovery and worker health
//
// One replica at a time (pg_try_advisory_xact_lock) periodically:
//   - marks online workers whose last_seen is older than the heartbeat
//     timeout offline (the hub marks them online and refreshes last_seen);
//   - returns jobs of offline or revoked workers, and assigned jobs not
//     acknowledged by their deadline, to pending while attempts remain, and
//     fails them with a visible reason otherwise;
//   - fails running jobs past their deadline on a live worker: running them
//     again would hide a hang;
//   - runs Config.AfterRecover in the same transaction: the control plane
//     starts the instances of workers gone past their grace period on
//     other workers and gives up the jobs that wait for them
//     (internal/replicas, Recover).
//
// In the same transaction it runs the Requeued or Ended hooks of those
// jobs, then Config.AfterRecover. A worker's hello resolves the active
// jobs it no longer accounts for in the same way (ReconcileWorker).
//
// Because all state is in Postgres, a control-plane restart loses nothing:
// pending jobs are claimed by the next placement, assigned jobs are resent
// when their worker reconnects, and running jobs report to whichever replica
// the worker reconnects to.
package jobs
