package frameworks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func repo(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	return dir
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name   string
		files  map[string]string
		choice string
		want   string
		port   int
		has    string
	}{
		{"own dockerfile wins", map[string]string{"Dockerfile": "FROM scratch", "package.json": "{}"}, "auto", Dockerfile, 8080, "Dockerfile"},
		{"containerfile", map[string]string{"Containerfile": "FROM scratch"}, "", Dockerfile, 8080, "Containerfile"},
		{"next", map[string]string{"package.json": `{"dependencies":{"next":"15.0.0","react":"19"}}`, "package-lock.json": "{}"}, "auto", NextJS, 3000, "npm ci"},
		{"vite", map[string]string{"package.json": `{"devDependencies":{"vite":"7.0.0"}}`, "pnpm-lock.yaml": ""}, "auto", Vite, 8080, "pnpm install"},
		{"node", map[string]string{"package.json": `{"scripts":{"start":"node server.js"}}`}, "auto", Node, 3000, "npm start"},
		{"node without start", map[string]string{"package.json": `{}`}, "auto", Node, 3000, "node index.js"},
		{"go", map[string]string{"go.mod": "module x\n", "main.go": "package main"}, "auto", Go, 8080, "FROM scratch"},
		{"python requirements", map[string]string{"requirements.txt": "flask\n"}, "auto", Python, 8000, "requirements.txt"},
		{"python pyproject", map[string]string{"pyproject.toml": "[project]\n"}, "auto", Python, 8000, "pip install --no-cache-dir ."},
		{"static", map[string]string{"index.html": "<h1>hi</h1>"}, "auto", Static, 8080, "httpd"},
		{"explicit choice over detection", map[string]string{"index.html": "x", "go.mod": "module x"}, Static, Static, 8080, "httpd"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Detect(repo(t, c.files), c.choice)
			if err != nil {
				t.Fatal(err)
			}
			if p.Framework != c.want || p.Port != c.port || !strings.Contains(p.Containerfile, c.has) {
				t.Fatalf("%+v", p)
			}
		})
	}
	if _, err := Detect(repo(t, map[string]string{"README.md": "x"}), "auto"); err != ErrUnknown {
		t.Fatalf("unknown repo: %v", err)
	}
	if _, err := Detect(repo(t, map[string]string{"index.html": "x"}), "rails"); err == nil {
		t.Fatal("unknown framework accepted")
	}
	if _, err := Detect(repo(t, map[string]string{"index.html": "x"}), Dockerfile); err == nil {
		t.Fatal("dockerfile chosen without a Dockerfile")
	}
	if _, err := Detect(repo(t, map[string]string{"package.json": "{not json"}), "auto"); err == nil {
		t.Fatal("broken package.json accepted")
	}
}

func FuzzDetectPackageJSON(f *testing.F) {
	f.Add(`{"dependencies":{"next":"1"}}`)
	f.Add(`{"scripts":{"start":"x"}}`)
	f.Fuzz(func(t *testing.T, pkg string) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "package.json"), []byte(pkg), 0o644)
		p, err := Detect(dir, "auto")
		if err == nil && p.Containerfile == "" {
			t.Fatal("plan without a Containerfile")
		}
	})
}
