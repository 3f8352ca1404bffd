//go:build remote && containers_image_openpgp

package supervisor

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// pruneImages keeps the images of an app's newest ImageRetention
// deployments on this worker (the rollback targets) and of any container,
// and removes the older ones; then it bounds the build cache. It runs
// after every successful deploy and when a retired container is removed
// (its image was in use until then). It reports false when something could
// not be done now (Podman busy, an image still in use) and is worth a retry.
func (s *Supervisor) pruneImages(ctx context.Context, appID int64) bool {
	list, err := s.rt.Images(ctx)
	for attempt := 0; err != nil && attempt < 5; attempt++ {
		// Listing fails as a whole when an image goes away meanwhile
		// (another build or removal on this host): ask again.
		time.Sleep(time.Duration(attempt+1) * 300 * time.Millisecond)
		list, err = s.rt.Images(ctx)
	}
	if err != nil {
		s.cfg.Logger.Warn("supervisor: listing images", zap.Error(err))
		return false
	}
	inUse := map[string]bool{}
	if cs, err := s.rt.List(ctx); err == nil {
		for _, c := range cs {
			inUse[c.Image] = true
		}
	} else {
		return false // without the containers nothing is known to be unused
	}
	kept, done := 0, true
	for _, im := range list { // newest deployment first
		if im.AppID != appID {
			continue
		}
		used := false
		for _, n := range im.Names {
			used = used || inUse[n]
		}
		if kept < s.cfg.ImageRetention || used {
			kept++
			continue
		}
		if err := s.rt.RemoveImageID(ctx, im.ID); err != nil {
			s.cfg.Logger.Debug("supervisor: removing an old image", zap.Strings("image", im.Names), zap.Error(err))
			done = false
			continue
		}
		s.cfg.Logger.Info("supervisor: removed an old image", zap.Strings("image", im.Names), zap.Int64("deployment", im.DeploymentID))
	}
	if s.building.Load() > 0 {
		return done // the cache is in use; the next deploy prunes it
	}
	if n, err := s.rt.PruneBuildCache(ctx, int64(s.cfg.BuildCacheMB)<<20); err != nil {
		s.cfg.Logger.Warn("supervisor: pruning the build cache", zap.Int64("bytes", n), zap.Error(err))
	}
	return done
}
