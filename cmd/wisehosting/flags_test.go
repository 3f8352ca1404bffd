package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// A wrong option of an operator command is a sentence naming it, with the
// command's usage; right ones, "--" and help pass through to the command.
func TestFlagError(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"volume", "add", "web", "data", "/data", "-5"}, "-5 is not accepted: the numbers given here are never negative"},
		{[]string{"app", "scale", "web", "-1"}, "-1 is not accepted: the numbers given here are never negative"},
		{[]string{"app", "scale", "web", "2", "--max-surge", "x"}, `--max-surge takes a whole number, not "x"`},
		{[]string{"app", "scale", "web", "2", "--max-surge"}, "--max-surge needs a value"},
		{[]string{"volume", "list", "--workers", "w1"}, "there is no option --workers"},
		{[]string{"volume", "add", "web", "data", "/data", "5", "--per-instance=maybe"}, `--per-instance takes true or false, not "maybe"`},
		{[]string{"worker", "add", "w1", "-q"}, "there is no option -q"},
	} {
		msg, usage, bad := flagError(c.args)
		if !bad || msg != c.msg || !strings.HasPrefix(usage, map[string]string{"volume": "list", "app": "scale", "worker": "add"}[c.args[0]]) {
			t.Errorf("%v: %v %q (usage %q), want %q", c.args, bad, msg, usage, c.msg)
		}
	}
	for _, ok := range [][]string{
		{"volume", "add", "web", "data", "/data", "5", "--per-instance"},
		{"volume", "list", "--worker", "w1", "--config", "x.Caddyfile"},
		{"app", "scale", "web", "3", "--max-unavailable", "-1"},
		{"app", "restart", "web", "-h"},
		{"migrate", "force", "--", "-1"},
		{"run", "--bogus"}, // Caddy's own commands keep Caddy's handling
		{"volume"},
	} {
		if msg, _, bad := flagError(ok); bad {
			t.Errorf("%v: refused: %s", ok, msg)
		}
	}
}

// `wisehosting help` lists every operator command the README documents
// under the operator commands, not among Caddy's.
func TestHelpListsOperatorCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	help(&out)
	mine, _, ok := strings.Cut(out.String(), "Caddy's commands")
	if !ok {
		t.Fatalf("help:\n%s", out.String())
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `wisehosting ([a-z-]+)").FindAllStringSubmatch(string(readme), -1) {
		name := m[1]
		if seen[name] {
			continue
		}
		seen[name] = true
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + `\s`).MatchString(mine) {
			t.Errorf("wisehosting %s is in the README's operator commands but not listed as one by help:\n%s", name, mine)
		}
	}
	if len(seen) < 8 {
		t.Fatalf("found only %d commands in the README's table", len(seen))
	}
}
