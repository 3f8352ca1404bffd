package wsproto

// VolumeMount is a persistent volume of an app: a named Podman volume on
// the worker (created with the first container that mounts it, kept when
// containers go) mounted at Path inside every container of the app.
type VolumeMount struct {
	// Name is the Podman volume's name, unique on a worker: wh-vol-<id>,
	// or wh-vol-<id>-<n> for an instance's own copy of a volume declared
	// per instance.
	Name   string `json:"name"`
	Path   string `json:"path"`
	SizeMB int    `json:"size_mb"`
}

// JobVolumeRemove removes released volumes from the worker that holds
// them (their grace period is over).
const JobVolumeRemove = "volume.remove"

// VolumeRemovePayload names the volumes to remove.
type VolumeRemovePayload struct {
	Names []string `json:"names"`
}

// VolumeUsage is the disk a volume uses on its worker (sent with the disk
// sample of Stats).
type VolumeUsage struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// JobCron runs one scheduled command of an app to its end.
const JobCron = "cron"

// CronPayload is the JobAssign.Payload of a cron job: a fresh container
// from the app's current image runs Command (argv, no shell) with the
// app's variables (Env, added just before sending) and volumes, and is
// killed after TimeoutS.
type CronPayload struct {
	RunID     int64             `json:"run_id"`
	Slug      string            `json:"slug"`
	TeamID    int64             `json:"team_id,omitempty"`
	Image     string            `json:"image"`
	Command   []string          `json:"command"`
	TimeoutS  int               `json:"timeout_s"`
	CPUMillis int               `json:"cpu_millis"`
	MemoryMB  int               `json:"memory_mb"`
	Volumes   []VolumeMount     `json:"volumes,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
}

// CronOutput is the JobResult.Output of a cron job that ran (its exit
// code may still be non-zero).
type CronOutput struct {
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	LogTail    string `json:"log_tail"`
	TimedOut   bool   `json:"timed_out,omitempty"`
}
