package wsproto

// DeployPayload is the JobAssign.Payload of deploy and rollback jobs. The
// jobs table stores it without secrets; the control plane adds Env and
// GitToken (decrypted) only when it delivers the job over the
// authenticated channel, and the worker never writes them to disk.
type DeployPayload struct {
	Slug string `json:"slug"`
	// TeamID picks the app's network: each team's containers share one
	// bridge network and no other team's.
	TeamID   int64  `json:"team_id,omitempty"`
	GitURL   string `json:"git_url,omitempty"`
	Branch   string `json:"branch,omitempty"`
	Commit   string `json:"commit,omitempty"`
	GitToken string `json:"git_token,omitempty"`
	// GitUser is the user name sent with GitToken (HTTP Basic): each
	// provider expects its own ("x-access-token" when empty).
	GitUser   string `json:"git_user,omitempty"`
	Framework string `json:"framework,omitempty"` // auto, node, nextjs, vite, go, python, static, dockerfile
	Port      int    `json:"port"`
	CPUMillis int    `json:"cpu_millis"`
	MemoryMB  int    `json:"memory_mb"`
	DiskMB    int    `json:"disk_mb,omitempty"`
	// BandwidthKbit limits the container's egress (0: unlimited).
	BandwidthKbit int    `json:"bandwidth_kbit,omitempty"`
	HealthPath    string `json:"health_path,omitempty"`
	// RootDir is the build's directory inside the repository ("" = its
	// root); Dockerfile, when set, is the Dockerfile to build (relative to
	// RootDir) instead of detecting.
	RootDir    string `json:"root_dir,omitempty"`
	Dockerfile string `json:"dockerfile,omitempty"`
	// BuildCommand and StartCommand override the framework's build step
	// and the image's command; each runs inside its container only, as
	// the argv ["/bin/sh", "-c", command].
	BuildCommand string            `json:"build_command,omitempty"`
	StartCommand string            `json:"start_command,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	// Image, when set, is deployed as is without building (rollback).
	Image string `json:"image,omitempty"`
	// Pull, when set, is a prebuilt image the worker pulls and deploys
	// instead of building GitURL; RegistryUser and RegistryPassword log in
	// to its registry (added just before sending, like GitToken).
	Pull             string `json:"pull,omitempty"`
	RegistryUser     string `json:"registry_user,omitempty"`
	RegistryPassword string `json:"registry_password,omitempty"`
	// Slot is the app's instance the job starts (0: the first). Each slot
	// is one container on its worker; a deploy replaces the slot's
	// container only, after the new one passed its health check.
	Slot int `json:"slot,omitempty"`
	// StopFirst removes the slot's old container before the new one
	// starts (a rolling deploy's max_unavailable).
	StopFirst bool `json:"stop_first,omitempty"`
	// Restore and Replace mark jobs the control plane's rolling deploys
	// and re-placements send (a slot going back to the previous
	// deployment, a slot moved to another worker); the worker runs them
	// like any deploy.
	Restore bool `json:"restore,omitempty"`
	Replace bool `json:"replace,omitempty"`
	// Volumes are mounted into the container (the same volumes on every
	// deploy and rollback of the app).
	Volumes []VolumeMount `json:"volumes,omitempty"`
}

// RestartPayload is a restart job's payload. A job naming Slot restarts
// that instance only and succeeds once it answers its health check again
// (the control plane restarts an app's instances one at a time); without
// Slot, every instance of the app on the worker restarts at once.
type RestartPayload struct {
	// WorkerID is the worker the job is for (the control plane places it
	// there only).
	WorkerID int64 `json:"worker_id,omitempty"`
	Slot     *int  `json:"slot,omitempty"`
	// Drain: the instance left routing as the job was queued; the worker
	// waits a third of its drain delay before stopping it, so the proxies
	// stop sending it requests first.
	Drain bool `json:"drain,omitempty"`
}
