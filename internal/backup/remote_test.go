package backup

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// fakeS3 is a loopback S3 stand-in (gofakes3 speaks the S3 wire format)
// with one bucket.
func fakeS3(t *testing.T, bucket string) *S3 {
	t.Helper()
	be := s3mem.New()
	if err := be.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(srv.Close)
	return &S3{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: bucket, Prefix: "cp1/", Region: "us-east-1",
		AccessKeyID: "AKIDTEST", SecretAccessKey: "secret-test-key", Insecure: true}
}

// Uploaded backups are listed from the bucket and come back byte for byte;
// retention keeps the newest N younger than the maximum age, locally and
// in the bucket, and always the newest.
func TestS3CopiesAndRetention(t *testing.T) {
	ctx := context.Background()
	s3 := fakeS3(t, "wh-backups")
	dir := t.TempDir()
	day := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	var names []string
	for i := 0; i < 5; i++ {
		name := "wisehosting-" + day.Add(time.Duration(i)*24*time.Hour).Format("20060102T150405Z") + Ext
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(header+"sealed-"+name), 0o600)
		if err := s3.Upload(ctx, p); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	list, err := s3.List(ctx)
	if err != nil || len(list) != 5 || list[0].Name != names[4] || list[0].Path != "s3://wh-backups/cp1/"+names[4] {
		t.Fatalf("list %+v %v", list, err)
	}
	got, err := s3.Download(ctx, names[2], t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); string(b) != header+"sealed-"+names[2] {
		t.Fatalf("downloaded %q", b)
	}
	if _, err := s3.Download(ctx, "../etc/passwd", t.TempDir()); err == nil {
		t.Fatal("a name with a path was fetched")
	}

	now := day.Add(4*24*time.Hour + time.Hour)
	// Keep 3: the two oldest go.
	removed, err := Prune(ctx, dir, s3, Retention{Keep: 3}, now)
	if err != nil || len(removed) != 4 {
		t.Fatalf("removed %v %v", removed, err)
	}
	// Max age 36h: of the three left, the oldest (3 days) goes.
	if _, err := Prune(ctx, dir, s3, Retention{MaxAge: 36 * time.Hour}, now); err != nil {
		t.Fatal(err)
	}
	local, _ := List(dir)
	remote, _ := s3.List(ctx)
	for _, l := range [][]Info{local, remote} {
		var n []string
		for _, b := range l {
			n = append(n, b.Name)
		}
		if !slices.Equal(n, []string{names[4], names[3]}) {
			t.Fatalf("kept %v", n)
		}
	}
	// However old, the newest stays.
	if _, err := Prune(ctx, dir, s3, Retention{MaxAge: time.Hour}, now.Add(100*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if remote, _ := s3.List(ctx); len(remote) != 1 || remote[0].Name != names[4] {
		t.Fatalf("newest not kept: %+v", remote)
	}
}
