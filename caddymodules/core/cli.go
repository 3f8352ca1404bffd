package core

import (
	"errors"
	"fmt"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// Exit codes of the operator commands.
const (
	ExitFailure = 1 // the command could not do its work
	ExitUsage   = 2 // the command line is wrong
)

// UsageError is a wrong command line; its text says what is expected.
type UsageError string

func (e UsageError) Error() string { return string(e) }

// Usagef makes a UsageError.
func Usagef(format string, args ...any) error { return UsageError(fmt.Sprintf(format, args...)) }

// RunE adapts an operator command: errors are printed as a plain sentence
// on stderr (not a log line) and end the process with ExitUsage for a
// UsageError, ExitFailure otherwise. Arguments are checked by the command
// itself (cobra's checks would exit 1 with cobra's wording).
func RunE(name string, f func(fl caddycmd.Flags) error) func(cmd *cobra.Command, args []string) error {
	return RunCode(name, func(fl caddycmd.Flags) (int, error) { return 0, f(fl) })
}

// RunCode is RunE for a command that also chooses its exit code when it
// has no error to print (infra status exits 1 when a check fails).
func RunCode(name string, f func(fl caddycmd.Flags) (int, error)) func(cmd *cobra.Command, args []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		code, err := f(caddycmd.Flags{FlagSet: cmd.Flags()})
		if err == nil {
			if code != 0 {
				os.Exit(code)
			}
			return nil
		}
		fmt.Fprintf(os.Stderr, "wisehosting %s: %v\n", name, err)
		var ue UsageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "usage: wisehosting %s %s\n", name, strings.TrimSpace(strings.TrimPrefix(cmd.Use, cmd.Name())))
			os.Exit(ExitUsage)
		}
		os.Exit(ExitFailure)
		return nil
	}
}
