//go:build remote && containers_image_openpgp

package supervisor

import (
	"os"
	"path/filepath"
	"testing"
)

// An app's root directory must stay inside its checkout, also through
// symbolic links the repository contains.
func TestBuildRootStaysInTheCheckout(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "apps", "web"), 0o755)
	os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644)
	os.Symlink("/etc", filepath.Join(dir, "out"))
	os.Symlink("apps/web", filepath.Join(dir, "web"))
	if got, err := buildRoot(dir, ""); err != nil || got != dir {
		t.Fatalf("empty: %q %v", got, err)
	}
	if got, err := buildRoot(dir, "web"); err != nil || filepath.Base(got) != "web" {
		t.Fatalf("link inside: %q %v", got, err)
	}
	for _, bad := range []string{"out", "../", "apps/../../x", "/etc", "file", "missing", "-x"} {
		if got, err := buildRoot(dir, bad); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}
