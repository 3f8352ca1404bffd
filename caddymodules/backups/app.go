// Package backups is the `wisehosting_backup` Caddy app (scheduled,
// encrypted database backups on one replica, copied to S3-compatible
// storage, with retention) and the `wisehosting backup` command.
package backups

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"filippo.io/age"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/backup"
	"github.com/wisehosting/wisehosting/internal/credentials"
	"github.com/wisehosting/wisehosting/internal/store"
)

func init() {
	core.RegisterApp(new(App), parseGlobalOption)
}

// AppName is the app's module ID (and the key the command reads).
const AppName = "wisehosting_backup"

// SecretCredential names the systemd credential of the S3 secret key.
const SecretCredential = "s3_secret_access_key"

// App takes backups on a schedule.
type App struct {
	// Every is the schedule; 0 (default) takes none (the command still
	// reads the other settings).
	Every caddy.Duration `json:"every,omitempty"`
	// Dir receives the backup files. Default: /var/lib/wisehosting/backups.
	Dir string `json:"dir,omitempty"`
	// Keep is how many backups to keep (0: no count limit).
	Keep int `json:"keep,omitempty"`
	// MaxAge removes backups older than this (0: no age limit). The newest
	// is always kept.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// S3 receives a copy of every backup.
	S3 *backup.S3 `json:"s3,omitempty"`
	// AgeRecipient (age1…), when set, encrypts backups to this age
	// recipient instead of the master secret's key: restoring then needs
	// its identity (backup restore --age-identity), kept offline.
	AgeRecipient string `json:"age_recipient,omitempty"`

	wh     *core.App
	logger *zap.Logger
	bg     core.Background
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: AppName, New: func() caddy.Module { return new(App) }}
}

// Resolve applies defaults, placeholders and credentials (also for the
// command).
func (a *App) Resolve() error {
	if a.Dir == "" {
		a.Dir = "/var/lib/wisehosting/backups"
	}
	repl := caddy.NewReplacer()
	a.Dir = repl.ReplaceKnown(a.Dir, "")
	if a.S3 != nil {
		for _, s := range []*string{&a.S3.Endpoint, &a.S3.Bucket, &a.S3.Prefix, &a.S3.Region, &a.S3.AccessKeyID, &a.S3.SecretAccessKey} {
			*s = repl.ReplaceKnown(*s, "")
		}
		if err := credentials.Apply(SecretCredential, &a.S3.SecretAccessKey); err != nil {
			return err
		}
		if err := a.S3.Validate(); err != nil {
			return fmt.Errorf("%s: %w", AppName, err)
		}
	}
	if a.AgeRecipient != "" {
		if _, err := age.ParseX25519Recipient(a.AgeRecipient); err != nil {
			return fmt.Errorf("%s: age_recipient: %w", AppName, err)
		}
	}
	if a.Keep < 0 || a.MaxAge < 0 || a.Every < 0 {
		return fmt.Errorf("%s: keep, max_age and every must not be negative", AppName)
	}
	return nil
}

// Retention is the app's retention.
func (a *App) Retention() backup.Retention {
	return backup.Retention{Keep: a.Keep, MaxAge: time.Duration(a.MaxAge)}
}

// Provision finds the core app.
func (a *App) Provision(ctx caddy.Context) (err error) {
	if a.wh, a.logger, err = core.Use(ctx); err != nil {
		return err
	}
	if a.Every > 0 {
		a.wh.NeedConns("backup", 1) // the lock's transaction
	}
	return a.Resolve()
}

// Start schedules backups.
func (a *App) Start() error {
	if a.Every <= 0 {
		return nil
	}
	a.bg.Go(func(ctx context.Context) {
		store.Periodic{Name: "wisehosting.backup", Interval: time.Duration(a.Every),
			Run:     func(ctx context.Context, _ pgx.Tx) error { _, err := a.RunOnce(ctx, time.Now()); return err },
			OnError: func(err error) { a.logger.Error("backup: scheduled backup failed", zap.Error(err)) },
		}.Loop(ctx, a.wh.Pool())
	})
	return nil
}

// Stop ends the schedule (a backup in progress is cancelled).
func (a *App) Stop() error {
	a.bg.Stop()
	return nil
}

