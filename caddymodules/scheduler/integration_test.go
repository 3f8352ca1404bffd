package scheduler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wisehosting/wisehosting/agent/transport"
	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/caddymodules/cptest"
	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/pgtest"
	"github.com/wisehosting/wisehosting/internal/workers"
	"github.com/wisehosting/wisehosting/internal/wsproto"
)

// A signed GitHub push reaches the control plane, becomes a deployment and
// a job, the scheduler places it on the one connected worker (a real agent
// transport over the real hub), the worker receives the decrypted env,
// reports progress and success, and the app is running on that worker.
func TestPushToRunningAppThroughHubAndScheduler(t *testing.T) {
	db := pgtest.New(t)
	cp := cptest.Start(t, db, cptest.Options{Apps: map[string]any{
		"wisehosting_scheduler": map[string]any{"poll_interval": "200ms", "resend_interval": "1s"},
	}})
	ctx := context.Background()
	a, _ := caddy.ActiveContext().App(core.AppName)
	wh := a.(*core.App)

	var team, appID int64
	db.Pool.QueryRow(ctx, "INSERT INTO teams (name, slug) VALUES ('acme', 'acme') RETURNING id").Scan(&team)
	db.Pool.QueryRow(ctx, `INSERT INTO apps (team_id, slug, name, git_repo, git_branch, git_provider, port)
		VALUES ($1, 'site', 'site', 'https://github.com/baxterthehacker/public-repo.git', 'main', 'github', 8080) RETURNING id`, team).Scan(&appID)
	if err := deploys.SetEnv(ctx, db.Pool, wh.Keyring(), appID, "API_KEY", "s3cr3t"); err != nil {
		t.Fatal(err)
	}
	hookSecret, err := deploys.HookSecret(ctx, db.Pool, wh.Keyring(), appID, true)
	if err != nil {
		t.Fatal(err)
	}

	w, key, _ := workers.Add(ctx, db.Pool, cptest.Keyring(t), "w1", "", "127.0.0.1")
	agent, err := transport.New(transport.Config{URL: cp.URL, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan wsproto.DeployPayload, 1)
	agent.SetHello(func() wsproto.Hello {
		return wsproto.Hello{Version: "test", CPUMillis: 2000, MemoryMB: 2048, MaxJobs: 2}
	})
	agent.Handle(wsproto.TypeJobAssign, func(ctx context.Context, p json.RawMessage) error {
		var ja wsproto.JobAssign
		json.Unmarshal(p, &ja)
		var dp wsproto.DeployPayload
		json.Unmarshal(ja.Payload, &dp)
		agent.Send(ctx, wsproto.TypeJobAck, wsproto.JobAck{JobID: ja.JobID})
		agent.Send(ctx, wsproto.TypeJobProgress, wsproto.JobProgress{JobID: ja.JobID, Stage: "clone", Message: "cloning"})
		agent.Send(ctx, wsproto.TypeJobProgress, wsproto.JobProgress{JobID: ja.JobID, Stage: "build", Message: "building " + dp.Commit})
		agent.Send(ctx, wsproto.TypeJobProgress, wsproto.JobProgress{JobID: ja.JobID, Stage: "start", Message: "starting"})
		agent.Send(ctx, wsproto.TypeJobResult, wsproto.JobResult{JobID: ja.JobID, OK: true, Output: json.RawMessage(`{"image":"localhost/wh/site:1","host_port":31000}`)})
		got <- dp
		return nil
	})
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go agent.Run(actx)

	body, _ := os.ReadFile("../../internal/gitproviders/testdata/github_push.json")
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/hooks/github/%d", cp.URL, appID), bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "d-1")
	k, v := gitproviders.Sign("github", []byte(hookSecret), body)
	req.Header.Set(k, v)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}

	select {
	case dp := <-got:
		if dp.Env["API_KEY"] != "s3cr3t" || dp.Commit != "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" || dp.Slug != "site" {
			t.Fatalf("payload %+v", dp)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the job never reached the worker")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var status string
		var worker, port int64
		db.Pool.QueryRow(ctx, "SELECT status, COALESCE(worker_id, 0), host_port FROM apps WHERE id = $1", appID).Scan(&status, &worker, &port)
		if status == "running" && worker == w.ID && port == 31000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app %s on worker %d port %d", status, worker, port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var depStatus, image string
	var logs int
	db.Pool.QueryRow(ctx, "SELECT status, image FROM deployments WHERE app_id = $1", appID).Scan(&depStatus, &image)
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM deployment_logs l JOIN deployments d ON d.id = l.deployment_id WHERE d.app_id = $1 AND l.line LIKE '[build] building %'", appID).Scan(&logs)
	if depStatus != "succeeded" || image != "localhost/wh/site:1" || logs != 1 {
		t.Fatalf("deployment %s image %q build log lines %d", depStatus, image, logs)
	}
	// Three progress lines, one deployment.started event.
	var started int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM event_outbox WHERE app_id = $1 AND kind = 'deployment.started'", appID).Scan(&started)
	if started != 1 {
		t.Fatalf("%d deployment.started events for one deployment, want 1", started)
	}
	// The job row never held the secret.
	var stored string
	db.Pool.QueryRow(ctx, "SELECT payload::text FROM jobs WHERE app_id = $1", appID).Scan(&stored)
	if bytes.Contains([]byte(stored), []byte("s3cr3t")) {
		t.Fatal("env var value stored in the jobs table")
	}
}
