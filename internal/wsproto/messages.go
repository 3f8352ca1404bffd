package wsproto

import "encoding/json"

// Message types carried in an envelope's t field.
const (
	TypePing         = "ping"
	TypePong         = "pong"
	TypeJobAssign    = "job.assign"    // CP → worker
	TypeJobAck       = "job.ack"       // worker → CP
	TypeJobProgress  = "job.progress"  // worker → CP
	TypeJobResult    = "job.result"    // worker → CP
	TypeJobCancel    = "job.cancel"    // CP → worker
	TypeStats        = "stats"         // worker → CP
	TypeLogs         = "logs"          // worker → CP
	TypeLogsAck      = "logs.ack"      // CP → worker
	TypeAppState     = "app.state"     // worker → CP
	TypeDesiredState = "desired.state" // CP → worker
	TypeChallenge    = "challenge"     // CP → worker, first frame of a connection (handshake)
	TypeHello        = "hello"         // worker → CP, answers the challenge (handshake)
	// TypeJobResultAck tells the worker its result is committed: only then
	// does it forget the result (kept on disk until then).
	TypeJobResultAck = "job.result.ack" // CP → worker
	// TypeRetry tells the worker a message was not recorded (the database
	// failed) and must be sent again later.
	TypeRetry = "retry" // CP → worker
)

// Job kinds.
const (
	JobDeploy   = "deploy"
	JobRollback = "rollback"
	JobStop     = "stop"
	JobRestart  = "restart"
	JobDelete   = "delete"
)

// JobAssign hands a job to a worker. JobID is the idempotency key: a worker
// that sees the same JobID twice acknowledges again but runs it once.
type JobAssign struct {
	JobID        int64           `json:"job_id"`
	Kind         string          `json:"kind"`
	AppID        int64           `json:"app_id,omitempty"`
	DeploymentID int64           `json:"deployment_id,omitempty"`
	Attempt      int             `json:"attempt"`
	TimeoutS     int             `json:"timeout_s"`
	Payload      json.RawMessage `json:"payload,omitempty"`
}

// JobAck confirms a worker took a job.
type JobAck struct {
	JobID int64 `json:"job_id"`
}

// JobProgress reports a stage of a running job (shown to users live).
type JobProgress struct {
	JobID   int64  `json:"job_id"`
	Stage   string `json:"stage"` // clone, build, start, health, switch, done
	Message string `json:"message,omitempty"`
	Percent int    `json:"percent,omitempty"`
}

// JobResult ends a job.
type JobResult struct {
	JobID  int64           `json:"job_id"`
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
}

// DeployOutput is JobResult.Output of a deploy or rollback job that
// succeeded: what the worker runs, read by the control plane.
type DeployOutput struct {
	Image    string `json:"image"`
	HostPort int    `json:"host_port"`
	// Port is the port the app listens on in its container (detected by
	// the build when the app had none configured).
	Port int `json:"port,omitempty"`
	// Commit is the commit that was built (for deploys of a branch head).
	Commit string `json:"commit,omitempty"`
}

// JobResultAck acknowledges a committed (or no longer needed) result.
type JobResultAck struct {
	JobID int64 `json:"job_id"`
}

// Retry names a message the control plane could not record.
type Retry struct {
	Type  string `json:"type"`
	JobID int64  `json:"job_id,omitempty"`
}

// JobCancel asks a worker to stop a running job.
type JobCancel struct {
	JobID int64 `json:"job_id"`
}

// Hello is the worker's answer to the challenge: what it is and what it
// can do. WGIP and Zone are what the agent was configured with; the control
// plane keeps the operator's values (worker add) and only logs a mismatch.
type Hello struct {
	Version    string  `json:"version"`
	WGIP       string  `json:"wg_ip,omitempty"`
	Zone       string  `json:"zone,omitempty"`
	CPUMillis  int     `json:"cpu_millis"`
	MemoryMB   int     `json:"memory_mb"`
	DiskMB     int     `json:"disk_mb"`
	DiskQuota  string  `json:"disk_quota"` // xfs-prjquota, btrfs, none
	MaxJobs    int     `json:"max_jobs"`
	RunningIDs []int64 `json:"running_job_ids,omitempty"`
	// ResultIDs are jobs that ended on the worker whose results the
	// control plane has not acknowledged yet (they are sent again). With
	// RunningIDs they are every job the worker still accounts for: the
	// control plane resolves its other active jobs of this worker at once.
	ResultIDs []int64 `json:"result_job_ids,omitempty"`
}

// AppStats is one app's resource use at a point in time.
type AppStats struct {
	AppID      int64   `json:"app_id"`
	CPUPercent float64 `json:"cpu_pct"`
	MemBytes   int64   `json:"mem_bytes"`
	MemLimit   int64   `json:"mem_limit,omitempty"`
	NetRxBytes int64   `json:"net_rx"`
	NetTxBytes int64   `json:"net_tx"`
	DiskBytes  int64   `json:"disk_bytes"`
}

