// Package replicas runs an app as several instances spread over workers:
// the instance list, scaling, rolling deploys and the re-placement of the
// instances of a worker that went offline. It owns the app_instances
// table, the app's instance settings (replicas, max_surge,
// max_unavailable), slot 0's routing flag (unhealthy_since, for a
// restart) and when a worker went offline (workers.offline_at); a
// deployment's status and log and the app's status change only
// through internal/deploys (FailRoll, InstanceRunning, Stopped,
// RemoveDeleted, AppendLog), and the state of jobs only through
// internal/jobs (Enqueue, CancelQueuedSlots, GiveUp).
//
// # Instances
//
// An app runs apps.replicas instances, numbered by slot. Slot 0 is the
// app's own row (apps.worker_id, apps.host_port, apps.status, at the
// app's newest succeeded deployment), which is all a single-instance app
// has; slots 1 and up are rows of app_instances. Every instance is one
// container on its worker, started by a deploy or rollback job whose
// payload names the slot (wsproto.DeployPayload.Slot). The scheduler
// (internal/jobs) places a slot's job on the worker that runs the slot
// when it has room, and otherwise spreads the app: the worker with the
// fewest instances of the app, then the zone with the fewest, then the
// least utilised; each instance reserves the app's CPU and memory there.
//
// # Rolling deploys
//
// A deployment's first job moves slot 0 (it builds or pulls the image
// once). Each successful slot job then starts the next ones (OnResult):
// up to max_surge jobs at once start a new container, pass its health
// check and only then replace the slot's old one, which drains; with
// max_unavailable above zero, that many more slots stop their old
// container first. A failed slot stops the roll: the deployment fails,
// its queued slot jobs are cancelled and the slots it already moved go
// back to the previous deployment, while the slots it did not reach keep
// serving. Instances on other workers reuse the image when their worker
// has it and otherwise build the same commit (or pull the same image).
//
// # Worker loss
//
// When a worker goes offline (missed heartbeats) its instances leave
// routing while the app has a healthy one elsewhere. Once it is gone (still
// offline after the grace period, or revoked), Recover, run by the
// scheduler's recovery under its lock, starts each of its instances again
// elsewhere (Replace: the slot's job at its deployment, placed on another
// worker with room, queued until one has; single-instance apps too, apps
// with a volume never) and gives up the stop, delete and restart jobs that
// wait for it (Forget), so a deletion completes without it. When the worker
// comes back its containers of moved slots are no longer desired and go
// after the drain delay.
//
// # Restart, stop and delete
//
// Restart restarts an app's instances one at a time: each instance's
// restart job (wsproto.RestartPayload, pinned to its worker) takes it out
// of routing when another instance serves, restarts it in place and waits
// for its health check; its success queues the next instance (OnResult).
// A stop or delete job of an app gets a copy for every other worker that
// runs an instance (stop) or ran one (delete, which also removes the
// images there): jobs.Enqueue adds them, pinned by their payload's
// worker_id, and the app's row goes when the last delete job succeeds.
package replicas
