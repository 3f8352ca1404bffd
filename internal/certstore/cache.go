package certstore

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"
)

// Cache is a proxy's local copy of the keys it read or wrote, one file per
// key under Dir (mode 0600, directories 0700), modification times kept. It
// answers reads while the control plane cannot. Keys are checked with
// CheckKey before they become paths.
type Cache struct{ Dir string }

func (c Cache) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(c.Dir, filepath.FromSlash(key)), nil
}

// Put writes key atomically with modification time mod.
func (c Cache) Put(key string, value []byte, mod time.Time) error {
	p, err := c.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "~tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(value)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && !mod.IsZero() {
		err = os.Chtimes(tmp.Name(), mod, mod)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// Get reads key.
func (c Cache) Get(key string) ([]byte, error) {
	p, err := c.path(key)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// Delete removes key and everything below it.
func (c Cache) Delete(key string) error {
	p, err := c.pathOrPrefix(key)
	if err != nil {
		return err
	}
	return os.RemoveAll(p)
}

func (c Cache) pathOrPrefix(key string) (string, error) {
	if CheckKey(key) != nil {
		if err := CheckPrefix(key); err != nil {
			return "", err
		}
	}
	return filepath.Join(c.Dir, filepath.FromSlash(key)), nil
}

// Stat describes key from the copy.
func (c Cache) Stat(key string) (KeyInfo, error) {
	p, err := c.pathOrPrefix(key)
	if err != nil {
		return KeyInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return KeyInfo{}, fs.ErrNotExist
	}
	return KeyInfo{Key: key, Modified: fi.ModTime(), Size: fi.Size(), Terminal: !fi.IsDir()}, nil
}

// List lists prefix from the copy, like DB.List.
func (c Cache) List(prefix string, recursive bool) ([]string, error) {
	p, err := c.pathOrPrefix(prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	if !recursive {
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fs.ErrNotExist
		}
		for _, e := range ents {
			if CheckKey(path.Join(prefix, e.Name())) == nil || e.IsDir() {
				out = append(out, path.Join(prefix, e.Name()))
			}
		}
	} else {
		err := filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(c.Dir, fp)
			if err != nil {
				return err
			}
			if k := filepath.ToSlash(rel); CheckKey(k) == nil {
				out = append(out, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	slices.Sort(out)
	return out, nil
}
