package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is an S3-compatible bucket that receives a copy of every backup.
// Backups are encrypted before they leave the host.
type S3 struct {
	// Endpoint is the service's host[:port], e.g. s3.eu-central-1.amazonaws.com.
	Endpoint string `json:"endpoint,omitempty"`
	// Bucket receives the backups (it must exist).
	Bucket string `json:"bucket,omitempty"`
	// Prefix is prepended to the object names, e.g. "cp1/".
	Prefix string `json:"prefix,omitempty"`
	// Region of the bucket (default: us-east-1, or what the service says).
	Region string `json:"region,omitempty"`
	// AccessKeyID and SecretAccessKey: the credential s3_secret_access_key
	// overrides the secret.
	AccessKeyID     string `json:"access_key_id,omitempty"`
	SecretAccessKey string `json:"secret_access_key,omitempty"`
	// Insecure talks plain HTTP (a service on the mesh or loopback only).
	Insecure bool `json:"insecure,omitempty"`
}

// Configured reports whether an upload target is set.
func (s *S3) Configured() bool { return s != nil && s.Endpoint != "" }

// Validate checks the settings.
func (s *S3) Validate() error {
	if !s.Configured() {
		return nil
	}
	switch {
	case strings.Contains(s.Endpoint, "/"):
		return fmt.Errorf("s3 endpoint %q must be host[:port], without a scheme or path", s.Endpoint)
	case s.Bucket == "":
		return errors.New("s3 bucket is required")
	case s.AccessKeyID == "" || s.SecretAccessKey == "":
		return errors.New("s3 access_key_id and secret_access_key are required")
	case strings.Contains(s.Prefix, ".."):
		return fmt.Errorf("s3 prefix %q must not contain ..", s.Prefix)
	}
	return nil
}

func (s *S3) client() (*minio.Client, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return minio.New(s.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKeyID, s.SecretAccessKey, ""),
		Secure: !s.Insecure,
		Region: s.Region,
	})
}

// Upload copies the backup file at p to the bucket as <prefix><name>.
func (s *S3) Upload(ctx context.Context, p string) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	_, err = c.FPutObject(ctx, s.Bucket, s.Prefix+filepath.Base(p), p, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("uploading %s to s3://%s/%s: %w", filepath.Base(p), s.Bucket, s.Prefix, err)
	}
	return nil
}

// List returns the backups in the bucket, newest first (Path is
// s3://bucket/key).
func (s *S3) List(ctx context.Context) ([]Info, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	var out []Info
	for obj := range c.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: s.Prefix}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", s.Bucket, s.Prefix, obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, s.Prefix)
		ts, ok := parseName(name)
		if !ok || strings.Contains(name, "/") {
			continue
		}
		out = append(out, Info{Path: "s3://" + s.Bucket + "/" + obj.Key, Name: name, Size: obj.Size, Time: ts})
	}
	slices.SortFunc(out, func(a, b Info) int { return b.Time.Compare(a.Time) })
	return out, nil
}

// Download fetches backup name into dir (mode 0600) and returns its path.
func (s *S3) Download(ctx context.Context, name, dir string) (string, error) {
	if _, ok := parseName(name); !ok || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("%q is not a backup name (wisehosting-<time>%s)", name, Ext)
	}
	c, err := s.client()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, name)
	if err := c.FGetObject(ctx, s.Bucket, s.Prefix+name, dst, minio.GetObjectOptions{}); err != nil {
		return "", fmt.Errorf("downloading s3://%s/%s%s: %w", s.Bucket, s.Prefix, name, err)
	}
	return dst, os.Chmod(dst, 0o600)
}

func (s *S3) remove(ctx context.Context, name string) error {
	c, err := s.client()
	if err != nil {
		return err
	}
	return c.RemoveObject(ctx, s.Bucket, s.Prefix+name, minio.RemoveObjectOptions{})
}

// Retention says which backups to keep: the Keep newest (0: no count
// limit) that are younger than MaxAge (0: no age limit). The newest backup
// is always kept.
type Retention struct {
	Keep   int           `json:"keep,omitempty"`
	MaxAge time.Duration `json:"max_age,omitempty"`
}

// expired returns the backups of list (newest first) retention drops.
func (r Retention) expired(list []Info, now time.Time) []Info {
	var out []Info
	for i, b := range list {
		if i == 0 {
			continue
		}
		if (r.Keep > 0 && i >= r.Keep) || (r.MaxAge > 0 && now.Sub(b.Time) > r.MaxAge) {
			out = append(out, b)
		}
	}
	return out
}

// Prune applies retention to the backups in dir and, when set, in the
// bucket, and returns what it removed.
func Prune(ctx context.Context, dir string, s3 *S3, r Retention, now time.Time) ([]string, error) {
	if r.Keep <= 0 && r.MaxAge <= 0 {
		return nil, nil
	}
	var removed []string
	local, err := List(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, b := range r.expired(local, now) {
		if err := os.Remove(b.Path); err != nil {
			return removed, err
		}
		removed = append(removed, b.Path)
	}
	if s3.Configured() {
		remote, err := s3.List(ctx)
		if err != nil {
			return removed, err
		}
		for _, b := range r.expired(remote, now) {
			if err := s3.remove(ctx, b.Name); err != nil {
				return removed, fmt.Errorf("removing %s: %w", b.Path, err)
			}
			removed = append(removed, b.Path)
		}
	}
	return removed, nil
}

// parseName reads the time out of wisehosting-<UTC time>.whbackup.
func parseName(name string) (time.Time, bool) {
	base := path.Base(name)
	if base != name || !strings.HasPrefix(name, "wisehosting-") || !strings.HasSuffix(name, Ext) {
		return time.Time{}, false
	}
	ts, err := time.Parse("20060102T150405Z", strings.TrimSuffix(strings.TrimPrefix(name, "wisehosting-"), Ext))
	return ts, err == nil
}

// NameOf is the backup name of a path, an s3:// address or a name.
func NameOf(p string) string { return path.Base(filepath.ToSlash(p)) }