// ImagesDisk is the worker's image disk use and whether this report
// measured it (an agent that predates DiskMeasured sends only non-zero
// figures).
func (s Stats) ImagesDisk() (int64, bool) {
	return s.ImagesBytes, s.DiskMeasured || s.ImagesBytes > 0
}

// Stats is a periodic report of every app on a worker.
type Stats struct {
	TS   int64      `json:"ts"` // unix seconds
	Apps []AppStats `json:"apps"`
	// ImagesBytes is the disk used by the worker's app images, measured
	// with the disk sample (DiskMeasured says this report carries one, so
	// that a worker whose images are all gone reports 0).
	ImagesBytes  int64 `json:"images_bytes,omitempty"`
	DiskMeasured bool  `json:"disk_measured,omitempty"`
	// Volumes is the disk each volume on the worker uses (sent with the
	// disk sample).
	Volumes []VolumeUsage `json:"volumes,omitempty"`
}

// LogLine is one line of an app's output or of a build.
type LogLine struct {
	AppID        int64  `json:"app_id"`
	DeploymentID int64  `json:"deployment_id,omitempty"` // set for build logs
	TS           int64  `json:"ts"`                      // unix nanoseconds
	Stream       string `json:"stream"`                  // stdout, stderr, build
	Line         string `json:"line"`
}

// Logs carries a batch of lines. A batch with an id is answered with a
// LogsAck once its lines are committed; the worker keeps it, and sends it
// again under the same id, until then.
type Logs struct {
	Batch string    `json:"batch,omitempty"`
	Lines []LogLine `json:"lines"`
}

// LogsAck answers a Logs batch. Retry means nothing of it was kept (the
// database is unavailable or the backlog full): send it again later.
// Without Retry every line is stored, or dropped for good as unstorable.
type LogsAck struct {
	Batch string `json:"batch"`
	Retry bool   `json:"retry,omitempty"`
}

// AppState reports what a worker observes about an app's container.
type AppState struct {
	AppID int64 `json:"app_id"`
	// Slot is the instance (0: the app's first).
	Slot         int    `json:"slot,omitempty"`
	DeploymentID int64  `json:"deployment_id,omitempty"`
	State        string `json:"state"` // running, unhealthy, stopped, crashed, crashloop
	HostPort     int    `json:"host_port,omitempty"`
	// Image is the running container's image (set for running).
	Image    string `json:"image,omitempty"`
	Restarts int    `json:"restarts,omitempty"`
	Message  string `json:"message,omitempty"`
}

// DesiredApp is one app the CP wants running on a worker. DeploymentID is
// the generation: deployment ids only grow, so a worker running a newer
// deployment of the app than the one desired keeps it and reports it (the
// control plane has not recorded its result yet) instead of going back.
type DesiredApp struct {
	AppID int64 `json:"app_id"`
	// Slot is the instance of the app (0: the first); a worker may run
	// several instances of one app, one container each.
	Slot         int    `json:"slot,omitempty"`
	Slug         string `json:"slug"`
	TeamID       int64  `json:"team_id,omitempty"` // picks the team's network
	DeploymentID int64  `json:"deployment_id"`
	Image        string `json:"image"`
	Port         int    `json:"port"`
	HostPort     int    `json:"host_port,omitempty"`
	CPUMillis    int    `json:"cpu_millis"`
	MemoryMB     int    `json:"memory_mb"`
	// StartCommand overrides the image's command (["/bin/sh", "-c", it]
	// inside the container).
	StartCommand string `json:"start_command,omitempty"`
	// HealthPath is probed while the instance runs (HTTP, any answer below
	// 500 is healthy; "": a TCP connect); failing probes are reported as
	// the state "unhealthy".
	HealthPath string `json:"health_path,omitempty"`
	// Env holds decrypted variables; the channel is authenticated and
	// encrypted (WSS), and the worker never writes them to disk.
	Env map[string]string `json:"env,omitempty"`
	// Volumes are the app's persistent volumes, mounted again when the
	// container is recreated.
	Volumes []VolumeMount `json:"volumes,omitempty"`
}

// DesiredState is the full set of app instances a worker should run. Workers
// reconcile to it after every (re)connect: level-triggered, not replayed.
type DesiredState struct {
	Apps []DesiredApp `json:"apps"`
}

// TypeZoneTable carries a worker's zone routing document (CP → worker),
// sent after its hello and whenever routing changes.
const TypeZoneTable = "zone.table"

// ZoneTable is the worker's zone routing: the document
// /v1/traefik/config?worker_id=N serves, with its ETag.
type ZoneTable struct {
	ETag string          `json:"etag"`
	Doc  json.RawMessage `json:"doc"`
}
