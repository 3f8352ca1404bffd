package frameworks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckCommand(t *testing.T) {
	for _, ok := range []string{"", "npm run build:prod", "httpd -f -p $PORT -h /srv && echo 'x; y'", "echo \"é\"\tx"} {
		if err := CheckCommand(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"a\nRUN rm -rf /", "a\rb", "a\x00b", "   ", "a\x1bb", strings.Repeat("a", 1001), "\xff"} {
		if CheckCommand(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The build command replaces the preset's build step, or comes before
// the image drops its privileges; a repository's Dockerfile refuses it.
func TestSetBuildCommand(t *testing.T) {
	for fw, files := range map[string]map[string]string{
		NextJS: {"package.json": `{"dependencies":{"next":"15"}}`},
		Vite:   {"package.json": `{"devDependencies":{"vite":"5"}}`},
		Go:     {"go.mod": "module x"},
		Node:   {"package.json": `{"scripts":{"start":"node s.js"}}`},
		Python: {"requirements.txt": ""},
		Static: {"index.html": ""},
	} {
		dir := t.TempDir()
		for n, c := range files {
			os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
		}
		plan, err := Detect(dir, "auto")
		if err != nil || plan.Framework != fw {
			t.Fatalf("%s: %v %v", fw, plan, err)
		}
		before := plan.Containerfile
		if err := plan.SetBuildCommand(`make "site" && echo \`); err != nil {
			t.Fatalf("%s: %v", fw, err)
		}
		want := `RUN ["/bin/sh","-c","make \"site\" \u0026\u0026 echo \\"]` + "\n"
		if strings.Count(plan.Containerfile, want) != 1 {
			t.Errorf("%s: no build step in\n%s", fw, plan.Containerfile)
		}
		for _, d := range defaultBuilds {
			if strings.Contains(plan.Containerfile, d) {
				t.Errorf("%s: default build step kept:\n%s", fw, plan.Containerfile)
			}
		}
		if strings.Contains(before, "USER ") && strings.Index(plan.Containerfile, want) > strings.LastIndex(plan.Containerfile, "USER ") {
			t.Errorf("%s: build step after USER:\n%s", fw, plan.Containerfile)
		}
	}
	own := &Plan{Framework: Dockerfile, Containerfile: "Dockerfile", OwnFile: true}
	if err := own.SetBuildCommand("make"); err == nil || own.Containerfile != "Dockerfile" {
		t.Errorf("Dockerfile app took a build command: %v", err)
	}
	if err := (&Plan{Framework: Static, Containerfile: staticFile}).SetBuildCommand("a\nUSER root"); err == nil {
		t.Error("a multi-line command was accepted")
	}
}

// Whatever the command, the Containerfile gains exactly one line, an
// exec-form RUN whose JSON gives back the command as one shell argument.
func FuzzSetBuildCommand(f *testing.F) {
	for _, s := range []string{"npm run build", "a\nb", `"]` + "\nRUN x", `\`, "$(id)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		p := &Plan{Framework: Static, Containerfile: staticFile}
		if err := p.SetBuildCommand(cmd); err != nil || cmd == "" {
			if p.Containerfile != staticFile {
				t.Fatalf("changed on error: %q", p.Containerfile)
			}
			return
		}
		lines := strings.Split(p.Containerfile, "\n")
		if len(lines) != strings.Count(staticFile, "\n")+2 {
			t.Fatalf("%q: %d lines", cmd, len(lines))
		}
		for _, l := range lines {
			if rest, ok := strings.CutPrefix(l, "RUN "); ok {
				var argv []string
				if err := json.Unmarshal([]byte(rest), &argv); err != nil || len(argv) != 3 || argv[2] != cmd {
					t.Fatalf("%q: RUN %s", cmd, rest)
				}
			}
		}
	})
}
