package frameworks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckCommand accepts a build or start command override: one line of at
// most 1000 characters of printable UTF-8 ("" means the framework's own).
// It is run inside the container only, as the argv ["/bin/sh", "-c", cmd];
// the check keeps it one line so it cannot add steps to a Containerfile.
func CheckCommand(cmd string) error {
	if cmd == "" {
		return nil
	}
	if len(cmd) > 1000 || !utf8.ValidString(cmd) || strings.TrimSpace(cmd) == "" {
		return errors.New("the command must be one line of at most 1000 characters")
	}
	for _, r := range cmd {
		if r != ' ' && r != '\t' && !unicode.IsPrint(r) {
			return errors.New("the command must be one line of printable characters (no line breaks or control characters)")
		}
	}
	return nil
}

// StartArgv is the argv that runs a start command override in the app's
// container: the command is one argument of the container's own shell,
// never interpreted on the worker.
func StartArgv(cmd string) []string {
	return []string{"/bin/sh", "-c", cmd}
}

// defaultBuilds are the generated build steps a build command replaces.
var defaultBuilds = []string{"RUN npm run build\n", "RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /app .\n"}

// SetBuildCommand puts a build command override into a generated
// Containerfile, in exec form (a JSON array, so nothing in cmd is parsed
// by the Containerfile's syntax): it replaces the framework's build step
// (npm run build for Next.js and Vite, go build for Go, which must then
// write the program to /app) or, for presets without one, runs after the
// dependencies are installed, before the image drops to its user. A
// repository's own Dockerfile has its own steps: a command there is an
// error.
func (p *Plan) SetBuildCommand(cmd string) error {
	if cmd == "" {
		return nil
	}
	if err := CheckCommand(cmd); err != nil {
		return err
	}
	if p.OwnFile {
		return errors.New("a build command applies to detected frameworks; this app builds with its Dockerfile, whose own steps are the build")
	}
	arg, err := json.Marshal(StartArgv(cmd))
	if err != nil {
		return err
	}
	line := "RUN " + string(arg) + "\n"
	for _, d := range defaultBuilds {
		if i := strings.Index(p.Containerfile, d); i >= 0 {
			p.Containerfile = p.Containerfile[:i] + line + p.Containerfile[i+len(d):]
			return nil
		}
	}
	i := strings.LastIndex(p.Containerfile, "\nUSER ")
	if i < 0 {
		return fmt.Errorf("the %s preset has no place for a build command", p.Framework)
	}
	p.Containerfile = p.Containerfile[:i+1] + line + p.Containerfile[i+1:]
	return nil
}
