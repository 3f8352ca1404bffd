package backups_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/backup"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

func TestCaddyfile(t *testing.T) {
	in := `{
	wisehosting_backup {
		every 24h
		dir /var/lib/wisehosting/backups
		keep 14
		max_age 30d
		s3 {
			endpoint s3.eu-central-1.amazonaws.com
			bucket wh-backups
			prefix cp1/
			region eu-central-1
			access_key_id AKIDTEST
			insecure
		}
	}
}
`
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	json.Unmarshal(out, &cfg)
	want := `{"every":86400000000000,"dir":"/var/lib/wisehosting/backups","keep":14,"max_age":2592000000000000,"s3":{"endpoint":"s3.eu-central-1.amazonaws.com","bucket":"wh-backups","prefix":"cp1/","region":"eu-central-1","access_key_id":"AKIDTEST","insecure":true}}`
	if got := string(cfg.Apps["wisehosting_backup"]); got != want {
		t.Fatalf("adapted:\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []string{"keep 0", "every soon", "colour blue"} {
		if _, _, err := (caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}).Adapt([]byte(strings.Replace(in, "keep 14", bad, 1)), nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The control plane takes backups on its schedule, copies them to S3 and
// keeps only the newest ones.
func TestScheduledBackupsToS3WithRetention(t *testing.T) {
	be := s3mem.New()
	be.CreateBucket("wh-backups")
	srv := httptest.NewServer(gofakes3.New(be).Server())
	defer srv.Close()
	s3 := &backup.S3{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "wh-backups", Prefix: "cp1/", Region: "us-east-1",
		AccessKeyID: "AKIDTEST", SecretAccessKey: "secret-test-key", Insecure: true}
	dir := t.TempDir()
	db := pgtest.New(t)
	cptest.Start(t, db, cptest.Options{Apps: map[string]any{"wisehosting_backup": map[string]any{
		"every": "2s", "dir": dir, "keep": 2, "s3": s3}}})

	ctx := context.Background()
	var first string
	deadline := time.Now().Add(90 * time.Second)
	for {
		list, _ := s3.List(ctx)
		if first == "" && len(list) > 0 {
			first = list[len(list)-1].Name
		}
		// Three or more taken, two kept: the first one is gone.
		if len(list) == 2 && first != "" && list[1].Name != first {
			local, _ := backup.List(dir)
			if len(local) != 2 || local[0].Name != list[0].Name {
				t.Fatalf("local %+v, s3 %+v", local, list)
			}
			if st, _ := os.Stat(local[0].Path); st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v", st.Mode())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retention after 90s: s3 %+v (first %s)", list, first)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
