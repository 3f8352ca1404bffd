package core

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/internal/backup"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "backup",
		Usage: "create | list | restore <file>  [--dir /var/lib/wisehosting/backups] [--config <path>]",
		Short: "Makes, lists or restores encrypted database backups",
		Long: `
"create" dumps the control plane's database (pg_dump, custom format) and
encrypts it with a key derived from the master secret into
<dir>/wisehosting-<UTC time>.whbackup (mode 0600). "list" shows the
backups in dir, newest first. "restore <file>" decrypts a backup and
restores it into the configured database, which must be empty; then start
the control plane on it with the same master secret.

The database and the secret are read from the wisehosting app of --config
(with systemd credentials), else from $WISEHOSTING_DATABASE_URL and
$WISEHOSTING_SECRET.`,
		CobraFunc: func(cmd *cobra.Command) {
			addConfigFlags(cmd)
			cmd.Flags().String("dir", "/var/lib/wisehosting/backups", "where backups are written and listed")
			cmd.Args = cobra.RangeArgs(1, 2)
			cmd.RunE = RunCode("backup", cmdBackup)
		},
	})
}

func cmdBackup(fl caddycmd.Flags) (int, error) {
	args := fl.Args()
	if n := map[string]int{"create": 1, "list": 1, "restore": 2}[fl.Arg(0)]; n == 0 || len(args) != n {
		return caddy.ExitCodeFailedStartup, Usagef("expected create | list | restore <file>")
	}
	if args[0] == "list" && len(args) == 1 {
		list, err := backup.List(fl.String("dir"))
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FILE\tTAKEN\tSIZE")
		for _, b := range list {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", b.Path, b.Time.Format(time.RFC3339), b.Size)
		}
		tw.Flush()
		return 0, nil
	}
	a, err := LoadConfig(fl)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	kr, err := a.OpenKeyring()
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	ctx, cancel := CommandContext()
	defer cancel()
	db := backup.Target{URL: a.DatabaseURL, Password: a.DatabasePassword}
	switch {
	case args[0] == "create" && len(args) == 1:
		path, err := backup.Create(ctx, db, kr, fl.String("dir"), time.Now())
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Println(path)
	case args[0] == "restore" && len(args) == 2:
		if err := backup.Restore(ctx, args[1], db, kr); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		fmt.Println("restored", args[1])
	default:
		return caddy.ExitCodeFailedStartup, Usagef("expected create | list | restore <file>")
	}
	return 0, nil
}
