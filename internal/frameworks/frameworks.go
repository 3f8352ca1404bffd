// Package frameworks detects how to build a repository and supplies the
// Containerfile when the repository has none: Node (and Next.js, Vite),
// Go, Python and static sites. A repository's own Dockerfile or
// Containerfile always wins. Detection reads files only; it never runs
// anything from the repository.
package frameworks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Names of the presets.
const (
	Dockerfile = "dockerfile" // the repository's own
	Node       = "node"
	NextJS     = "nextjs"
	Vite       = "vite"
	Go         = "go"
	Python     = "python"
	Static     = "static"
)

// All lists the names a user may choose (plus "auto").
var All = []string{Dockerfile, Node, NextJS, Vite, Go, Python, Static}

// Plan is how to build a repository.
type Plan struct {
	Framework string
	// Containerfile is the build recipe; for Dockerfile it is the path of
	// the repository's own file, otherwise the generated content.
	Containerfile string
	// OwnFile is true when Containerfile names the repository's file.
	OwnFile bool
	// Port the app is expected to listen on (the platform passes PORT).
	Port int
}

// ErrUnknown means nothing recognisable was found.
var ErrUnknown = errors.New("cannot tell how to build this repository: add a Dockerfile, or a package.json, go.mod, requirements.txt/pyproject.toml or index.html")

func exists(root, name string) bool {
	st, err := os.Stat(filepath.Join(root, name))
	return err == nil && !st.IsDir()
}

type packageJSON struct {
	Scripts         map[string]string `json:"scripts"`
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
}

func readPackage(root string) (*packageJSON, error) {
	b, err := os.ReadFile(filepath.Join(root, "package.json"))
	if err != nil {
		return nil, err
	}
	return parsePackage(b)
}

func parsePackage(b []byte) (*packageJSON, error) {
	if len(b) > 1<<20 {
		return nil, errors.New("package.json larger than 1 MiB")
	}
	var p packageJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("reading package.json: %w", err)
	}
	return &p, nil
}

func (p *packageJSON) has(dep string) bool {
	_, a := p.Dependencies[dep]
	_, b := p.DevDependencies[dep]
	return a || b
}

// Guess names the framework of a repository from the files at its root
// (has) and its package.json (read only when there is one): the same
// rules Detect applies to a checkout, usable on a provider's file API
// before anything is cloned. A Dockerfile or Containerfile is "dockerfile".
func Guess(has func(name string) bool, packageJSON func() ([]byte, error)) (string, error) {
	switch {
	case has("Dockerfile") || has("Containerfile"):
		return Dockerfile, nil
	case has("package.json"):
		b, err := packageJSON()
		if err != nil {
			return "", err
		}
		p, err := parsePackage(b)
		if err != nil {
			return "", err
		}
		switch {
		case p.has("next"):
			return NextJS, nil
		case p.has("vite"):
			return Vite, nil
		}
		return Node, nil
	case has("go.mod"):
		return Go, nil
	case has("requirements.txt") || has("pyproject.toml"):
		return Python, nil
	case has("index.html"):
		return Static, nil
	}
	return "", ErrUnknown
}

// Detect inspects the checked-out repository at root. choice is the app's
// configured framework ("auto" or "" to detect).
func Detect(root, choice string) (*Plan, error) {
	if choice != "" && choice != "auto" {
		known := false
		for _, n := range All {
			known = known || n == choice
		}
		if !known {
			return nil, fmt.Errorf("unknown framework %q (auto, %s)", choice, strings.Join(All, ", "))
		}
	}
	if choice == "" || choice == "auto" || choice == Dockerfile {
		for _, f := range []string{"Dockerfile", "Containerfile"} {
			if exists(root, f) {
				return &Plan{Framework: Dockerfile, Containerfile: f, OwnFile: true, Port: 8080}, nil
			}
		}
		if choice == Dockerfile {
			return nil, errors.New("framework dockerfile chosen, but the repository has no Dockerfile or Containerfile")
		}
	}
	fw := choice
	if fw == "" || fw == "auto" {
		var err error
		fw, err = Guess(func(name string) bool { return exists(root, name) }, func() ([]byte, error) {
			return os.ReadFile(filepath.Join(root, "package.json"))
		})
		if err != nil {
			return nil, err
		}
	}
	plan := &Plan{Framework: fw, Port: 8080}
	switch fw {
	case Node:
		plan.Port = 3000
		start := "npm start"
		if p, err := readPackage(root); err == nil && p.Scripts["start"] == "" {
			start = "node index.js"
		}
		plan.Containerfile = nodeFile(root, false, start)
	case NextJS:
		plan.Port = 3000
		plan.Containerfile = nodeFile(root, true, "npx next start -p ${PORT:-3000}")
	case Vite:
		plan.Port = 8080
		plan.Containerfile = viteFile(root)
	case Go:
		plan.Containerfile = goFile
	case Python:
		plan.Port = 8000
		plan.Containerfile = pythonFile(root)
	case Static:
		plan.Containerfile = staticFile
	}
	return plan, nil
}

func nodeInstall(root string) string {
	switch {
	case exists(root, "package-lock.json"):
		return "npm ci"
	case exists(root, "yarn.lock"):
		return "corepack enable && yarn install --frozen-lockfile"
	case exists(root, "pnpm-lock.yaml"):
		return "corepack enable && pnpm install --frozen-lockfile"
	}
	return "npm install"
}

func nodeFile(root string, build bool, start string) string {
	b := "FROM docker.io/library/node:22-alpine\nWORKDIR /app\nCOPY package*.json yarn.lock* pnpm-lock.yaml* ./\nRUN " + nodeInstall(root) + "\nCOPY . .\n"
	if build {
		b += "RUN npm run build\n"
	}
	return b + "ENV NODE_ENV=production\nUSER node\nCMD [\"sh\", \"-c\", \"" + start + "\"]\n"
}

func viteFile(root string) string {
	return "FROM docker.io/library/node:22-alpine AS build\nWORKDIR /app\nCOPY package*.json yarn.lock* pnpm-lock.yaml* ./\nRUN " + nodeInstall(root) +
		"\nCOPY . .\nRUN npm run build\n\nFROM docker.io/library/caddy:2-alpine\nCOPY --from=build /app/dist /srv\n" +
		"CMD [\"caddy\", \"file-server\", \"--root\", \"/srv\", \"--listen\", \":8080\"]\n"
}

const goFile = `FROM docker.io/library/golang:1.26-alpine AS build
WORKDIR /src
COPY go.* ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /app .

FROM scratch
COPY --from=build /app /app
USER 65534
ENTRYPOINT ["/app"]
`

func pythonFile(root string) string {
	install := "pip install --no-cache-dir -r requirements.txt"
	if !exists(root, "requirements.txt") {
		install = "pip install --no-cache-dir ."
	}
	start := "gunicorn --bind 0.0.0.0:${PORT:-8000} app:app"
	if exists(root, "manage.py") {
		start = "gunicorn --bind 0.0.0.0:${PORT:-8000} $(basename $(dirname $(ls */wsgi.py | head -1))).wsgi"
	}
	return "FROM docker.io/library/python:3.12-slim\nWORKDIR /app\nCOPY . .\nRUN " + install +
		"\nUSER nobody\nCMD [\"sh\", \"-c\", \"" + start + "\"]\n"
}

// staticFile serves the site with busybox httpd: a 2 MB image.
const staticFile = `FROM docker.io/library/busybox:stable
WORKDIR /srv
COPY . .
USER 65534
EXPOSE 8080
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/srv"]
`
