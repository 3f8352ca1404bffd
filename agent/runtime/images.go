package runtime

import (
	"cmp"
	"context"
	"slices"
	"strconv"

	"github.com/containers/podman/v5/pkg/bindings/images"
)

// Image is an app image built by this agent.
type Image struct {
	ID           string
	Names        []string
	AppID        int64
	DeploymentID int64
	Size         int64
}

// Images lists the app images this agent built (labelled with its
// instance), newest deployment first.
func (r *Runtime) Images(ctx context.Context) ([]Image, error) {
	list, err := images.List(r.connFor(ctx), &images.ListOptions{
		Filters: map[string][]string{"label": {LabelManaged + "=" + r.managed()}}})
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(list))
	for _, im := range list {
		i := Image{ID: im.ID, Names: im.RepoTags, Size: im.Size}
		i.AppID, _ = strconv.ParseInt(im.Labels[LabelApp], 10, 64)
		i.DeploymentID, _ = strconv.ParseInt(im.Labels[LabelDeployment], 10, 64)
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b Image) int { return cmp.Compare(b.DeploymentID, a.DeploymentID) })
	return out, nil
}

// ImagesBytes is the disk used by this agent's app images.
func (r *Runtime) ImagesBytes(ctx context.Context) (int64, error) {
	list, err := r.Images(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, im := range list {
		n += im.Size
	}
	return n, nil
}

// RemoveImageID deletes an image by id with all its names; an image a
// container still uses is kept (the error says so). Its untagged parents
// stay: they are the build cache other builds may be using right now
// (PruneBuildCache bounds them).
func (r *Runtime) RemoveImageID(ctx context.Context, id string) error {
	_, errs := images.Remove(r.connFor(ctx), []string{id}, new(images.RemoveOptions).WithNoPrune(true))
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// PruneBuildCache removes dangling images (the layer cache builds leave)
// when they use more than limit bytes, and returns what they used. Callers
// run it while no build runs.
func (r *Runtime) PruneBuildCache(ctx context.Context, limit int64) (int64, error) {
	yes := true
	list, err := images.List(r.connFor(ctx), &images.ListOptions{All: &yes, Filters: map[string][]string{"dangling": {"true"}}})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, im := range list {
		n += im.Size
	}
	if n <= limit {
		return n, nil
	}
	_, err = images.Prune(r.connFor(ctx), &images.PruneOptions{Filters: map[string][]string{"dangling": {"true"}}})
	return n, err
}
