package dashboard_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The dashboard's scripts are ES modules without a build step, typed with
// JSDoc and checked by TypeScript (jsconfig.json): a missing import, an
// unknown name or a wrong property fails here rather than in a browser.
func TestDashboardScriptsTypeCheck(t *testing.T) {
	tsc := "browsertest/node_modules/typescript/bin/tsc"
	if _, err := os.Stat(tsc); err != nil {
		t.Fatal("typescript is not installed: npm ci --prefix caddymodules/dashboard/browsertest (scripts/ci-deps.sh does it)")
	}
	files, _ := filepath.Glob("ui/*.js")
	if len(files) < 8 {
		t.Fatalf("scripts: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "// @ts-check\n") {
			t.Errorf("%s does not start with // @ts-check", f)
		}
	}
	if out, err := exec.Command("node", tsc, "-p", "jsconfig.json").CombinedOutput(); err != nil {
		t.Fatalf("type check of ui/*.js: %v\n%s", err, out)
	}
	html, err := os.ReadFile("ui/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), `<script type="module" src="/app.js"></script>`) {
		t.Fatal("index.html does not load app.js as a module")
	}
}
