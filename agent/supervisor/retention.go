//go:build remote && containers_image_openpgp

package supervisor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/agent/runtime"
)

// Image retention. An app's images on this worker are its rollback
// targets: the images of its last ImageRetention successful deployments.
// A deployment is successful here when this agent put it live: a deploy
// or rollback switched to it, or a container of it runs as the app's
// desired (or adopted, newer) deployment. Those are the deployments the
// control plane records as succeeded on this worker: it records a job's
// result only after the switch, and it adopts the deployment a worker
// reports running. "Last" is by deployment id (ids only grow; a rollback
// is a new deployment whose image is the older one's).
//
// The record lives in the state directory (live.json), written before the
// deploy's result is stored, so a kill -9 never loses it; an agent that
// finds no record (a new state directory) starts from the images' labels,
// keeping each app's newest ImageRetention. Every other image of an app
// goes at once unless a container uses it (any container, running or
// not), the desired state names it, or a job of the app runs (its image
// is being built or pulled): the prune takes the app's job slot, so no
// job of the app starts while its images are removed.

// liveDeployment is a deployment this agent put live, with its image.
type liveDeployment struct {
	Deployment int64  `json:"deployment"`
	Image      string `json:"image"`
}

// liveRecord is the on-disk record of each app's last successful
// deployments on this worker, newest first, at most keep per app.
type liveRecord struct {
	path string
	keep int

	mu     sync.Mutex
	apps   map[int64][]liveDeployment
	seeded bool // false: no record on disk yet (seed from image labels)
}

// liveFile is the record's file.
type liveFile struct {
	// Seeded: the images found when the record was started are in it.
	Seeded bool                        `json:"seeded"`
	Apps   map[string][]liveDeployment `json:"apps"`
}

func openLiveRecord(path string, keep int) (*liveRecord, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	r := &liveRecord{path: path, keep: keep, apps: map[int64][]liveDeployment{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r, nil
	case err != nil:
		return nil, err
	}
	var disk liveFile
	if err := json.Unmarshal(b, &disk); err != nil {
		// Never a torn write (rename): anything unreadable is started
		// again from the image labels, like a missing record.
		return r, nil
	}
	for k, v := range disk.Apps {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil || id <= 0 {
			continue
		}
		r.apps[id] = r.trim(v)
	}
	r.seeded = disk.Seeded
	return r, nil
}

func (r *liveRecord) trim(v []liveDeployment) []liveDeployment {
	slices.SortFunc(v, func(a, b liveDeployment) int { return cmp.Compare(b.Deployment, a.Deployment) })
	v = slices.CompactFunc(v, func(a, b liveDeployment) bool { return a.Deployment == b.Deployment })
	if len(v) > r.keep {
		v = v[:r.keep]
	}
	return v
}

// note records that a deployment of an app went live with image; it
// returns once the record is on disk. Noting a deployment already known,
// or older than the app's last keep, writes nothing.
func (r *liveRecord) note(appID, deploymentID int64, image string) error {
	if appID <= 0 || deploymentID <= 0 || image == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.apps[appID]
	for _, d := range cur {
		if d.Deployment == deploymentID {
			return nil
		}
	}
	if len(cur) >= r.keep && deploymentID < cur[len(cur)-1].Deployment {
		return nil
	}
	next := r.trim(append(slices.Clone(cur), liveDeployment{deploymentID, image}))
	r.apps[appID] = next
	return r.saveLocked()
}

// forget drops an app's record (the app was deleted).
func (r *liveRecord) forget(appID int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.apps[appID]; !ok {
		return nil
	}
	delete(r.apps, appID)
	return r.saveLocked()
}

// seed completes a record started without one on disk with the images
// found: each app keeps its newest keep deployments by id, noted or found.
func (r *liveRecord) seed(list []runtime.Image) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seeded {
		return nil
	}
	for _, im := range list {
		if im.AppID > 0 && im.DeploymentID > 0 && len(im.Names) > 0 {
			r.apps[im.AppID] = append(r.apps[im.AppID], liveDeployment{im.DeploymentID, im.Names[0]})
		}
	}
	for id, v := range r.apps {
		r.apps[id] = r.trim(v)
	}
	r.seeded = true
	if err := r.saveLocked(); err != nil {
		r.seeded = false
		return err
	}
	return nil
}

// retained returns the images of an app's last successful deployments.
func (r *liveRecord) retained(appID int64) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.apps[appID] {
		out = append(out, d.Image)
	}
	return out
}

func (r *liveRecord) saveLocked() error {
	disk := liveFile{Seeded: r.seeded, Apps: make(map[string][]liveDeployment, len(r.apps))}
	for id, v := range r.apps {
		disk.Apps[strconv.FormatInt(id, 10)] = v
	}
	b, err := json.Marshal(disk)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(r.path), ".tmp-live-")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), r.path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// noteLive records a deployment this agent put live (see liveRecord).
func (s *Supervisor) noteLive(appID, deploymentID int64, image string) {
	if err := s.live.note(appID, deploymentID, image); err != nil {
		s.cfg.Logger.Error("supervisor: recording a live deployment; its image may be pruned after a restart", zap.Int64("app", appID),
			zap.Int64("deployment", deploymentID), zap.Error(err))
	}
}

// prune asks the prune loop to apply the image retention to an app now.
func (s *Supervisor) prune(appID int64) {
	if appID <= 0 {
		return
	}
	s.mu.Lock()
	s.pruneApps[appID] = true
	s.mu.Unlock()
	s.kickPrune()
}