// RunOnce takes one backup, copies it to S3 and applies retention. It
// skips when the newest backup in S3 (shared by the replicas) is younger
// than most of a period, so replicas on several hosts take one per period.
func (a *App) RunOnce(ctx context.Context, now time.Time) (string, error) {
	if a.S3.Configured() && a.Every > 0 {
		if list, err := a.S3.List(ctx); err == nil && len(list) > 0 && now.Sub(list[0].Time) < time.Duration(a.Every)*9/10 {
			return "", nil
		}
	}
	return Take(ctx, a.wh, a, now, a.logger)
}

// Take makes a backup with settings s: the file, its copy in S3,
// retention.
func Take(ctx context.Context, wh *core.App, s *App, now time.Time, logger *zap.Logger) (string, error) {
	kr := wh.Keyring()
	if kr == nil {
		var err error
		if kr, err = wh.OpenKeyring(); err != nil {
			return "", err
		}
	}
	p, err := backup.CreateFor(ctx, backup.Target{URL: wh.DatabaseURL, Password: wh.DatabasePassword}, kr, s.AgeRecipient, s.Dir, now)
	if err != nil {
		return "", err
	}
	if s.S3.Configured() {
		if err := s.S3.Upload(ctx, p); err != nil {
			return p, err
		}
	}
	removed, err := backup.Prune(ctx, s.Dir, s.S3, s.Retention(), now)
	for _, r := range removed {
		logger.Info("backup: removed by retention", zap.String("backup", r))
	}
	if err != nil {
		return p, fmt.Errorf("applying retention: %w", err)
	}
	logger.Info("backup: taken", zap.String("file", p), zap.Bool("s3", s.S3.Configured()))
	return p, nil
}

// parseGlobalOption reads:
//
//	wisehosting_backup {
//		every   24h
//		dir     /var/lib/wisehosting/backups
//		keep    14
//		max_age 30d
//		age_recipient age1…   # instead of the master secret's key
//		s3 {
//			endpoint          s3.eu-central-1.amazonaws.com
//			bucket            wisehosting-backups
//			prefix            cp1/
//			region            eu-central-1
//			access_key_id     AKIA…
//			secret_access_key {file./run/credentials/…}   # or credential s3_secret_access_key
//			insecure                                      # plain HTTP
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	return core.Options{App: AppName,
		Strings:   map[string]*string{"dir": &a.Dir, "age_recipient": &a.AgeRecipient},
		Durations: map[string]*caddy.Duration{"every": &a.Every, "max_age": &a.MaxAge},
		Ints:      map[string]*int{"keep": &a.Keep},
		Block: func(d *caddyfile.Dispenser, key string) (bool, error) {
			if key != "s3" {
				return false, nil
			}
			a.S3 = new(backup.S3)
			return true, s3Options(a.S3).ReadBlock(d)
		}}.Parse(d, a)
}

// s3Options reads the s3 block; insecure takes no argument.
func s3Options(s *backup.S3) core.Options {
	return core.Options{App: "s3",
		Strings: map[string]*string{"endpoint": &s.Endpoint, "bucket": &s.Bucket, "prefix": &s.Prefix, "region": &s.Region,
			"access_key_id": &s.AccessKeyID, "secret_access_key": &s.SecretAccessKey},
		Block: func(d *caddyfile.Dispenser, key string) (bool, error) {
			if key != "insecure" {
				return false, nil
			}
			if d.NextArg() {
				return true, d.ArgErr()
			}
			s.Insecure = true
			return true, nil
		}}
}

// fromConfig reads the app's settings from a config's apps (absent: the
// defaults).
func fromConfig(apps map[string]json.RawMessage) (*App, error) {
	a := new(App)
	if raw, ok := apps[AppName]; ok {
		if err := json.Unmarshal(raw, a); err != nil {
			return nil, fmt.Errorf("decoding the %s app: %w", AppName, err)
		}
	}
	return a, nil
}

var errNoS3 = errors.New("no S3 storage is configured (wisehosting_backup { s3 { … } } or WISEHOSTING_BACKUP_S3_*)")

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
