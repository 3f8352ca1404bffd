package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// waitHealthy waits for base/health to answer 200 while the process runs.
func waitHealthy(t *testing.T, base string, done chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("control plane exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /health 200 within 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A backup taken from a running control plane with the CLI, restored with
// the CLI into a new empty database, brings back the account, the app and
// its variables: a control plane started on it with the same master
// secret serves them.
func TestBackupRestoreJourney(t *testing.T) {
	db := pgtest.NewEmpty(t, false)
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	site := addr()
	_, out, done := startExample(t, db.URL, 16, "http://"+site, addr(), addr(), plainHTTPSite)
	base := "http://" + site
	waitHealthy(t, base, done)
	client := &http.Client{Timeout: 10 * time.Second}
	sess, team := firstAdmin(t, client, base, out)
	var app struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal(sess.do(t, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Kept", "slug": "kept", "port": 8080}, 201), &app)
	sess.do(t, "PUT", fmt.Sprintf("/api/apps/%d/env/DB_PASSWORD", app.ID), map[string]any{"value": "hunter2-but-longer"}, 200)

	dir := t.TempDir()
	cli := func(dbURL string, args ...string) string {
		t.Helper()
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(os.Environ(), "WISEHOSTING_DATABASE_URL="+dbURL, "WISEHOSTING_SECRET="+loadSecret)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("wisehosting %v: %v\n%s", args, err, b)
		}
		return strings.TrimSpace(string(b))
	}
	cli(db.URL, "backup", "create", "--dir", dir)
	list := cli(db.URL, "backup", "list", "--dir", dir)
	file := regexp.MustCompile(`\S+\.whbackup`).FindString(list)
	if file == "" {
		t.Fatalf("backup list: %s", list)
	}

	fresh := pgtest.NewEmpty(t, false)
	cli(fresh.URL, "backup", "restore", file, "--dir", dir)

	site2 := addr()
	_, _, done2 := startExample(t, fresh.URL, 16, "http://"+site2, addr(), addr(), plainHTTPSite)
	base2 := "http://" + site2
	waitHealthy(t, base2, done2)
	s2 := login(t, client, base2, "ops@example.com", "a long new passphrase")
	var got struct {
		Slug string `json:"slug"`
	}
	json.Unmarshal(s2.do(t, "GET", fmt.Sprintf("/api/apps/%d", app.ID), nil, 200), &got)
	if got.Slug != "kept" {
		t.Fatalf("restored app %+v", got)
	}
	if env := string(s2.do(t, "GET", fmt.Sprintf("/api/apps/%d/env", app.ID), nil, 200)); !strings.Contains(env, "DB_PASSWORD") {
		t.Fatalf("restored variables: %s", env)
	}
}

// The same journey through S3-compatible storage (a loopback stand-in
// speaking the S3 wire format): the backup is copied to the bucket, the
// host and its backup directory are lost, and the backup listed from the
// bucket restores the control plane into a new empty database.
func TestBackupRestoreFromS3Journey(t *testing.T) {
	be := s3mem.New()
	if err := be.CreateBucket("wh-backups"); err != nil {
		t.Fatal(err)
	}
	s3srv := httptest.NewServer(gofakes3.New(be).Server())
	defer s3srv.Close()
	s3env := []string{"WISEHOSTING_BACKUP_S3_ENDPOINT=" + strings.TrimPrefix(s3srv.URL, "http://"), "WISEHOSTING_BACKUP_S3_BUCKET=wh-backups",
		"WISEHOSTING_BACKUP_S3_PREFIX=cp1/", "WISEHOSTING_BACKUP_S3_ACCESS_KEY_ID=AKIDTEST", "WISEHOSTING_BACKUP_S3_SECRET_ACCESS_KEY=secret-test-key",
		"WISEHOSTING_BACKUP_S3_INSECURE=1", "WISEHOSTING_BACKUP_S3_REGION=us-east-1"}

	db := pgtest.NewEmpty(t, false)
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	site := addr()
	_, out, done := startExample(t, db.URL, 16, "http://"+site, addr(), addr(), plainHTTPSite)
	base := "http://" + site
	waitHealthy(t, base, done)
	client := &http.Client{Timeout: 10 * time.Second}
	sess, team := firstAdmin(t, client, base, out)
	var app struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal(sess.do(t, "POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": "Kept", "slug": "kept", "port": 8080}, 201), &app)
	sess.do(t, "PUT", fmt.Sprintf("/api/apps/%d/env/DB_PASSWORD", app.ID), map[string]any{"value": "hunter2-but-longer"}, 200)

	cli := func(dbURL, dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(binPath, append(args, "--dir", dir)...)
		cmd.Env = append(append(os.Environ(), "WISEHOSTING_DATABASE_URL="+dbURL, "WISEHOSTING_SECRET="+loadSecret), s3env...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("wisehosting %v: %v\n%s", args, err, b)
		}
		return strings.TrimSpace(string(b))
	}
	lost := t.TempDir()
	if created := cli(db.URL, lost, "backup", "create"); !strings.Contains(created, "copied to s3://wh-backups/cp1/wisehosting-") {
		t.Fatalf("backup create: %s", created)
	}
	os.RemoveAll(lost) // the host is gone

	newHost := t.TempDir()
	list := cli(db.URL, newHost, "backup", "list")
	name := regexp.MustCompile(`wisehosting-\S+\.whbackup`).FindString(list)
	if name == "" || !strings.Contains(list, "s3://wh-backups/cp1/"+name) {
		t.Fatalf("backup list: %s", list)
	}
	fresh := pgtest.NewEmpty(t, false)
	cli(fresh.URL, newHost, "backup", "restore", name)

	site2 := addr()
	_, _, done2 := startExample(t, fresh.URL, 16, "http://"+site2, addr(), addr(), plainHTTPSite)
	base2 := "http://" + site2
	waitHealthy(t, base2, done2)
	s2 := login(t, client, base2, "ops@example.com", "a long new passphrase")
	var got struct {
		Slug string `json:"slug"`
	}
	json.Unmarshal(s2.do(t, "GET", fmt.Sprintf("/api/apps/%d", app.ID), nil, 200), &got)
	if got.Slug != "kept" {
		t.Fatalf("restored app %+v", got)
	}
	if env := string(s2.do(t, "GET", fmt.Sprintf("/api/apps/%d/env", app.ID), nil, 200)); !strings.Contains(env, "DB_PASSWORD") {
		t.Fatalf("restored variables: %s", env)
	}
}
