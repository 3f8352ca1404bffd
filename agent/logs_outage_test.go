//go:build remote && containers_image_openpgp

package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wisehosting/wisehosting/agent"
	"github.com/wisehosting/wisehosting/agent/runtime/podmantest"
	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// Runtime log lines produced while the control plane cannot reach its
// database are all stored once it can again: the control plane
// acknowledges a batch only after COPY commits, and the agent keeps (past
// its small memory bound: on disk) and resends what was not acknowledged.
// Lines with a NUL byte or half a character arrive cleaned.
func TestRuntimeLogsSurviveDatabaseOutage(t *testing.T) {
	const ticks = 400
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte("FROM "+podmantest.BaseImage+"\nCOPY index.html /srv/index.html\n"+
		`CMD ["sh", "-c", "httpd -p 8080 -h /srv; printf 'nul\\000byte\\n'; printf 'half a euro \\342\\202\\n'; i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo tick $i; sleep 0.05; done; sleep 3600"]`+"\n"), 0o644)
	commitSite(t, repo, "<h1>chatty</h1>\n")
	breaker := pgtest.NewBreaker(t)
	e := setup(t, repo, func(db *pgtest.DB) map[string]any { return map[string]any{"database_url": breaker.URL(db)} })
	spool := t.TempDir()
	logger := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	e.startAgent(logger, func(c *agent.Config) {
		c.LogSpoolDir = spool
		c.LogMemoryLines = 40
	})
	e.waitDeployment(e.deploy(""))

	ctx := context.Background()
	count := func() (all, distinct int) {
		e.db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT line) FROM runtime_logs WHERE app_id = $1 AND line LIKE 'tick %'`,
			e.app.ID).Scan(&all, &distinct)
		return
	}
	waitFor(t, "first lines stored", 30*time.Second, func() bool { n, _ := count(); return n > 0 })

	breaker.Cut()
	cutAt := time.Now()
	before, _ := count()
	// Lines go on being produced; the agent holds them, beyond 40 lines on disk.
	waitFor(t, "log lines spooled to disk", 30*time.Second, func() bool {
		entries, _ := os.ReadDir(spool)
		return len(entries) > 0
	})
	time.Sleep(3 * time.Second)
	during, _ := count()
	breaker.Restore()
	if during != before {
		t.Fatalf("%d lines stored while the database was unreachable (outage not real)", during-before)
	}
	t.Logf("outage of %s: %d tick lines stored before it", time.Since(cutAt).Round(100*time.Millisecond), before)

	deadline := time.Now().Add(60 * time.Second)
	for _, d := count(); d != ticks; _, d = count() {
		if time.Now().After(deadline) {
			var missing []int
			rows, _ := e.db.Pool.Query(ctx, `SELECT i FROM generate_series(1, $2) i WHERE NOT EXISTS
				(SELECT 1 FROM runtime_logs WHERE app_id = $1 AND line = 'tick '||i)`, e.app.ID, ticks)
			for rows.Next() {
				var i int
				rows.Scan(&i)
				missing = append(missing, i)
			}
			rows.Close()
			t.Fatalf("%d of %d lines stored; missing %v", d, ticks, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // any duplicate would arrive with the last batches
	all, distinct := count()
	t.Logf("after the outage: %d lines stored, %d distinct, of %d produced", all, distinct, ticks)
	if all != ticks || distinct != ticks {
		t.Fatalf("stored %d lines (%d distinct), produced %d", all, distinct, ticks)
	}
	var nul, euro int
	e.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE line = 'nulbyte'), count(*) FILTER (WHERE line = 'half a euro '||chr(65533))
		FROM runtime_logs WHERE app_id = $1`, e.app.ID).Scan(&nul, &euro)
	if nul != 1 || euro != 1 {
		t.Fatalf("cleaned lines: nul %d, euro %d", nul, euro)
	}
	waitFor(t, "spool emptied", 10*time.Second, func() bool {
		batches, _ := filepath.Glob(filepath.Join(spool, "*.logs"))
		return len(batches) == 0
	})
}
