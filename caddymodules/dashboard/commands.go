package dashboard

import (
	"fmt"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wisehosting/wisehosting/caddymodules/core"
	"github.com/wisehosting/wisehosting/internal/accounts"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "user",
		Usage: "add <email> [--admin] | reset-password <email>  [--config <path>]",
		Short: "Adds an account or resets its password",
		Long: `
"user add EMAIL" creates an account and prints a one-time password; the
first sign-in must replace it. --admin makes an instance administrator.
Team owners then add the account to their teams on the dashboard's team
page. "user reset-password EMAIL" prints a new one-time password for the
account, which the next sign-in must replace, and signs it out everywhere.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().StringP("config", "c", "", "Caddyfile or JSON config holding the wisehosting app")
			cmd.Flags().StringP("adapter", "a", "", "Name of config adapter")
			cmd.Flags().Bool("admin", false, "make the account an instance administrator")
			cmd.RunE = core.RunE("user", cmdUser)
		},
	})
}

func cmdUser(fl caddycmd.Flags) error {
	args := fl.Args()
	if len(args) != 2 || (args[0] != "add" && args[0] != "reset-password") {
		return core.Usagef("expected add EMAIL or reset-password EMAIL")
	}
	ctx, pool, done, err := core.OpenCommandDB(fl)
	if err != nil {
		return err
	}
	defer done()
	svc := accounts.New(pool)
	switch args[0] {
	case "add":
		_, pw, err := svc.AddUser(ctx, args[1], fl.Bool("admin"))
		if err != nil {
			return err
		}
		fmt.Printf("account %s added.\nOne-time password (shown once; the first sign-in asks for a new one):\n\n  %s\n\n", args[1], pw)
	case "reset-password":
		pw, err := svc.ResetPassword(ctx, args[1])
		if err != nil {
			return err
		}
		fmt.Printf("new one-time password of %s (shown once; the next sign-in asks for a new one; its sessions ended):\n\n  %s\n\n", args[1], pw)
	}
	return nil
}
