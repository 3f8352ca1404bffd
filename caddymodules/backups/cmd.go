package backups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/backup"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "backup",
		Usage: "create | list | restore <file or name>  [--dir /var/lib/wisehosting/backups] [--config <path>]",
		Short: "Makes, lists or restores encrypted database backups, locally and in S3",
		Long: `
"create" dumps the control plane's database (pg_dump, custom format) and
encrypts it with a key derived from the master secret into
<dir>/wisehosting-<UTC time>.whbackup (mode 0600); with S3 storage
configured it uploads a copy, then removes what the retention (keep,
max_age) no longer keeps, locally and in S3. "list" shows the backups in
dir and in S3, newest first. "restore <file or name>" decrypts a backup
(a file, or a name from "list", fetched from S3 when it is not in dir;
one encrypted to the app's age_recipient needs --age-identity FILE)
and restores it into the configured database, which must be empty; then
start the control plane on it with the same master secret.

The database and the secret are read from the wisehosting app of --config
(with systemd credentials), else from $WISEHOSTING_DATABASE_URL and
$WISEHOSTING_SECRET; dir, retention and S3 from its wisehosting_backup
app, else from $WISEHOSTING_BACKUP_S3_ENDPOINT, _BUCKET, _PREFIX,
_REGION, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY and _INSECURE=1 (the
credential s3_secret_access_key wins).`,
		CobraFunc: func(cmd *cobra.Command) {
			core.ConfigFlags(cmd)
			cmd.Flags().String("age-identity", "", "restore: file with the age identity of the backups' age_recipient")
			cmd.Flags().String("dir", "", "where backups are written and listed (default: the app's dir, /var/lib/wisehosting/backups)")
			cmd.Args = cobra.RangeArgs(1, 2)
			cmd.RunE = core.RunCode("backup", cmdBackup)
		},
	})
}

// settings reads the wisehosting_backup app of --config, else the
// environment.
func settings(fl caddycmd.Flags) (*App, error) {
	apps, err := core.ConfigApps(fl)
	if err != nil {
		return nil, err
	}
	a, err := fromConfig(apps)
	if err != nil {
		return nil, err
	}
	if a.S3 == nil {
		if ep := os.Getenv("WISEHOSTING_BACKUP_S3_ENDPOINT"); ep != "" {
			a.S3 = &backup.S3{Endpoint: ep, Bucket: os.Getenv("WISEHOSTING_BACKUP_S3_BUCKET"), Prefix: os.Getenv("WISEHOSTING_BACKUP_S3_PREFIX"),
				Region: os.Getenv("WISEHOSTING_BACKUP_S3_REGION"), AccessKeyID: os.Getenv("WISEHOSTING_BACKUP_S3_ACCESS_KEY_ID"),
				SecretAccessKey: os.Getenv("WISEHOSTING_BACKUP_S3_SECRET_ACCESS_KEY"), Insecure: os.Getenv("WISEHOSTING_BACKUP_S3_INSECURE") == "1"}
		}
	}
	if d := fl.String("dir"); d != "" {
		a.Dir = d
	}
	return a, a.Resolve()
}

func cmdBackup(fl caddycmd.Flags) (int, error) {
	args := fl.Args()
	if n := map[string]int{"create": 1, "list": 1, "restore": 2}[fl.Arg(0)]; n == 0 || len(args) != n {
		return caddy.ExitCodeFailedStartup, core.Usagef("expected create | list | restore <file or name>")
	}
	s, err := settings(fl)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	ctx, cancel := core.CommandContext()
	defer cancel()
	if args[0] == "list" {
		list, err := backup.List(s.Dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return caddy.ExitCodeFailedStartup, err
		}
		if s.S3.Configured() {
			remote, err := s.S3.List(ctx)
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			list = append(list, remote...)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTAKEN\tSIZE\tWHERE")
		for _, b := range list {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", b.Name, b.Time.Format(time.RFC3339), b.Size, b.Path)
		}
		tw.Flush()
		return 0, nil
	}
	wh, err := core.LoadConfig(fl)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	switch args[0] {
	case "create":
		p, err := Take(ctx, wh, s, time.Now(), zap.NewNop())
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Println(p)
		if s.S3.Configured() {
			fmt.Printf("copied to s3://%s/%s%s\n", s.S3.Bucket, s.S3.Prefix, backup.NameOf(p))
		}
	case "restore":
		kr, err := wh.OpenKeyring()
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		p := args[1]
		if _, err := os.Stat(p); err != nil && backup.NameOf(p) == p {
			p = filepath.Join(s.Dir, p) // a name from "list"
		}
		if _, err := os.Stat(p); err != nil {
			if !s.S3.Configured() {
				return caddy.ExitCodeFailedStartup, fmt.Errorf("%s: no such file, and %w", p, errNoS3)
			}
			tmp, err := os.MkdirTemp("", "wisehosting-restore")
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			defer os.RemoveAll(tmp)
			if p, err = s.S3.Download(ctx, backup.NameOf(p), tmp); err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
		}
		if err := backup.RestoreWith(ctx, p, backup.Target{URL: wh.DatabaseURL, Password: wh.DatabasePassword}, kr, fl.String("age-identity")); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Println("restored", args[1])
	}
	return 0, nil
}
