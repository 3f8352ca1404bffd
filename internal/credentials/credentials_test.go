package credentials

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCredentialWinsOverConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, APIServerSecret), []byte("from-systemd\n"), 0o600)
	t.Setenv("CREDENTIALS_DIRECTORY", dir)

	v := "from-config"
	if err := Apply(APIServerSecret, &v); err != nil {
		t.Fatal(err)
	}
	if v != "from-systemd" {
		t.Fatalf("credential did not win: %q", v)
	}
	// Absent credential: config value stays.
	w := "from-config"
	if err := Apply(ProxyToken, &w); err != nil || w != "from-config" {
		t.Fatalf("absent credential changed the value: %q %v", w, err)
	}
}

func TestNoCredentialsDirectory(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	v := "cfg"
	if err := Apply(APIServerSecret, &v); err != nil || v != "cfg" {
		t.Fatalf("%q %v", v, err)
	}
}

func TestTraversalRefused(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", t.TempDir())
	for _, n := range []string{"../etc/passwd", "a/b", "..", ""} {
		if _, _, err := Lookup(n); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
}
