// Package backup makes and restores encrypted dumps of the control plane's
// database: pg_dump in custom format, sealed with AES-GCM under a key
// derived from the master secret (internal/secrets, purpose "backup"), so a
// backup is useless without the secret and the secret alone restores it.
package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/wisehosting/wisehosting/internal/secrets"
)

// header opens every backup file; it is also the ciphertext's additional
// data, so a file cannot pass for another format.
const header = "WISEHOSTING-BACKUP 1\n"

// Ext is the file name extension of backups.
const Ext = ".whbackup"

const purpose = "backup"

// Target is the database to dump or restore into. Password, when set,
// replaces the URL's (it reaches pg_dump through the environment, never
// its command line).
type Target struct {
	URL      string
	Password string
}

// pgArgs returns the URL without its password and the environment that
// carries the password.
func (t Target) pgArgs() (string, []string, error) {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, errors.New("the database URL is not a postgres:// URL")
	}
	pass := t.Password
	if p, ok := u.User.Password(); ok && pass == "" {
		pass = p
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	env := os.Environ()
	if pass != "" {
		env = append(env, "PGPASSWORD="+pass)
	}
	return u.String(), env, nil
}

// ageHeader opens backups encrypted to an age recipient.
const ageHeader = "WISEHOSTING-BACKUP-AGE 1\n"

// Create dumps the database into dir as wisehosting-<UTC time>.whbackup
// (mode 0600) and returns its path.
func Create(ctx context.Context, db Target, kr *secrets.Keyring, dir string, now time.Time) (string, error) {
	return CreateFor(ctx, db, kr, "", dir, now)
}

// CreateFor is Create that, with an age recipient (age1…), encrypts to
// that recipient instead of the master secret's key: restoring then needs
// the recipient's identity, not the secret.
func CreateFor(ctx context.Context, db Target, kr *secrets.Keyring, recipient, dir string, now time.Time) (string, error) {
	var rcpt age.Recipient
	if recipient != "" {
		var err error
		if rcpt, err = age.ParseX25519Recipient(recipient); err != nil {
			return "", fmt.Errorf("age recipient: %w", err)
		}
	}
	dsn, env, err := db.pgArgs()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--dbname", dsn)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dump, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pg_dump: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var content []byte
	if rcpt != nil {
		var buf bytes.Buffer
		buf.WriteString(ageHeader)
		w, err := age.Encrypt(&buf, rcpt)
		if err != nil {
			return "", err
		}
		w.Write(dump)
		if err := w.Close(); err != nil {
			return "", err
		}
		content = buf.Bytes()
	} else {
		sealed, err := kr.Encrypt(purpose, dump, []byte(header))
		if err != nil {
			return "", err
		}
		content = []byte(header + sealed + "\n")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "wisehosting-"+now.UTC().Format("20060102T150405Z")+Ext)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	return path, f.Close()
}

// Info describes one backup file.
type Info struct {
	Path string // file path, or s3://bucket/key
	Name string // wisehosting-<UTC time>.whbackup
	Size int64
	Time time.Time
}

// List returns the backups in dir, newest first.
func List(dir string) ([]Info, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range ents {
		name := e.Name()
		ts, ok := parseName(name)
		if e.IsDir() || !ok {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, Info{Path: filepath.Join(dir, name), Name: name, Size: fi.Size(), Time: ts})
	}
	slices.SortFunc(out, func(a, b Info) int { return b.Time.Compare(a.Time) })
	return out, nil
}

// Restore decrypts the backup at path and restores it into db, which must
// be empty (no table in the public schema): a restore never mixes with
// live data.
func Restore(ctx context.Context, path string, db Target, kr *secrets.Keyring) error {
	return RestoreWith(ctx, path, db, kr, "")
}

// RestoreWith is Restore that opens backups encrypted to an age recipient
// with the identities (AGE-SECRET-KEY-1…) in the file identityFile.
func RestoreWith(ctx context.Context, path string, db Target, kr *secrets.Keyring, identityFile string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var dump []byte
	if body, ok := bytes.CutPrefix(b, []byte(ageHeader)); ok {
		if identityFile == "" {
			return fmt.Errorf("%s is encrypted to an age recipient: give its identity file (--age-identity)", path)
		}
		idf, err := os.Open(identityFile)
		if err != nil {
			return err
		}
		ids, err := age.ParseIdentities(idf)
		idf.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", identityFile, err)
		}
		r, err := age.Decrypt(bytes.NewReader(body), ids...)
		if err != nil {
			return fmt.Errorf("decrypting %s (is this the identity of its recipient?): %w", path, err)
		}
		if dump, err = io.ReadAll(r); err != nil {
			return fmt.Errorf("decrypting %s: %w", path, err)
		}
	} else {
		body, ok := strings.CutPrefix(string(b), header)
		if !ok {
			return fmt.Errorf("%s is not a WiseHosting backup", path)
		}
		dump, err = kr.Decrypt(purpose, strings.TrimSpace(body), []byte(header))
		if err != nil {
			return fmt.Errorf("decrypting %s (is this the master secret it was made with?): %w", path, err)
		}
	}
	dsn, env, err := db.pgArgs()
	if err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		return err
	}
	if db.Password != "" {
		cfg.Password = db.Password
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting to the target database: %w", err)
	}
	var tables int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables)
	conn.Close(ctx)
	if err != nil {
		return err
	}
	if tables > 0 {
		return fmt.Errorf("the target database has %d tables: restore into an empty database", tables)
	}
	cmd := exec.CommandContext(ctx, "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--dbname", dsn)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(dump)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_restore: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}
