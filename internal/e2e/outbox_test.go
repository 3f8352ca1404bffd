package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// hookReceiver is a team's webhook endpoint. Until opened it holds every
// request without answering (a slow endpoint), so the control plane has
// committed events it has not delivered; a request whose sender died is
// not counted. Once open it answers 200 and records what it acknowledged.
type hookReceiver struct {
	srv  *httptest.Server
	open chan struct{}
	mu   sync.Mutex
	got  []hookDelivery
	held int
}

type hookDelivery struct {
	msgID string
	event struct {
		Type string `json:"type"`
		Data struct {
			AppID    int64  `json:"app_id"`
			Hostname string `json:"hostname"`
		} `json:"data"`
	}
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{open: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		select {
		case <-h.open:
		default:
			h.mu.Lock()
			h.held++
			h.mu.Unlock()
			select {
			case <-h.open:
			case <-r.Context().Done():
				return // the sender is gone: nothing was delivered
			}
		}
		d := hookDelivery{msgID: r.Header.Get("webhook-id")}
		if err := json.Unmarshal(body, &d.event); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, d)
		h.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() {
		select {
		case <-h.open:
		default:
			close(h.open)
		}
		h.srv.Close()
	})
	return h
}

// TestEventsSurviveAKill: changes made through the API commit their
// events; the control plane is killed (SIGKILL) while their deliveries are
// held by a slow endpoint or not yet made. After a restart every event
// reaches the endpoint exactly once, each app's in the order of its
// changes.
func TestEventsSurviveAKill(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	work := t.TempDir()
	rcv := newHookReceiver(t)
	addr := freeAddr(t)
	cfgFile := filepath.Join(work, "cp.Caddyfile")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`{
	admin off
	wisehosting_webhooks {
		allow_networks 127.0.0.1/32
		timeout 3s
	}
	wisehosting {
		database_url %s
		secret %s
		proxy_token %s
		subdomain_base apps.test
		admin_email owner@acme.test
		allow_local_git on
	}
}
http://%s {
	route {
		wisehosting_api
		wisehosting_dashboard {
			insecure_cookie
		}
	}
}
`, db.URL, secret, proxyToken, addr)), 0o600)
	startCP := func() *proc {
		p := startProc(t, "cp", work, nil, bins.cp, "run", "--config", cfgFile, "--adapter", "caddyfile")
		waitListen(t, p, addr)
		return p
	}
	cp := startCP()

	api, team := signInOwner(t, cp.log, addr)
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	commit(t, repo, "<h1>one</h1>\n")
	api.call("POST", fmt.Sprintf("/api/teams/%d/webhooks", team), map[string]any{"url": rcv.srv.URL + "/hook",
		"events": []string{"domain.added", "domain.removed"}}, 201)
	apps := map[int64]string{}
	var ids []int64
	for _, slug := range []string{"shop", "blog"} {
		created := api.call("POST", fmt.Sprintf("/api/teams/%d/apps", team), map[string]any{"name": slug, "slug": slug,
			"git_repo": repo, "git_branch": "main", "cpu_millis": 100, "memory_mb": 64}, 201)
		id := int64(created["id"].(float64))
		apps[id] = slug
		ids = append(ids, id)
	}

	// The changes, interleaved between the apps: four domains added to
	// each, then the first one removed.
	want := map[int64][]string{}
	firstDomain := map[int64]int64{}
	for i := range 4 {
		for _, id := range ids {
			host := fmt.Sprintf("d%d.%s.customer.test", i, apps[id])
			d := api.call("POST", fmt.Sprintf("/api/apps/%d/domains", id), map[string]any{"hostname": host}, 201)
			if i == 0 {
				firstDomain[id] = int64(d["id"].(float64))
			}
			want[id] = append(want[id], "domain.added "+host)
		}
	}
	for _, id := range ids {
		api.call("DELETE", fmt.Sprintf("/api/apps/%d/domains/%d", id, firstDomain[id]), nil, 200)
		want[id] = append(want[id], fmt.Sprintf("domain.removed d0.%s.customer.test", apps[id]))
	}
	// Killed right after the last change's commit.
	syscall.Kill(-cp.cmd.Process.Pid, syscall.SIGKILL)
	<-cp.done

	var events, undispatched, delivered int
	db.Pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE dispatched_at IS NULL) FROM event_outbox WHERE kind LIKE 'domain.%'").Scan(&events, &undispatched)
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM webhook_deliveries WHERE state = 'succeeded'").Scan(&delivered)
	rcv.mu.Lock()
	held := rcv.held
	rcv.mu.Unlock()
	t.Logf("at the kill: %d events committed, %d not yet relayed, %d requests held by the endpoint, %d delivered", events, undispatched, held, delivered)
	if events != 10 || delivered != 0 {
		t.Fatalf("at the kill: %d events (want 10), %d delivered (want 0)", events, delivered)
	}

	close(rcv.open)
	startCP()
	waitFor(t, "every delivery to succeed", 120*time.Second, func() bool {
		var total, done int
		db.Pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded') FROM webhook_deliveries").Scan(&total, &done)
		return total == 10 && done == 10
	})
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	seen := map[string]bool{}
	got := map[int64][]string{}
	for _, d := range rcv.got {
		if seen[d.msgID] {
			t.Errorf("message %s delivered twice", d.msgID)
		}
		seen[d.msgID] = true
		got[d.event.Data.AppID] = append(got[d.event.Data.AppID], d.event.Type+" "+d.event.Data.Hostname)
	}
	if len(rcv.got) != 10 {
		t.Errorf("%d deliveries acknowledged, want 10", len(rcv.got))
	}
	for _, id := range ids {
		if strings.Join(got[id], ", ") != strings.Join(want[id], ", ") {
			t.Errorf("%s received\n  %s\nwant\n  %s", apps[id], strings.Join(got[id], ", "), strings.Join(want[id], ", "))
		}
	}
}
