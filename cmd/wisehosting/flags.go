package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagError reads the options of an operator command (one of ours) as its
// command line will, before Caddy's does: a wrong option is then told as a
// sentence with the command's usage, exit 2, like the commands' other
// usage errors, instead of cobra's "Error: unknown shorthand flag: '5' in
// -5" and exit 1. It returns the sentence, the usage, and whether an
// option was wrong.
func flagError(args []string) (msg, usage string, bad bool) {
	if len(args) < 2 || !ours[args[0]] {
		return "", "", false
	}
	c, ok := caddycmd.Commands()[args[0]]
	if !ok || c.CobraFunc == nil {
		return "", "", false
	}
	cmd := &cobra.Command{Use: c.Name + " " + c.Usage}
	c.CobraFunc(cmd)
	fs := cmd.Flags()
	if fs.Lookup("help") == nil {
		fs.BoolP("help", "h", false, "help for "+c.Name)
	}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args[1:])
	if err == nil {
		return "", "", false
	}
	return describeFlagError(err), strings.TrimSpace(c.Usage), true
}

var digits = regexp.MustCompile(`^[0-9]+$`)

// describeFlagError says what is wrong with an option in a sentence.
func describeFlagError(err error) string {
	var missing *pflag.NotExistError
	var noValue *pflag.ValueRequiredError
	var invalid *pflag.InvalidValueError
	var syntax *pflag.InvalidSyntaxError
	switch {
	case errors.As(err, &missing):
		if short := missing.GetSpecifiedShortnames(); short != "" {
			if digits.MatchString(short) {
				return fmt.Sprintf("-%s is not accepted: the numbers given here are never negative", short)
			}
			return fmt.Sprintf("there is no option -%s", missing.GetSpecifiedName())
		}
		return fmt.Sprintf("there is no option --%s", missing.GetSpecifiedName())
	case errors.As(err, &noValue):
		return fmt.Sprintf("--%s needs a value", noValue.GetFlag().Name)
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		switch f.Value.Type() {
		case "int", "int64", "int32", "uint", "uint64":
			return fmt.Sprintf("--%s takes a whole number, not %q", f.Name, invalid.GetValue())
		case "bool":
			return fmt.Sprintf("--%s takes true or false, not %q", f.Name, invalid.GetValue())
		case "duration":
			return fmt.Sprintf("--%s takes a duration such as 30s or 5m, not %q", f.Name, invalid.GetValue())
		}
		return fmt.Sprintf("%q is not a valid value for --%s", invalid.GetValue(), f.Name)
	case errors.As(err, &syntax):
		return fmt.Sprintf("%s is not an option", syntax.GetSpecifiedFlag())
	}
	return err.Error()
}
