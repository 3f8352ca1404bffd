package main_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wisehosting/wisehosting/internal/pgtest"
)

// cli runs the binary in dir with env and returns stdout, stderr and the
// exit code.
func cli(t *testing.T, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// The operator's CLI speaks of WiseHosting, finds the dev database in a
// checkout, answers with sentences and tells usage errors (2) from
// failures (1); `user add` and `user reset-password` hand out one-time
// passwords that must be replaced at the next sign-in.
func TestOperatorCLI(t *testing.T) {
	db := pgtest.New(t)
	dir := t.TempDir()

	out, _, code := cli(t, dir, nil, "version")
	if code != 0 || !regexp.MustCompile(`^WiseHosting \S+ \(Caddy v2\.`).MatchString(out) {
		t.Fatalf("version: %d %q", code, out)
	}
	out, _, code = cli(t, dir, nil, "help")
	iWorker, iRun := strings.Index(out, "  worker"), strings.Index(out, "  run")
	if code != 0 || !strings.HasPrefix(out, "WiseHosting") || !strings.Contains(out, "  user") || iWorker < 0 || iRun < iWorker {
		t.Fatalf("help: %d\n%s", code, out)
	}

	// A dev checkout: .data/dev.env holds the database.
	os.MkdirAll(filepath.Join(dir, ".data"), 0o700)
	os.WriteFile(filepath.Join(dir, ".data/dev.env"), []byte("WISEHOSTING_SECRET=0123456789abcdef0123456789abcdef\nWISEHOSTING_DATABASE_URL="+db.URL+"\n"), 0o600)
	sub := filepath.Join(dir, "scripts")
	os.MkdirAll(sub, 0o700)
	if out, errs, code := cli(t, sub, nil, "worker", "add", "w1", "--zone", "localhost", "--wg-ip", "127.0.0.1"); code != 0 || !strings.Contains(out, "whk_") {
		t.Fatalf("worker add from the checkout: %d %s %s", code, out, errs)
	}
	_, errs, code := cli(t, dir, nil, "worker", "add", "w1")
	if code != 1 || errs != "wisehosting worker: a worker named w1 already exists\n" {
		t.Fatalf("duplicate worker: %d %q", code, errs)
	}
	_, errs, code = cli(t, dir, nil, "worker")
	if code != 2 || !strings.HasPrefix(errs, "wisehosting worker: ") || !strings.Contains(errs, "usage: wisehosting worker add") || strings.Contains(errs, `"level"`) {
		t.Fatalf("usage error: %d %q", code, errs)
	}

	if out, errs, code := cli(t, dir, nil, "migrate", "status"); code != 0 || !strings.HasPrefix(out, "schema version") {
		t.Fatalf("migrate status: %d %s %s", code, out, errs)
	}
	if _, _, code := cli(t, dir, nil, "migrate", "sideways"); code != 2 {
		t.Fatalf("migrate sideways: exit %d", code)
	}
	for _, args := range [][]string{{"infra", "sideways"}, {"dns", "sideways"}, {"backup", "sideways"}} {
		_, errs, code := cli(t, dir, nil, args...)
		if code != 2 || !strings.HasPrefix(errs, "wisehosting "+args[0]+": expected ") || !strings.Contains(errs, "usage: wisehosting "+args[0]) || strings.Contains(errs, `"level"`) {
			t.Fatalf("%v: %d %q", args, code, errs)
		}
	}

	// A wrong option is a sentence and the usage, exit 2 (not cobra's
	// "Error: …", exit 1); help and usage lines name this binary.
	_, errs, code = cli(t, dir, nil, "volume", "add", "web", "data", "/data", "-5")
	if code != 2 || errs != "wisehosting volume: -5 is not accepted: the numbers given here are never negative\n"+
		"usage: wisehosting volume list [--worker <name>] | add <app> <name> <mount-path> <size-mb> [--per-instance]  [--config <path>]\n" {
		t.Fatalf("negative size: %d %q", code, errs)
	}
	if _, errs, code = cli(t, dir, nil, "app", "scale", "web", "2", "--max-surge", "x"); code != 2 ||
		!strings.HasPrefix(errs, "wisehosting app: --max-surge takes a whole number, not \"x\"\nusage: wisehosting app scale") {
		t.Fatalf("bad --max-surge: %d %q", code, errs)
	}
	if out, _, code = cli(t, dir, nil, "help", "volume"); code != 0 || !strings.Contains(out, "\n  wisehosting volume list") || strings.Contains(out, "caddy volume") {
		t.Fatalf("help volume: %d\n%s", code, out)
	}

	if out, _, code = cli(t, dir, nil, "help", "app"); code != 0 || strings.Count(out, "(default: unchanged)") != 2 || strings.Contains(out, "(default -1)") {
		t.Fatalf("help app: %d\n%s", code, out)
	}

	// `volume add` is audited as the API's volume.create is, by the
	// operator's command.
	var team int64
	db.Pool.QueryRow(t.Context(), "INSERT INTO teams (name, slug) VALUES ('t', 't') RETURNING id").Scan(&team)
	db.Pool.Exec(t.Context(), "INSERT INTO apps (team_id, slug, name) VALUES ($1, 'web', 'Web')", team)
	if out, errs, code := cli(t, dir, nil, "volume", "add", "web", "data", "/data", "10"); code != 0 || !strings.Contains(out, "app web mounts volume data") {
		t.Fatalf("volume add: %d %s %s", code, out, errs)
	}
	var by string
	if err := db.Pool.QueryRow(t.Context(), "SELECT details->>'by' FROM audit_events WHERE team_id = $1 AND action = 'volume.create' AND target = 'web' AND user_id IS NULL", team).Scan(&by); err != nil || by != "operator command" {
		t.Fatalf("volume add audit record: %q %v", by, err)
	}
	if _, errs, code = cli(t, dir, nil, "app", "restart", "web"); code != 1 || !strings.Contains(errs, "only a running app restarts") {
		t.Fatalf("restart of a new app: %d %q", code, errs)
	}

	out, errs, code = cli(t, dir, nil, "user", "add", "ops@example.test", "--admin")
	pw := regexp.MustCompile(`(?m)^  (\S{15,})$`).FindStringSubmatch(out)
	if code != 0 || pw == nil {
		t.Fatalf("user add: %d %s %s", code, out, errs)
	}
	var admin, must bool
	db.Pool.QueryRow(t.Context(), "SELECT is_admin, must_change_password FROM users WHERE email = 'ops@example.test'").Scan(&admin, &must)
	if !admin || !must {
		t.Fatalf("added account: admin %v, must change password %v", admin, must)
	}
	if _, errs, code = cli(t, dir, nil, "user", "add", "OPS@example.test"); code != 1 || !strings.Contains(errs, "an account for ops@example.test already exists") {
		t.Fatalf("duplicate user: %d %q", code, errs)
	}
	if _, errs, code = cli(t, dir, nil, "user", "add", "not an address"); code != 1 || !strings.Contains(errs, "is not an e-mail address") {
		t.Fatalf("bad address: %d %q", code, errs)
	}
	if _, _, code = cli(t, dir, nil, "user", "add"); code != 2 {
		t.Fatalf("user add without e-mail: exit %d", code)
	}
	out, _, code = cli(t, dir, nil, "user", "reset-password", "ops@example.test")
	pw2 := regexp.MustCompile(`(?m)^  (\S{15,})$`).FindStringSubmatch(out)
	if code != 0 || pw2 == nil || pw2[1] == pw[1] {
		t.Fatalf("reset-password: %d %s", code, out)
	}
	if _, errs, code = cli(t, dir, nil, "user", "reset-password", "nobody@example.test"); code != 1 || !strings.Contains(errs, "there is no account for nobody@example.test") {
		t.Fatalf("reset of an unknown account: %d %q", code, errs)
	}
}
