package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
)

// journey is a control plane and one worker agent (zone z.test) started
// from their binaries as an operator would, with the first owner signed
// in through the API and their team's id.
type journey struct {
	cpAddr, zoneAddr string
	api              *apiClient
	team             int64
}

// startJourney writes the control plane's Caddyfile (dashboard holds
// extra lines of its wisehosting_dashboard block), adds the worker with
// the CLI and starts its agent on svc with agentArgs added.
func startJourney(t *testing.T, work, dbURL string, svc *podmantest.Service, dashboard string, agentArgs ...string) *journey {
	t.Helper()
	j := &journey{cpAddr: freeAddr(t), zoneAddr: freeAddr(t)}
	cpFile := filepath.Join(work, "cp.Caddyfile")
	os.WriteFile(cpFile, []byte(fmt.Sprintf(`{
	admin off
	wisehosting_scheduler {
		poll_interval 200ms
	}
	wisehosting {
		database_url %s
		secret %s
		proxy_token %s
		subdomain_base apps.test
		public_url http://%s
		admin_email owner@acme.test
	}
}
http://%s {
	route {
		wisehosting_hub
		wisehosting_api
		wisehosting_dashboard {
			insecure_cookie
%s
		}
	}
}
`, dbURL, secret, proxyToken, j.cpAddr, j.cpAddr, dashboard)), 0o600)
	cp := startProc(t, "cp", work, nil, bins.cp, "run", "--config", cpFile, "--adapter", "caddyfile")
	waitListen(t, cp, j.cpAddr)
	key := addWorker(t, cpFile, "w1", "z.test", "127.0.0.1")
	agent := startProc(t, "agent", work, []string{"WISEHOSTING_WORKER_KEY=" + key}, append([]string{bins.agent,
		"-cp", "http://" + j.cpAddr, "-mesh-ip", "127.0.0.1", "-zone", "z.test", "-zone-listen", j.zoneAddr,
		"-podman", svc.URL, "-work-dir", work}, agentArgs...)...)
	waitListen(t, agent, j.zoneAddr)

	j.api, j.team = signInOwner(t, cp.log, j.cpAddr)
	return j
}
