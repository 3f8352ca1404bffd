//go:build remote && containers_image_openpgp

package supervisor

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// storedResult is a job result waiting for the control plane's
// acknowledgement, with the job it ends.
type storedResult struct {
	Result       wsproto.JobResult `json:"result"`
	AppID        int64             `json:"app_id,omitempty"`
	DeploymentID int64             `json:"deployment_id,omitempty"`
}

// resultStore keeps job results on disk until the control plane
// acknowledges them: a result survives an agent crash and a control plane
// that is away for any length of time, and is sent again after every
// reconnect. One file per job, written atomically (temp file + rename).
// Results never hold secrets (errors and deploy outputs only).
type resultStore struct {
	dir string

	mu      sync.Mutex
	pending map[int64]storedResult
}

func openResults(dir string) (*resultStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the result directory: %w", err)
	}
	r := &resultStore{dir: dir, pending: map[int64]storedResult{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			os.Remove(filepath.Join(dir, name)) // a write cut short by a crash
			continue
		}
		id, err := strconv.ParseInt(strings.TrimSuffix(name, ".json"), 10, 64)
		if err != nil || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		var sr storedResult
		if err := json.Unmarshal(b, &sr); err != nil || sr.Result.JobID != id {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		r.pending[id] = sr
	}
	return r, nil
}

// put stores a result durably before it is sent.
func (r *resultStore) put(sr storedResult) error {
	b, err := json.Marshal(sr)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(r.dir, ".tmp-")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	f.Close()
	if err := os.Rename(f.Name(), r.path(sr.Result.JobID)); err != nil {
		os.Remove(f.Name())
		return err
	}
	r.mu.Lock()
	r.pending[sr.Result.JobID] = sr
	r.mu.Unlock()
	return nil
}

func (r *resultStore) path(id int64) string {
	return filepath.Join(r.dir, strconv.FormatInt(id, 10)+".json")
}

// ack forgets an acknowledged result.
func (r *resultStore) ack(id int64) {
	r.mu.Lock()
	_, ok := r.pending[id]
	delete(r.pending, id)
	r.mu.Unlock()
	if ok {
		os.Remove(r.path(id))
	}
}

// list returns the unacknowledged results, oldest job first.
func (r *resultStore) list() []storedResult {
	r.mu.Lock()
	out := make([]storedResult, 0, len(r.pending))
	for _, sr := range r.pending {
		out = append(out, sr)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b storedResult) int { return cmp.Compare(a.Result.JobID, b.Result.JobID) })
	return out
}

// ids returns the jobs whose results are unacknowledged.
func (r *resultStore) ids() []int64 {
	var ids []int64
	for _, sr := range r.list() {
		ids = append(ids, sr.Result.JobID)
	}
	return ids
}

// has reports whether a result of the job waits for its acknowledgement.
func (r *resultStore) has(id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.pending[id]
	return ok
}

// pendingApp reports whether a successful deploy result of the app is not
// acknowledged yet.
func (r *resultStore) pendingApp(appID int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sr := range r.pending {
		if sr.AppID == appID && sr.DeploymentID != 0 && sr.Result.OK {
			return true
		}
	}
	return false
}

// get returns a stored result.
func (r *resultStore) get(id int64) (storedResult, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sr, ok := r.pending[id]
	return sr, ok
}

// pendingDeployment reports whether a deploy result of the app's
// deployment is not acknowledged yet (the control plane has not recorded
// that this deployment went live).
func (r *resultStore) pendingDeployment(appID, deploymentID int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sr := range r.pending {
		if sr.AppID == appID && sr.DeploymentID == deploymentID && sr.Result.OK {
			return true
		}
	}
	return false
}