// pruneAll asks the prune loop to apply the retention to every app with
// images on this worker.
func (s *Supervisor) pruneAll() {
	s.mu.Lock()
	s.pruneEvery = true
	s.mu.Unlock()
	s.kickPrune()
}

func (s *Supervisor) kickPrune() {
	select {
	case s.pruneKick <- struct{}{}:
	default:
	}
}

// pruneLoop applies the image retention to the apps prune and pruneAll
// named, outside job slots and reconcile passes: at start for every app,
// then whenever asked. What could not be done (Podman busy) is tried
// again after a pause that doubles from 1 s up to 30 s.
func (s *Supervisor) pruneLoop(ctx context.Context) {
	s.pruneAll()
	var pause time.Duration
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.pruneKick:
		case <-retry:
		}
		s.mu.Lock()
		every := s.pruneEvery
		apps := slices.Collect(maps.Keys(s.pruneApps))
		clear(s.pruneApps)
		s.pruneEvery = false
		s.mu.Unlock()
		if !every && len(apps) == 0 {
			continue
		}
		again, everyAgain := s.pruneImages(ctx, apps, every)
		if ctx.Err() != nil {
			return
		}
		if len(again) == 0 && !everyAgain {
			pause, retry = 0, nil
			continue
		}
		s.mu.Lock()
		for _, id := range again {
			s.pruneApps[id] = true
		}
		s.pruneEvery = s.pruneEvery || everyAgain
		s.mu.Unlock()
		pause = min(max(2*pause, time.Second), 30*time.Second)
		retry = time.After(pause)
	}
}

// appSlotTry takes an app's job slot when no job of the app is queued or
// running; release gives it back.
func (s *Supervisor) appSlotTry(appID int64) (release func(), ok bool) {
	s.mu.Lock()
	if _, busy := s.busy[appID]; busy {
		s.mu.Unlock()
		return nil, false
	}
	slot := s.appSlots[appID]
	if slot == nil {
		slot = make(chan struct{}, 1)
		s.appSlots[appID] = slot
	}
	s.mu.Unlock()
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, true
	default:
		return nil, false
	}
}

// pruneImages applies the retention to apps (to every app with images
// when every is set) and then bounds the build cache. It returns the apps
// to try again (Podman failed), and whether the whole pass must be tried
// again. An app with a job queued or running is skipped: the job's end
// asks for it again.
func (s *Supervisor) pruneImages(ctx context.Context, apps []int64, every bool) (again []int64, everyAgain bool) {
	list, err := s.rt.Images(ctx)
	for attempt := 0; err != nil && attempt < 3 && ctx.Err() == nil; attempt++ {
		// Listing fails as a whole when an image goes away meanwhile
		// (another build or removal on this host): ask again.
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		list, err = s.rt.Images(ctx)
	}
	if err != nil {
		s.cfg.Logger.Warn("supervisor: listing images", zap.Error(err))
		return apps, every
	}
	if err := s.live.seed(list); err != nil {
		s.cfg.Logger.Warn("supervisor: recording the images found at start", zap.Error(err))
		return apps, every
	}
	byApp := map[int64][]runtime.Image{}
	for _, im := range list {
		if im.AppID > 0 {
			byApp[im.AppID] = append(byApp[im.AppID], im)
		}
	}
	if every {
		apps = slices.Collect(maps.Keys(byApp))
	}
	slices.Sort(apps)
	for _, id := range apps {
		if ctx.Err() != nil {
			return nil, false
		}
		if len(byApp[id]) == 0 {
			continue
		}
		if err := s.pruneApp(ctx, id, byApp[id]); err != nil {
			s.cfg.Logger.Debug("supervisor: pruning an app's images; again shortly", zap.Int64("app", id), zap.Error(err))
			again = append(again, id)
		}
	}
	if s.building.Load() > 0 {
		return again, false // the cache is in use; the next job's end prunes it
	}
	if n, err := s.rt.PruneBuildCache(ctx, int64(s.cfg.BuildCacheMB)<<20); err != nil {
		s.cfg.Logger.Warn("supervisor: pruning the build cache", zap.Int64("bytes", n), zap.Error(err))
	}
	return again, false
}

// pruneApp removes the images of one app beyond the retention; nothing
// while a job of the app is queued or runs (its end prunes again).
func (s *Supervisor) pruneApp(ctx context.Context, appID int64, imgs []runtime.Image) error {
	release, ok := s.appSlotTry(appID)
	if !ok {
		return nil
	}
	defer release()
	// Containers are listed once the slot is held: no job of the app can
	// create one meanwhile, and reconcile only creates desired ones.
	inUse, err := s.rt.ImagesInUse(ctx)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, n := range s.live.retained(appID) {
		keep[n] = true
	}
	s.mu.Lock()
	for u, d := range s.desired {
		if u.app == appID && d.Image != "" {
			keep[d.Image] = true
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, im := range imgs {
		wanted := inUse[im.ID] || keep[im.ID]
		for _, n := range im.Names {
			wanted = wanted || keep[n]
		}
		if wanted {
			continue
		}
		if err := s.rt.RemoveImageID(ctx, im.ID); err != nil {
			errs = append(errs, fmt.Errorf("removing %v: %w", im.Names, err))
			continue
		}
		s.cfg.Logger.Info("supervisor: removed an image beyond the retention", zap.Strings("image", im.Names),
			zap.Int64("app", appID), zap.Int64("deployment", im.DeploymentID))
	}
	return errors.Join(errs...)
}
