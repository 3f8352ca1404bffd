//go:build remote && containers_image_openpgp

package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/containers/podman/v5/pkg/bindings/containers"
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

// ImagesInUse returns the ids of the images any container on the host
// uses, in any state: the agent's app containers, its scheduled runs and
// anything else (Podman refuses to remove those images anyway).
func (r *Runtime) ImagesInUse(ctx context.Context) (map[string]bool, error) {
	all := true
	list, err := containers.List(r.connFor(ctx), &containers.ListOptions{All: &all})
	if err != nil {
		return nil, err
	}
	used := make(map[string]bool, len(list))
	for _, c := range list {
		used[c.ImageID] = true
	}
	return used, nil
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

// PullSpec is a prebuilt image to deploy: Ref is pulled (with the
// registry login when User is set, sent to Podman in its API's
// X-Registry-Auth header, never on a command line) and re-tagged as Tag
// with the agent's labels, so it is listed, collected and rolled back to
// like a built image.
type PullSpec struct {
	Ref, User, Password string
	Tag                 string
	Labels              map[string]string
}

// Pull fetches a prebuilt image and names it Tag; progress lines go to
// out. The image's ID is returned with the tag.
func (r *Runtime) Pull(ctx context.Context, p PullSpec, out io.Writer) (string, error) {
	if p.Ref == "" || p.Tag == "" {
		return "", errors.New("pull needs an image reference and a tag")
	}
	if out == nil {
		out = io.Discard
	}
	opts := new(images.PullOptions).WithPolicy("always").WithProgressWriter(out)
	if p.User != "" {
		opts = opts.WithUsername(p.User).WithPassword(p.Password)
	}
	ids, err := images.Pull(r.connFor(ctx), p.Ref, opts)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("pull cancelled: %w", ctx.Err())
		}
		return "", pullError(p.Ref, err)
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("pulling %s gave no image", p.Ref)
	}
	// A one-line build adds the agent's labels (a tag alone would leave
	// the image outside the agent's listing and collection).
	dir, err := os.MkdirTemp("", "wh-pull-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if _, err := r.Build(ctx, BuildSpec{Dir: dir, Containerfile: "FROM " + ids[0] + "\n", Tag: p.Tag, Labels: p.Labels}, out); err != nil {
		return "", err
	}
	// The registry's name goes; the layers stay under the new tag.
	images.Untag(r.connFor(ctx), ids[0], "", "", nil)
	return ids[0], nil
}

// pullError turns the registry's answer into a sentence the user can act
// on; the reference is the user's, the credentials never appear.
func pullError(ref string, err error) error {
	msg := err.Error()
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "unauthorized") || strings.Contains(low, "authentication required") || strings.Contains(low, "401"):
		return fmt.Errorf("the registry refused the credentials for %s: check the registry user name and password", ref)
	case strings.Contains(low, "denied") || strings.Contains(low, "403"):
		return fmt.Errorf("the registry denied access to %s: the credentials cannot read this image", ref)
	case strings.Contains(low, "manifest unknown") || strings.Contains(low, "not found") || strings.Contains(low, "404"):
		return fmt.Errorf("the image %s was not found in its registry", ref)
	}
	return fmt.Errorf("pulling %s: %w", ref, err)
}
